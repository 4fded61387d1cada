// Package rtp carries one call leg's RTP and RTCP over UDP: port allocation, symmetric
// latching, RFC 3550 sequencing and statistics, RFC 4733 telephone events, and inactivity
// detection.
//
// A Session owns an even/odd pair of UDP sockets taken from a PortPool. One goroutine writes
// (WriteAudio, WriteEvent, SkipSamples), one runs ReadLoop; Stats, SetRemote and SetHold may be
// called from any goroutine. The receive path reorders by at most one packet and never waits
// on a timer: voice agents care more about latency than about a rare late packet.
package rtp
