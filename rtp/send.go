package rtp

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// sender is the outgoing stream's state. The mutex makes concurrent writers safe (audio
// pacer and DTMF sender may differ) and gives the RTCP goroutine a consistent view for SRs.
type sender struct {
	mu   sync.Mutex
	pkt  rtp.Packet
	buf  [maxPacketSize]byte
	ts   uint32      // timestamp of the next audio packet
	srtp *srtpSender // nil: plain RTP
	sbuf [maxPacketSize + srtpMaxTrailer]byte

	packets         uint64
	octets          uint64 // payload octets, as RTCP counts them
	sentSinceReport bool
	lastTS          uint32    // timestamp of the last audio packet
	lastAt          time.Time // when it was written
}

func (t *sender) init(ssrc uint32, seq uint16, ts uint32) {
	t.pkt.Header = rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq}
	t.ts = ts
}

// WriteAudio sends one packet with the current timestamp, then advances the timestamp by
// samples. The sequence number grows by one per packet sent. While there is no remote (late
// offer, hold) nothing is sent but the timestamp still advances, so it keeps tracking time.
// It does not allocate.
func (s *Session) WriteAudio(pt uint8, marker bool, payload []byte, samples uint32) error {
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	ts := s.tx.ts
	s.tx.ts += samples
	// Only audio timestamps follow the sampling clock; SRs map wallclock from them.
	s.tx.lastTS, s.tx.lastAt = ts, time.Now()
	return s.send(pt, marker, ts, payload)
}

// WriteEvent sends a telephone-event packet at an explicit timestamp (the event's start);
// the audio timestamp does not move. Call SkipSamples per event packet to keep it in step.
func (s *Session) WriteEvent(pt uint8, marker bool, ts uint32, payload []byte) error {
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	return s.send(pt, marker, ts, payload)
}

// Timestamp is the timestamp the next audio packet will carry.
func (s *Session) Timestamp() uint32 {
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	return s.tx.ts
}

// SkipSamples advances the timestamp without sending, keeping it continuous across silence
// and events.
func (s *Session) SkipSamples(n uint32) {
	s.tx.mu.Lock()
	s.tx.ts += n
	s.tx.mu.Unlock()
}

// SSRC is the synchronisation source of the packets we send.
func (s *Session) SSRC() uint32 {
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	return s.tx.pkt.SSRC
}

// send marshals into the session's buffer and writes to the current remote. Caller holds
// tx.mu.
func (s *Session) send(pt uint8, marker bool, ts uint32, payload []byte) error {
	if pt > 127 {
		return fmt.Errorf("rtp: send: payload type %d out of range", pt)
	}
	dst := s.sendTarget()
	if !dst.IsValid() {
		return nil
	}
	t := &s.tx
	t.pkt.PayloadType = pt
	t.pkt.Marker = marker
	t.pkt.Timestamp = ts
	t.pkt.Payload = payload
	n, err := t.pkt.MarshalTo(t.buf[:])
	t.pkt.Payload = nil // do not keep the caller's buffer alive
	if err != nil {
		return fmt.Errorf("rtp: send %d-byte payload: %w", len(payload), err)
	}
	t.pkt.SequenceNumber++
	out := t.buf[:n]
	if t.srtp != nil {
		out = t.srtp.protect(t.sbuf[:], out, n-len(payload))
	}
	if s.rtpConn == nil {
		return nil // socketless session in tests
	}
	if _, err := s.rtpConn.WriteToUDPAddrPort(out, dst); err != nil {
		return fmt.Errorf("rtp: send to %s: %w", dst, err)
	}
	t.packets++
	t.octets += uint64(len(payload))
	t.sentSinceReport = true
	return nil
}

func (s *Session) sendTarget() netip.AddrPort {
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	return s.peers.remote
}
