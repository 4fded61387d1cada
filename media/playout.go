package media

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zaf/g711"
)

// ErrPlayoutFull is returned (wrapped, with the number of samples dropped) when a write would
// take the playout queue past its cap.
var ErrPlayoutFull = errors.New("playout queue full")

// DefaultMaxPlayout is the playout cap NewPlayout uses when given none.
const DefaultMaxPlayout = 5 * time.Minute

// playoutInitial is the ring's first allocation (200 ms, what a bot streaming in real time
// keeps queued); it doubles as needed up to the cap, a few times for a TTS burst.
const playoutInitial = SampleRate / 5

type playoutMark struct {
	at   uint64 // total samples written when the mark was set
	name string
}

// Playout is the agent's speech waiting to be paced out: chunks of any size are re-framed
// into 20 ms frames of 8 kHz PCM, with marks (fired once the audio written before them has
// been taken by NextFrame) and clear (barge-in). It is safe for one producer and one consumer
// goroutine at once (more are safe too, only the order between their calls is theirs).
type Playout struct {
	// clears counts Clear calls, so a reader holding part of a frame it
	// took before the clear knows to drop it.
	clears atomic.Uint64

	onMark func(string)
	cap    int // samples
	// wake gets a token after a write while wakeOnWrite is set: a pacer
	// holding a slot for late audio, or silent, wants the audio at once;
	// otherwise writes wake nobody (a wake-up per frame per call costs CPU).
	wake        chan struct{}
	wakeOnWrite atomic.Bool

	mu      sync.Mutex
	ring    []int16 // grow-only, up to cap
	head    int     // index of the oldest queued sample
	count   int     // queued samples
	written uint64  // samples ever queued
	read    uint64  // samples ever consumed (or cleared)
	flushAt uint64  // audio up to here may go out as a padded partial frame
	marks   []playoutMark
	markOff int // marks[:markOff] are done

	// Marks due are queued in fire, in order, and called outside mu by whichever call finds
	// firing false; a callback may call back into the Playout.
	fire    []string
	firing  bool
	scratch []string
}

// NewPlayout returns a queue capped at maxDuration of audio (DefaultMaxPlayout if <= 0) that
// calls onMark (may be nil) for each mark, in order, when it is due.
func NewPlayout(maxDuration time.Duration, onMark func(name string)) *Playout {
	if maxDuration <= 0 {
		maxDuration = DefaultMaxPlayout
	}
	c := int(maxDuration * SampleRate / time.Second)
	c = max(c, FrameSamples)
	return &Playout{onMark: onMark, cap: c, wake: make(chan struct{}, 1)}
}

// Written signals (coalesced) that audio was queued, while WakeOnWrite is on.
func (p *Playout) Written() <-chan struct{} { return p.wake }

// WakeOnWrite turns the Written signal on or off.
func (p *Playout) WakeOnWrite(on bool) { p.wakeOnWrite.Store(on) }

func (p *Playout) signal() {
	if !p.wakeOnWrite.Load() {
		return
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// HasFrame reports whether NextFrame(dst, false) would hand out a frame.
func (p *Playout) HasFrame() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count >= FrameSamples || (p.count > 0 && p.flushAt > p.read)
}

// WritePCM queues 8 kHz linear PCM. Samples that would take the queue past its cap are
// dropped: it returns how many, with an error wrapping ErrPlayoutFull.
func (p *Playout) WritePCM(samples []int16) (dropped int, err error) {
	p.mu.Lock()
	room := p.reserve(len(samples))
	p.put(samples[:room])
	p.mu.Unlock()
	p.signal()
	return p.dropped(len(samples) - room)
}

// WriteUlaw queues G.711 µ-law bytes (decoded to PCM), as an agent speaking µ-law sends them.
// Dropping at the cap is as for WritePCM.
func (p *Playout) WriteUlaw(payload []byte) (dropped int, err error) {
	p.mu.Lock()
	room := p.reserve(len(payload))
	src := payload[:room]
	for len(src) > 0 {
		tail := (p.head + p.count) % len(p.ring)
		n := min(len(src), len(p.ring)-tail)
		dst := p.ring[tail : tail+n]
		for i, b := range src[:n] {
			dst[i] = g711.DecodeUlawFrame(b)
		}
		p.count += n
		p.written += uint64(n)
		src = src[n:]
	}
	p.mu.Unlock()
	p.signal()
	return p.dropped(len(payload) - room)
}

func (p *Playout) dropped(n int) (int, error) {
	if n == 0 {
		return 0, nil
	}
	return n, fmt.Errorf("%w: dropped %d samples (%v) over the %v cap", ErrPlayoutFull, n,
		time.Duration(n)*time.Second/SampleRate, time.Duration(p.cap)*time.Second/SampleRate)
}

// reserve makes room for up to n more samples and returns how many fit. Call with mu held.
func (p *Playout) reserve(n int) int {
	n = min(n, p.cap-p.count)
	need := p.count + n
	if need <= len(p.ring) {
		return n
	}
	size := max(len(p.ring)*2, playoutInitial, need)
	size = min(size, p.cap)
	ring := make([]int16, size)
	p.copyOut(ring[:p.count])
	p.ring, p.head = ring, 0
	return n
}

// put appends samples, which fit. Call with mu held.
func (p *Playout) put(samples []int16) {
	for len(samples) > 0 {
		tail := (p.head + p.count) % len(p.ring)
		n := copy(p.ring[tail:], samples)
		p.count += n
		p.written += uint64(n)
		samples = samples[n:]
	}
}

// copyOut copies the oldest len(dst) queued samples to dst without consuming them.
func (p *Playout) copyOut(dst []int16) {
	n := copy(dst, p.ring[p.head:min(p.head+len(dst), len(p.ring))])
	copy(dst[n:], p.ring[:len(dst)-n])
}

// Mark calls onMark(name) once all audio written before it has been taken by NextFrame: at
// once, before Mark returns, when the queue is empty (unless another goroutine is in the
// middle of firing marks, which then fires this one too, in order).
func (p *Playout) Mark(name string) {
	p.mu.Lock()
	if p.count == 0 && p.markOff == len(p.marks) {
		p.fire = append(p.fire, name)
	} else {
		p.marks = append(p.marks, playoutMark{at: p.written, name: name})
	}
	p.fireMarks()
}

// Flush lets the audio written so far go out completely: its trailing partial frame is padded
// with silence by NextFrame instead of waiting for more audio.
func (p *Playout) Flush() {
	p.mu.Lock()
	p.flushAt = p.written
	p.mu.Unlock()
	p.signal()
}

// Clear drops all queued audio, including a partial frame, and fires every pending mark at
// once, in order.
func (p *Playout) Clear() {
	p.clears.Add(1)
	p.mu.Lock()
	p.head, p.count = 0, 0
	p.read = p.written
	p.flushAt = p.written
	for _, m := range p.marks[p.markOff:] {
		p.fire = append(p.fire, m.name)
	}
	p.resetMarks()
	p.fireMarks()
}

func (p *Playout) resetMarks() {
	clear(p.marks) // drop the name strings
	p.marks, p.markOff = p.marks[:0], 0
}

// NextFrame copies the next 20 ms frame into dst (len(dst) >= FrameSamples) and reports true,
// or reports false when less than a frame is queued. A trailing partial frame is padded with
// silence and handed out when allowPartial is true or Flush covered it. Marks that become due
// fire before NextFrame returns. It does not allocate.
func (p *Playout) NextFrame(dst []int16, allowPartial bool) bool {
	dst = dst[:FrameSamples]
	p.mu.Lock()
	n := FrameSamples
	if p.count < FrameSamples {
		n = p.count
		if !allowPartial {
			n = int(min(uint64(n), p.flushAt-min(p.flushAt, p.read)))
		}
		if n == 0 {
			p.mu.Unlock()
			return false
		}
	}
	p.copyOut(dst[:n])
	clear(dst[n:])
	p.head = (p.head + n) % len(p.ring)
	p.count -= n
	p.read += uint64(n)
	if p.count == 0 {
		p.head = 0
	}
	for p.markOff < len(p.marks) && p.marks[p.markOff].at <= p.read {
		p.fire = append(p.fire, p.marks[p.markOff].name)
		p.marks[p.markOff].name = ""
		p.markOff++
	}
	if p.markOff == len(p.marks) {
		p.resetMarks()
	}
	p.fireMarks()
	return true
}

// fireMarks unlocks mu and calls onMark for queued marks, unless another call is already
// doing so (it will pick these up). Call with mu held.
func (p *Playout) fireMarks() {
	if p.firing || len(p.fire) == 0 {
		p.mu.Unlock()
		return
	}
	p.firing = true
	for len(p.fire) > 0 {
		batch := p.fire
		p.fire = p.scratch[:0]
		p.mu.Unlock()
		if p.onMark != nil {
			for _, name := range batch {
				p.onMark(name)
			}
		}
		clear(batch)
		p.mu.Lock()
		p.scratch = batch[:0]
	}
	p.firing = false
	p.mu.Unlock()
}

// Buffered returns how much audio is queued, partial frame included.
func (p *Playout) Buffered() time.Duration {
	p.mu.Lock()
	n := p.count
	p.mu.Unlock()
	return time.Duration(n) * time.Second / SampleRate
}

// Clears counts Clear calls so far.
func (p *Playout) Clears() uint64 { return p.clears.Load() }
