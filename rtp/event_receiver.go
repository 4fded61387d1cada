package rtp

import "time"

// Digit is one DTMF key press received as RFC 4733 events.
type Digit struct {
	Rune      rune
	Duration  time.Duration
	Timestamp uint32 // the event's RTP (start) timestamp
	Code      uint8  // the raw event code (0-15)
}

// EventReceiver turns a stream of telephone-event packets into digits. Events are told apart
// by their RTP timestamp, not by the marker bit, because some carriers omit the marker and
// lost packets would hide it anyway. Retransmitted end packets count once; a long press (many
// packets, one timestamp) is reported once, with its final duration.
//
// Non-DTMF events (codes above 15, such as flash) are tracked for de-duplication but never
// reported. An EventReceiver is not safe for concurrent use.
type EventReceiver struct {
	clockRate uint32

	active   bool   // ts/code/duration describe the latest event
	ts       uint32 // its start timestamp
	code     uint8
	duration uint16
	reported bool // its digit was returned: later packets for ts are retransmissions
	endSeen  bool // an end arrived while an older digit had to be reported first

	// lastDigit is the timestamp of the last digit returned. A straggler for it that
	// arrives after another event took over must not report it again.
	lastDigit     uint32
	haveLastDigit bool
}

// NewEventReceiver returns a receiver for a stream with the given RTP clock rate (8000 for
// telephone-event/8000).
func NewEventReceiver(clockRate uint32) *EventReceiver {
	if clockRate == 0 {
		clockRate = 8000
	}
	return &EventReceiver{clockRate: clockRate}
}

// staleWindow is how far (in seconds of timestamp) behind the current event a packet may be
// and still be taken for a late retransmission of an earlier event rather than a new stream.
const staleWindow = 10

// Push takes one telephone-event packet (its RTP timestamp and parsed payload). It returns a
// digit when one completes (the first end packet for its timestamp), or when a new timestamp
// arrives while the previous event never got its end: then the previous one is reported,
// with the last duration seen.
func (r *EventReceiver) Push(ts uint32, ev Event) (Digit, bool) {
	if r.active && ts == r.ts {
		if r.reported {
			return Digit{}, false
		}
		// Durations only grow within an event; max() also survives reordering.
		r.duration = max(r.duration, ev.Duration)
		if ev.End || r.endSeen {
			return r.take()
		}
		return Digit{}, false
	}
	if r.active && r.isStale(ts) || r.haveLastDigit && ts == r.lastDigit {
		return Digit{}, false
	}

	prev, hadPrev := r.take()
	r.active, r.ts, r.code, r.duration, r.reported, r.endSeen = true, ts, ev.Code, ev.Duration, false, false
	if ev.End {
		if !hadPrev {
			return r.take()
		}
		// Only one digit can be returned per call: this one goes out with its next
		// retransmitted end packet (senders repeat it three times) or with Flush.
		r.endSeen = true
	}
	return prev, hadPrev
}

// Flush reports an event still open (no end seen), with the last duration seen. The caller
// decides when: a packet stream's end packets can all be lost, and nothing else would report
// the digit until the next event starts.
func (r *EventReceiver) Flush() (Digit, bool) {
	return r.take()
}

// Pending reports whether an event has started and not been reported: its end has not
// arrived, or arrived while an older digit was being reported. Flush would report it.
func (r *EventReceiver) Pending() bool {
	return r.active && !r.reported
}

// take returns the current event's digit once.
func (r *EventReceiver) take() (Digit, bool) {
	if !r.active || r.reported {
		return Digit{}, false
	}
	r.reported = true
	ch, ok := DigitRune(r.code)
	if !ok {
		return Digit{}, false
	}
	r.lastDigit, r.haveLastDigit = r.ts, true
	return Digit{
		Rune:      ch,
		Duration:  durationOf(uint64(r.duration), r.clockRate),
		Timestamp: r.ts,
		Code:      r.code,
	}, true
}

// isStale reports whether ts lies shortly before the current event: a late copy of an event
// already handled. Far-away timestamps are taken as a new stream (SSRC change, restart).
func (r *EventReceiver) isStale(ts uint32) bool {
	d := int64(int32(ts - r.ts))
	return d < 0 && d > -int64(staleWindow)*int64(r.clockRate)
}
