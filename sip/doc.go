// Package sip is Switchboard's signalling layer on sipgo: it listens for SIP
// over UDP and TCP, turns each inbound INVITE into an InboundCall that the
// dialplan drives (ringing, answer, reject, hang-up), keeps the dialog table
// that routes ACK, BYE, re-INVITE and INFO to their call, and places outbound
// calls. It knows nothing about media: SDP bodies pass through as bytes and
// re-INVITE offers are answered by a callback the call's owner installs.
package sip
