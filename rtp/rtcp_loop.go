package rtp

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"
)

// rtcpOutSize bounds the reports we send: SR (52) + SDES (12 + 255 cname, padded).
const rtcpOutSize = 128 + 256

// rtcpLoop receives RTCP and sends a report whenever the randomised interval has passed. One
// goroutine does both: the read deadline is the next report time, so no timer is needed.
func (s *Session) rtcpLoop(deadline *deadlineGuard) {
	var in [readBufferSize]byte
	var out [rtcpOutSize]byte
	reporting := s.rtcpInterval > 0
	next := time.Now().Add(s.reportDelay())
	for {
		if reporting {
			deadline.set(next)
		} else {
			deadline.set(time.Time{})
		}
		n, src, err := s.rtcpConn.ReadFromUDPAddrPort(in[:])
		now := time.Now()
		switch {
		case err == nil:
			s.handleRTCP(in[:n], src, now)
		case errors.Is(err, os.ErrDeadlineExceeded):
			if deadline.stopped() {
				return
			}
		case errors.Is(err, net.ErrClosed):
			return
		default:
			s.log.Debug("rtcp read failed", "err", err)
			return
		}
		if reporting && !now.Before(next) {
			s.sendReport(now, out[:])
			next = now.Add(s.reportDelay())
		}
	}
}

// reportDelay is RTCPInterval randomised to [0.5, 1.5) of itself.
func (s *Session) reportDelay() time.Duration {
	if s.rtcpInterval <= 0 {
		return 0
	}
	return s.rtcpInterval/2 + rand.N(s.rtcpInterval)
}

// handleRTCP takes LSR from sender reports and, with Latch, adopts the RTCP source of the
// latched peer. Garbage is ignored.
func (s *Session) handleRTCP(b []byte, src netip.AddrPort, now time.Time) {
	b, ok := s.unprotectRTCP(b)
	if !ok {
		return
	}
	sr, haveSR, valid := parseRTCP(b)
	if !valid {
		return
	}
	s.rtcpRecv.Add(1)
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if s.latch {
		s.peers.mu.Lock()
		// Only from the RTP peer's address: RTCP must not redirect our reports elsewhere.
		if !s.peers.rtcpRemote.IsValid() && s.peers.remote.IsValid() && s.peers.remote.Addr() == src.Addr() {
			s.peers.rtcpRemote = src
		}
		s.peers.mu.Unlock()
	}
	if haveSR {
		s.rx.mu.Lock()
		if !s.rx.haveSSRC || s.rx.ssrc == sr.ssrc {
			s.rx.lsr, s.rx.lsrAt = sr.lsr, now
		}
		s.rx.mu.Unlock()
	}
}

// rtcpTarget is the latched RTCP source, else the RTP remote's port+1.
func (s *Session) rtcpTarget() netip.AddrPort {
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	if s.peers.rtcpRemote.IsValid() {
		return s.peers.rtcpRemote
	}
	r := s.peers.remote
	if !r.IsValid() || r.Port() == 65535 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(r.Addr(), r.Port()+1)
}

// sendReport sends SR (if we sent RTP since the last report) or RR, plus SDES CNAME.
func (s *Session) sendReport(now time.Time, out []byte) {
	dst := s.rtcpTarget()
	if !dst.IsValid() {
		return
	}
	t := &s.tx
	t.mu.Lock()
	ssrc := t.pkt.SSRC
	sendSR := t.sentSinceReport
	t.sentSinceReport = false
	si := senderInfo{
		ntp:     ntpTime(now),
		rtpTS:   t.lastTS + s.rtpUnits(now.Sub(t.lastAt)),
		packets: uint32(t.packets),
		octets:  uint32(t.octets),
	}
	if t.lastAt.IsZero() {
		si.rtpTS = t.ts // only events sent so far
	}
	t.mu.Unlock()

	rb, haveRB := s.reportBlock(now)
	var rbp *reportBlock
	if haveRB {
		rbp = &rb
	}
	var n int
	if sendSR {
		n = putSR(out, ssrc, si, rbp)
	} else {
		n = putRR(out, ssrc, rbp)
	}
	n += putSDES(out[n:], ssrc, s.cname)
	pkt, err := s.protectRTCP(out[:n])
	if err != nil {
		s.log.Debug("rtcp not sent", "err", err)
		return
	}
	if _, err := s.rtcpConn.WriteToUDPAddrPort(pkt, dst); err != nil {
		s.log.Debug("rtcp send failed", "err", err)
		return
	}
	s.rtcpSent.Add(1)
}

// reportBlock describes reception from the current source, if there is one.
func (s *Session) reportBlock(now time.Time) (reportBlock, bool) {
	r := &s.rx
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.haveSSRC {
		return reportBlock{}, false
	}
	rb := reportBlock{
		ssrc:         r.ssrc,
		fractionLost: r.seq.fractionLost(),
		cumulative:   r.seq.lost(),
		highestSeq:   uint32(r.seq.extendedMax()),
		jitter:       uint32(r.jitter.jitter),
	}
	if !r.lsrAt.IsZero() {
		rb.lsr = r.lsr
		rb.dlsr = uint32(samplesIn(now.Sub(r.lsrAt), 65536)) // units of 1/65536 s
	}
	return rb, true
}
