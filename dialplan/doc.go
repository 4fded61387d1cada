// Package dialplan decides what happens to each call and carries it out: it
// answers the INVITE (SDP negotiation, RTP leg), runs the call's actions
// (for now: the configured agent), and tears everything down at the end,
// logging one record per call.
package dialplan
