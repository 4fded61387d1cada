package sip

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/rtp"
)

// ErrNotDTMF is returned for INFO bodies that carry no DTMF digit.
var ErrNotDTMF = errors.New("sip: INFO carries no DTMF")

// ParseDTMFInfo reads a digit from a SIP INFO body: application/dtmf-relay
// ("Signal=5\r\nDuration=160", duration in ms) or application/dtmf ("5").
// Unknown content types wrap ErrNotDTMF so the caller can answer 415.
func ParseDTMFInfo(contentType string, body []byte) (rune, time.Duration, error) {
	ct, _, _ := strings.Cut(contentType, ";")
	switch strings.ToLower(strings.TrimSpace(ct)) {
	case "application/dtmf-relay":
		return parseDTMFRelay(string(body))
	case "application/dtmf":
		d, ok := dtmfDigit(strings.TrimSpace(string(body)))
		if !ok {
			return 0, 0, fmt.Errorf("%w: body %q", ErrNotDTMF, truncate(string(body)))
		}
		return d, 0, nil
	}
	return 0, 0, fmt.Errorf("%w: content type %q", ErrNotDTMF, truncate(contentType))
}

func parseDTMFRelay(body string) (rune, time.Duration, error) {
	var digit rune
	var duration time.Duration
	for _, line := range strings.FieldsFunc(body, func(r rune) bool { return r == '\r' || r == '\n' }) {
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "signal":
			d, ok := dtmfDigit(val)
			if !ok {
				return 0, 0, fmt.Errorf("%w: signal %q", ErrNotDTMF, truncate(val))
			}
			digit = d
		case "duration":
			ms, err := strconv.Atoi(val)
			if err != nil || ms < 0 || ms > 60000 {
				return 0, 0, fmt.Errorf("%w: duration %q", ErrNotDTMF, truncate(val))
			}
			duration = time.Duration(ms) * time.Millisecond
		}
	}
	if digit == 0 {
		return 0, 0, fmt.Errorf("%w: no Signal line", ErrNotDTMF)
	}
	return digit, duration, nil
}

// dtmfDigit accepts one keypad character (0-9, *, #, A-D, a-d), and the
// event codes 10 (*) and 11 (#) that some devices send instead.
func dtmfDigit(s string) (rune, bool) {
	switch s {
	case "10":
		return rtp.DigitRune(10)
	case "11":
		return rtp.DigitRune(11)
	}
	if len(s) != 1 {
		return 0, false
	}
	code, ok := rtp.DigitCode(rune(s[0]))
	if !ok {
		return 0, false
	}
	return rtp.DigitRune(code)
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
