// Package dialplan decides what happens to each call and carries it out: it
// answers the INVITE (SDP negotiation, RTP leg), runs the call's actions,
// and tears everything down at the end, logging one record per call.
//
// The plan is a YAML file (docs/DIALPLAN.md, configs/dialplan.yaml): ordered
// rules that match the called number, the caller, the trunk, time windows
// and SIP headers, each with a list of actions (answer, play, gather, agent,
// transfer, hangup, reject, goto), plus named menus. Load validates a file
// completely and reports every problem with its line and column; a loaded
// *Plan is immutable. Plan.Route picks a call's rule and Plan.Run carries
// the rule's actions out on a Runtime: the executor's on a real call,
// DryRun's for `switchboard dialplan test`. Live reloads the file while
// calls run, keeping the old plan when the new one is invalid.
package dialplan
