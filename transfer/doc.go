// Package transfer hands a caller over to a person: cold, with a REFER
// inside the caller's dialog tracked to its final NOTIFY, or through a
// second leg the gateway dials itself (warm transfers, and the bridged
// fallback when a carrier refuses REFER). Targets are checked against an
// allowlist first: a transfer is a paid outbound call, never an open relay.
package transfer
