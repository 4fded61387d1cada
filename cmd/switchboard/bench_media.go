package main

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// benchRing is how many recent frames a call remembers: 5.12 s. A frame
// that comes back later than that is counted late, not matched.
const benchRing = 256

// benchMedia is one call's RTP: one UDP socket, the frames sent and what
// became of each, read by the call's receive goroutine and the in-process
// bot. Times are nanoseconds on the run's monotonic clock (benchClock).
type benchMedia struct {
	idx    uint32
	conn   *net.UDPConn
	remote netip.AddrPort
	clock  *benchClock
	stats  *benchStats

	// Pacer-owned: only the pacer goroutine touches these.
	pkt    [benchHeader + benchPayload]byte
	seq    uint16
	ts     uint32
	ssrc   uint32
	frames uint32 // to send
	due    time.Time
	done   chan struct{} // closed by the pacer after the last frame

	sent atomic.Uint32 // frames sent so far

	sentAt  [benchRing]atomic.Int64  // frame f: when it left our socket
	botAt   [benchRing]atomic.Int64  // frame f: when the bot wrote its echo
	botSeen [benchRing]atomic.Uint32 // f+1 once the bot has read frame f
	echoed  [benchRing]atomic.Uint32 // f+1 once frame f came back

	botGot    atomic.Uint32
	botFirst  atomic.Uint32 // f+1 of the first frame the bot read (0: none)
	botEchoed atomic.Uint32
	echoes    atomic.Uint32 // unique bench frames back
	dups      atomic.Uint32
	late      atomic.Uint32
	silence   atomic.Uint32 // packets without a bench mark (comfort silence)
	foreign   atomic.Uint32 // bench frames of another call: misrouted media
	otherPT   atomic.Uint32
}

func newBenchMedia(idx uint32, conn *net.UDPConn, remote netip.AddrPort, frames uint32, clock *benchClock, stats *benchStats) *benchMedia {
	m := &benchMedia{idx: idx, conn: conn, remote: remote, frames: frames, clock: clock, stats: stats,
		ssrc: rand.Uint32(), seq: uint16(rand.Uint32()), ts: rand.Uint32(), done: make(chan struct{})}
	fillBenchPayload(m.pkt[benchHeader:])
	return m
}

// sendFrame sends the next frame; the pacer calls it.
func (m *benchMedia) sendFrame() {
	f := m.sent.Load()
	writeRTPHeader(m.pkt[:benchHeader], f == 0, m.seq, m.ts, m.ssrc)
	markBenchFrame(m.pkt[benchHeader:], m.idx, f)
	m.sentAt[f%benchRing].Store(m.clock.now())
	if _, err := m.conn.WriteToUDPAddrPort(m.pkt[:], m.remote); err != nil {
		m.stats.sendErrors.Add(1)
	}
	m.sent.Store(f + 1)
	m.seq++
	m.ts += benchPayload
}

// receive reads the gateway's RTP until the socket is closed.
func (m *benchMedia) receive() {
	buf := make([]byte, 2048)
	for {
		n, err := m.conn.Read(buf)
		if err != nil {
			return
		}
		at := m.clock.now()
		pt, payload, ok := rtpPayload(buf[:n])
		if !ok || pt != 0 {
			m.otherPT.Add(1)
			continue
		}
		call, f, ok := parseBenchFrame(payload)
		if !ok {
			m.silence.Add(1)
			continue
		}
		if call != m.idx {
			m.foreign.Add(1)
			continue
		}
		slot := f % benchRing
		if m.echoed[slot].Load() == f+1 {
			m.dups.Add(1)
			continue
		}
		if f+benchRing <= m.sent.Load() {
			m.late.Add(1) // its slot belongs to a newer frame now
			continue
		}
		m.echoed[slot].Store(f + 1)
		m.echoes.Add(1)
		m.stats.roundTrip.add(time.Duration(at - m.sentAt[slot].Load()))
		if m.botSeen[slot].Load() == f+1 {
			if b := m.botAt[slot].Load(); b != 0 {
				m.stats.outbound.add(time.Duration(at - b))
			}
		}
	}
}

// botRead records that the bot read frame f at time at; it returns false
// for a duplicate.
func (m *benchMedia) botRead(f uint32, at int64) bool {
	slot := f % benchRing
	if m.botSeen[slot].Load() == f+1 {
		return false
	}
	m.botAt[slot].Store(0)
	m.botSeen[slot].Store(f + 1)
	m.botGot.Add(1)
	m.botFirst.CompareAndSwap(0, f+1)
	m.stats.inbound.add(time.Duration(at - m.sentAt[slot].Load()))
	return true
}

// botWrote records when the bot wrote frame f's echo.
func (m *benchMedia) botWrote(f uint32, at int64) {
	slot := f % benchRing
	if m.botSeen[slot].Load() == f+1 {
		m.botAt[slot].Store(at)
	}
	m.botEchoed.Add(1)
}

// benchClock is the run's one monotonic clock.
type benchClock struct{ epoch time.Time }

func (c *benchClock) now() int64 { return int64(time.Since(c.epoch)) }

// benchPacer sends 20 ms frames for many calls from one goroutine. Calls
// are spread over 20 phase buckets of 1 ms by their start time, so the
// gateway sees a steady packet stream rather than one burst per 20 ms, and
// the pacer wakes once a millisecond whatever the number of calls.
type benchPacer struct {
	mu      sync.Mutex
	buckets [20][]*benchMedia
	stats   *benchStats
}

func (p *benchPacer) add(m *benchMedia) {
	now := time.Now()
	// Due on the bucket's millisecond, not within it: a due time later in
	// that millisecond than the pacer's wake-up would wait a whole round
	// and then go out as a burst of two.
	// The bucket's pass for this millisecond may be over already, so the
	// first frame is due a round later: due now, it would go out with the
	// second as a burst.
	m.due = now.Truncate(time.Millisecond).Add(benchFrameTime)
	p.mu.Lock()
	b := &p.buckets[now.UnixMilli()%20]
	*b = append(*b, m)
	p.mu.Unlock()
}

// run paces until stop is closed; calls still in it then are finished.
func (p *benchPacer) run(stop <-chan struct{}) {
	last := time.Now().UnixMilli()
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			p.finishAll()
			return
		case <-t.C:
		}
		now := time.Now()
		ms := now.UnixMilli()
		// Buckets whose phase passed since the last wake-up; all 20 after a
		// stall of 20 ms or more.
		k := min(ms-last, 20)
		p.mu.Lock()
		for i := ms - k + 1; i <= ms; i++ {
			p.tick(&p.buckets[i%20], now)
		}
		p.mu.Unlock()
		last = ms
		t.Reset(time.Until(time.UnixMilli(ms + 1)))
	}
}

// tick sends what is due for one bucket: up to three frames per call to
// catch up after a short stall; after a longer one the call's clock skips
// ahead (counted as a pacer stall) rather than bursting.
func (p *benchPacer) tick(b *[]*benchMedia, now time.Time) {
	calls := *b
	for i := 0; i < len(calls); {
		m := calls[i]
		for n := 0; n < 3 && !m.due.After(now) && m.sent.Load() < m.frames; n++ {
			m.sendFrame()
			m.due = m.due.Add(benchFrameTime)
		}
		if behind := now.Sub(m.due); behind > 3*benchFrameTime {
			p.stats.pacerStalls.Add(1)
			// Skip whole frames, so the call keeps its bucket's phase.
			m.due = m.due.Add((behind/benchFrameTime + 1) * benchFrameTime)
		}
		if m.sent.Load() >= m.frames {
			close(m.done)
			calls[i] = calls[len(calls)-1]
			calls[len(calls)-1] = nil
			calls = calls[:len(calls)-1]
			continue
		}
		i++
	}
	*b = calls
}

func (p *benchPacer) finishAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.buckets {
		for _, m := range p.buckets[i] {
			close(m.done)
		}
		p.buckets[i] = nil
	}
}

// remove takes a call out early (the far end hung up); done is closed.
func (p *benchPacer) remove(m *benchMedia) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.buckets {
		for j, c := range p.buckets[i] {
			if c == m {
				p.buckets[i] = append(p.buckets[i][:j], p.buckets[i][j+1:]...)
				close(m.done)
				return
			}
		}
	}
}
