package rtp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// receiver is the incoming stream's state. The reader goroutine owns the packets; mu guards
// the counters against Stats and the RTCP goroutine. It is released around handler calls so
// a handler may call Stats.
type receiver struct {
	mu      sync.Mutex
	buf     [readBufferSize]byte
	pkt     rtp.Packet
	heldPkt rtp.Packet // its Payload aliases heldBuf
	heldBuf [maxPacketSize]byte

	srtp     *srtpReceiver // nil: plain RTP
	plain    [maxPacketSize]byte
	authFail uint64 // SRTP packets that failed authentication

	haveSSRC bool
	ssrc     uint32
	seq      sequencer
	jitter   jitterMeter
	epoch    uint64 // bumped whenever sequence state restarts; lets tests check ordering per epoch

	packets     uint64
	octets      uint64
	dropped     uint64
	duplicates  uint64
	reordered   uint64
	ssrcChanges uint64
	lostBefore  int64 // cumulative loss of earlier sources and restarted sequences

	lsr   uint32    // middle 32 bits of the NTP time of the last SR received
	lsrAt time.Time // when it arrived
}

// ReadLoop reads packets until ctx ends or Close is called (both return nil: a normal end,
// and the caller knows its context), or no RTP arrived for InactivityTimeout while not on
// hold (returns ErrInactive, wrapped).
// handle is called for each accepted packet in order; p and p.Payload are reused buffers,
// valid only during the call. No allocation per packet. RTCP is sent and received by a
// second goroutine that ends before ReadLoop returns. Call ReadLoop once.
func (s *Session) ReadLoop(ctx context.Context, handle func(p *rtp.Packet)) error {
	if !s.reading.CompareAndSwap(false, true) {
		return errors.New("rtp: ReadLoop called twice")
	}
	if s.rtpConn == nil {
		return errors.New("rtp: ReadLoop on a session without sockets")
	}
	if handle == nil {
		handle = func(*rtp.Packet) {}
	}
	ctx, cancel := context.WithCancel(ctx)
	rtpDeadline := &deadlineGuard{conn: s.rtpConn}
	rtcpDeadline := &deadlineGuard{conn: s.rtcpConn}
	stopWatching := context.AfterFunc(ctx, func() {
		rtpDeadline.stop()
		rtcpDeadline.stop()
	})
	defer stopWatching()

	var wg sync.WaitGroup
	wg.Go(func() { s.rtcpLoop(rtcpDeadline) })
	err := s.readRTP(ctx, rtpDeadline, handle)
	cancel()
	wg.Wait()
	return err
}

func (s *Session) readRTP(ctx context.Context, deadline *deadlineGuard, handle func(*rtp.Packet)) error {
	poll := s.pollInterval()
	s.lastRTP.Store(int64(s.sinceEpoch(time.Now())))
	deadline.set(time.Now().Add(poll))
	buf := s.rx.buf[:]
	for {
		n, src, err := s.rtpConn.ReadFromUDPAddrPort(buf)
		now := time.Now()
		if err == nil {
			s.processDatagram(buf[:n], src, now, handle)
			continue
		}
		switch {
		case s.closed.Load() || errors.Is(err, net.ErrClosed) || ctx.Err() != nil:
			return nil
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("rtp: read: %w", err)
		}
		// Idle wake-up. A packet held for a gap is released here at the latest, so the last
		// packet before a pause (or a digit's end) is not stranded until the stream resumes.
		s.flushHeld(handle)
		if s.inactive(now) {
			return fmt.Errorf("%w: no RTP for %v", ErrInactive, s.inactivity)
		}
		deadline.set(now.Add(poll))
	}
}

// pollInterval is how often the reader wakes without packets to check for inactivity.
// Deadlines, unlike per-packet timers, cost nothing while packets flow.
func (s *Session) pollInterval() time.Duration {
	if s.inactivity <= 0 {
		return time.Second
	}
	return min(max(s.inactivity/4, 10*time.Millisecond), time.Second)
}

func (s *Session) inactive(now time.Time) bool {
	if s.inactivity <= 0 || s.hold.Load() {
		return false
	}
	return s.sinceEpoch(now)-time.Duration(s.lastRTP.Load()) > s.inactivity
}

// processDatagram applies the receive rules to one datagram and calls handle for each packet
// it releases (zero, one or two). It is the whole receive path minus the socket.
func (s *Session) processDatagram(b []byte, src netip.AddrPort, now time.Time, handle func(*rtp.Packet)) {
	r := &s.rx
	r.mu.Lock()
	defer r.mu.Unlock()

	p := &r.pkt
	if len(b) > maxPacketSize || len(b) < 12 || b[0]>>6 != 2 {
		r.dropped++
		return
	}
	if r.srtp != nil {
		// Before latching and the inactivity clock: only authentic packets count.
		plain, err := r.srtp.unprotect(r.plain[:], b)
		switch err {
		case nil:
			b = plain
		case errSRTPReplay:
			r.duplicates++
			return
		default:
			r.authFail++
			r.dropped++
			return
		}
	}
	if err := p.Unmarshal(b); err != nil {
		r.dropped++
		return
	}
	ptOK := s.acceptsPayloadType(p.PayloadType)
	if !s.acceptSource(src, ptOK) {
		r.dropped++
		return
	}
	// Any RTP from the peer proves it alive, even a payload type we do not take (comfort
	// noise during silence suppression, for one): a 30 s pause must not hang up the call.
	s.lastRTP.Store(int64(s.sinceEpoch(now)))
	if !ptOK {
		r.dropped++
		return
	}
	seq := p.SequenceNumber
	arrival := s.rtpUnits(s.sinceEpoch(now))
	if !r.haveSSRC || p.SSRC != r.ssrc {
		if r.haveSSRC {
			// The far end switched streams (transfer, re-INVITE, media server): whatever
			// was held belongs to the old one.
			r.deliverHeld(handle)
			r.ssrcChanges++
			s.log.Debug("rtp ssrc changed", "old", r.ssrc, "new", p.SSRC)
		}
		r.haveSSRC, r.ssrc = true, p.SSRC
		r.restart(p, arrival)
		r.deliver(p, handle)
		return
	}

	flushHeld, v := r.seq.classify(seq)
	if flushHeld {
		r.deliver(&r.heldPkt, handle)
	}
	switch v {
	case verdictDeliver:
		r.jitter.update(arrival, p.Timestamp, p.PayloadType)
		r.deliver(p, handle)
	case verdictRestart:
		r.restart(p, arrival)
		r.deliver(p, handle)
	case verdictHold:
		r.jitter.update(arrival, p.Timestamp, p.PayloadType)
		n := copy(r.heldBuf[:], b)
		_ = r.heldPkt.Unmarshal(r.heldBuf[:n]) // parsed once already, cannot fail
	case verdictFillGap:
		r.jitter.update(arrival, p.Timestamp, p.PayloadType)
		r.reordered++
		r.deliver(p, handle)
		r.deliver(&r.heldPkt, handle)
	case verdictLate:
		r.jitter.update(arrival, p.Timestamp, p.PayloadType)
		r.reordered++
		r.dropped++
	case verdictDuplicate:
		r.duplicates++
	case verdictProbation:
		r.dropped++
	}
}

// restart begins a new sequence at p (new SSRC, or a sender restart confirmed by two
// consecutive packets), keeping the loss counted so far. Caller holds r.mu.
func (r *receiver) restart(p *rtp.Packet, arrival uint32) {
	r.lostBefore += r.seq.lost()
	r.seq.start(p.SequenceNumber)
	r.jitter = jitterMeter{}
	r.jitter.update(arrival, p.Timestamp, p.PayloadType)
	r.epoch++
}

// deliver counts p and hands it to handle without holding the lock. Caller holds r.mu.
func (r *receiver) deliver(p *rtp.Packet, handle func(*rtp.Packet)) {
	r.packets++
	r.octets += uint64(len(p.Payload))
	r.mu.Unlock()
	defer r.mu.Lock()
	handle(p)
}

// deliverHeld releases a held packet, if any. Caller holds r.mu.
func (r *receiver) deliverHeld(handle func(*rtp.Packet)) {
	if r.seq.started && r.seq.held {
		r.seq.held = false
		r.seq.advance(r.seq.last + 2)
		r.deliver(&r.heldPkt, handle)
	}
}

// flushHeld releases a held packet when the stream pauses.
func (s *Session) flushHeld(handle func(*rtp.Packet)) {
	s.rx.mu.Lock()
	defer s.rx.mu.Unlock()
	s.rx.deliverHeld(handle)
}

// acceptSource applies symmetric RTP: latch onto the first valid source (mayLatch), then
// drop others.
func (s *Session) acceptSource(src netip.AddrPort, mayLatch bool) bool {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	pe := &s.peers
	pe.mu.Lock()
	defer pe.mu.Unlock()
	if pe.latched {
		return src == pe.source
	}
	if pe.armed && mayLatch {
		pe.armed, pe.latched, pe.source = false, true, src
		if pe.remote != src {
			pe.remote = src
			pe.rtcpRemote = netip.AddrPort{}
		}
		s.log.Info("rtp latched", "remote", src.String())
	}
	return true
}

// deadlineGuard sets read deadlines until stopped. Once stopped (context done) the deadline
// stays in the past, so a reader re-arming its poll deadline cannot undo the stop.
type deadlineGuard struct {
	mu   sync.Mutex
	conn *net.UDPConn
	done bool
}

func (g *deadlineGuard) set(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done {
		_ = g.conn.SetReadDeadline(t) // fails only on a closed socket, which ends the read anyway
	}
}

func (g *deadlineGuard) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.done = true
	_ = g.conn.SetReadDeadline(time.Unix(1, 0))
}

func (g *deadlineGuard) stopped() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done
}
