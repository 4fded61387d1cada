package rtp

import (
	"encoding/binary"
	"errors"
	"io"
	"time"
)

// ErrShortEvent is returned by ParseEvent for a payload shorter than the 4-byte event.
var ErrShortEvent = errors.New("rtp: telephone-event payload shorter than 4 bytes")

// Event is one RFC 4733 telephone-event payload.
type Event struct {
	Code     uint8  // 0-9, 10 '*', 11 '#', 12-15 'A'-'D'; higher codes are other tones
	End      bool   // E bit: the last packet(s) of the event
	Volume   uint8  // power level in -dBm0, 0-63
	Duration uint16 // in timestamp units since the event's start timestamp
}

// ParseEvent decodes the first 4 bytes of a telephone-event payload. Extra bytes (redundant
// events per RFC 4733 §2.4 are not used by carriers in practice) are ignored.
func ParseEvent(payload []byte) (Event, error) {
	if len(payload) < 4 {
		return Event{}, ErrShortEvent
	}
	return Event{
		Code:     payload[0],
		End:      payload[1]&0x80 != 0,
		Volume:   payload[1] & 0x3f,
		Duration: binary.BigEndian.Uint16(payload[2:4]),
	}, nil
}

// MarshalTo writes the 4-byte payload into b. The reserved bit is sent as zero.
func (e Event) MarshalTo(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, io.ErrShortBuffer
	}
	if e.Volume > 63 {
		return 0, errors.New("rtp: telephone-event volume above 63")
	}
	b[0] = e.Code
	b[1] = e.Volume
	if e.End {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:4], e.Duration)
	return 4, nil
}

// DigitRune maps an event code to its DTMF key: 0-9, *, #, A-D (codes 0-15).
func DigitRune(code uint8) (rune, bool) {
	switch {
	case code <= 9:
		return rune('0' + code), true
	case code == 10:
		return '*', true
	case code == 11:
		return '#', true
	case code <= 15:
		return rune('A' + code - 12), true
	}
	return 0, false
}

// DigitCode maps a DTMF key to its event code; a-d are accepted as A-D.
func DigitCode(r rune) (uint8, bool) {
	switch {
	case r >= '0' && r <= '9':
		return uint8(r - '0'), true
	case r == '*':
		return 10, true
	case r == '#':
		return 11, true
	case r >= 'A' && r <= 'D':
		return uint8(r-'A') + 12, true
	case r >= 'a' && r <= 'd':
		return uint8(r-'a') + 12, true
	}
	return 0, false
}

// samplesIn converts a duration to timestamp units without overflowing for long durations.
func samplesIn(d time.Duration, clockRate uint32) uint64 {
	if d <= 0 {
		return 0
	}
	sec := uint64(d / time.Second)
	rem := uint64(d % time.Second)
	return sec*uint64(clockRate) + rem*uint64(clockRate)/uint64(time.Second)
}

// durationOf converts timestamp units to a duration.
func durationOf(samples uint64, clockRate uint32) time.Duration {
	if clockRate == 0 {
		return 0
	}
	return time.Duration(samples * uint64(time.Second) / uint64(clockRate))
}
