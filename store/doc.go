// Package store holds the state that a fleet of Switchboard gateways shares:
// the registry of live calls, concurrency limits, call detail records (CDRs)
// and the control channel that reaches the instance owning a call.
//
// Two implementations satisfy [Store]:
//
//   - [Memory] for a single process. It needs no set-up and is the default,
//     so a gateway runs on a laptop with nothing else installed.
//   - [Redis] for a fleet, on any go-redis UniversalClient (single node,
//     Sentinel or Cluster). Every instance heartbeats what it owns; what a
//     dead instance owned (calls, limit slots) expires within one TTL, so a
//     crash never leaks capacity for longer than that.
//
// Redis is a dependency the gateway must survive losing. Operations fail
// fast (a short per-operation timeout) with errors that wrap
// [ErrUnavailable], so callers can choose to fail open (admit calls without a
// shared limit) or closed. CDRs are never dropped silently during an outage:
// they wait in a bounded buffer and are written in order once Redis is back.
//
// The package imports nothing else from Switchboard: it sits below every
// package that uses it (cmd, dialplan, transfer). Key layout, TTLs and
// operational advice are in docs/OPERATIONS.md.
package store
