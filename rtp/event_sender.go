package rtp

import "time"

// endRepeats is how often the final packet of an event is sent (RFC 4733 §2.5.1.4).
const endRepeats = 3

// EventSender produces the payloads of one digit per RFC 4733 §2.5: the first packet with
// the marker, the duration growing by one packet time each tick, then the end packet sent
// three times with the same final duration. All packets carry the event's start timestamp:
// send them with Session.WriteEvent(pt, marker, start, ...) and call Session.SkipSamples once
// per tick so audio resumes with a continuous timestamp.
type EventSender struct {
	code   uint8
	volume uint8
	step   uint32 // samples per packet
	total  uint32 // final duration in samples
	ticks  uint32 // packets returned so far
	ends   int    // end packets returned so far
}

// NewEventSender prepares the packets for one key press of the given code and duration,
// sent every ptime. The duration is at least one packet and at most 65535 samples (8.2 s at
// 8 kHz), the largest a single event can express. Volume is clamped to 63.
func NewEventSender(code uint8, duration time.Duration, ptime time.Duration, clockRate uint32, volume uint8) *EventSender {
	if clockRate == 0 {
		clockRate = 8000
	}
	if ptime <= 0 {
		ptime = 20 * time.Millisecond
	}
	step := uint32(max(min(samplesIn(ptime, clockRate), 0xffff), 1))
	total := uint32(min(samplesIn(duration, clockRate), 0xffff))
	return &EventSender{
		code:   code,
		volume: min(volume, 63),
		step:   step,
		total:  max(total, step),
	}
}

// SamplesPerPacket is the timestamp advance of one tick, for Session.SkipSamples.
func (e *EventSender) SamplesPerPacket() uint32 { return e.step }

// Next writes the payload for the next tick into buf (which needs 4 bytes; with less it
// writes nothing and does not advance) and says whether to set the marker. done is true with
// the last end packet and on every later call (which then writes nothing).
func (e *EventSender) Next(buf []byte) (n int, marker bool, done bool) {
	if e.ends >= endRepeats {
		return 0, false, true
	}
	if len(buf) < 4 {
		return 0, false, false
	}
	marker = e.ticks == 0
	e.ticks++
	ev := Event{Code: e.code, Volume: e.volume}
	if elapsed := e.ticks * e.step; elapsed < e.total {
		ev.Duration = uint16(elapsed)
	} else {
		ev.End = true
		ev.Duration = uint16(e.total)
		e.ends++
	}
	n, _ = ev.MarshalTo(buf) // cannot fail: buffer and volume checked above
	return n, marker, e.ends >= endRepeats
}
