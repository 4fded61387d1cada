package sip

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// ErrHeaderInjection is returned when a value destined for a SIP header
// contains characters that would end the header (CR, LF) or the message.
var ErrHeaderInjection = errors.New("sip: header value contains CR, LF or NUL")

// CheckHeaderValue refuses values that could smuggle extra headers into a
// message we send. Every value that came from outside passes through here.
func CheckHeaderValue(v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("%w: %q", ErrHeaderInjection, v)
	}
	return nil
}

// NewSafeHeader builds a header after checking name and value for injection.
func NewSafeHeader(name, value string) (sipmsg.Header, error) {
	if err := CheckHeaderValue(name); err != nil {
		return nil, err
	}
	if strings.ContainsAny(name, ": \t") || name == "" {
		return nil, fmt.Errorf("sip: invalid header name %q", name)
	}
	if err := CheckHeaderValue(value); err != nil {
		return nil, err
	}
	return sipmsg.NewHeader(name, value), nil
}

// Reason is an RFC 3326 Reason header value explaining why we end a call.
type Reason struct {
	Protocol string // "SIP" or "Q.850"
	Cause    int
	Text     string
}

// HangupCause names why Switchboard ends a call; each maps to the Reason
// header carriers log (Q.850 causes).
type HangupCause int

const (
	CauseNormal HangupCause = iota
	CauseRTPTimeout
	CauseAgentHangup
	CauseShutdown
	CauseError
)

// Reason returns the Reason header value for the cause.
func (c HangupCause) Reason() Reason {
	switch c {
	case CauseRTPTimeout:
		return Reason{Protocol: "Q.850", Cause: 102, Text: "RTP inactivity timeout"}
	case CauseAgentHangup:
		return Reason{Protocol: "Q.850", Cause: 16, Text: "Agent hung up"}
	case CauseShutdown:
		return Reason{Protocol: "Q.850", Cause: 41, Text: "Gateway shutting down"}
	case CauseError:
		return Reason{Protocol: "Q.850", Cause: 41, Text: "Temporary failure"}
	default:
		return Reason{Protocol: "Q.850", Cause: 16, Text: "Normal call clearing"}
	}
}

func (r Reason) String() string {
	text := strings.NewReplacer("\"", "'", "\r", " ", "\n", " ").Replace(r.Text)
	return fmt.Sprintf("%s;cause=%d;text=\"%s\"", r.Protocol, r.Cause, text)
}

// RetryAfter is a Retry-After header of d in whole seconds (RFC 3261 §20.33).
func RetryAfter(d time.Duration) sipmsg.Header {
	return sipmsg.NewHeader("Retry-After", strconv.Itoa(int(d/time.Second)))
}

func (r Reason) header() sipmsg.Header { return sipmsg.NewHeader("Reason", r.String()) }

// warningHeader is an RFC 3261 Warning (code 304, media type not available
// and friends) whose text is kept inside its quotes.
func warningHeader(code int, host, text string) sipmsg.Header {
	text = strings.NewReplacer("\"", "'", "\\", "/", "\r", " ", "\n", " ").Replace(text)
	return sipmsg.NewHeader("Warning", fmt.Sprintf("%d %s \"%s\"", code, host, text))
}
