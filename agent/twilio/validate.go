package twilio

import (
	"fmt"
	"strings"

	"github.com/switchboard-voice/switchboard/agent"
)

// validDigits checks DTMF digits (0-9 * # A-D; a-d are upper-cased).
func validDigits(s string) (string, error) {
	if s == "" || len(s) > maxDigits {
		return "", fmt.Errorf("%w: sendDigits needs 1 to %d digits", ErrMalformed, maxDigits)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || c == '*' || c == '#' || 'A' <= c && c <= 'D' || 'a' <= c && c <= 'd') {
			return "", fmt.Errorf("%w: %q is not a DTMF digit", ErrMalformed, c)
		}
	}
	return strings.ToUpper(s), nil
}

// validTransfer checks a transfer request; values end up in SIP headers, so
// control characters (CR/LF injection) are refused.
func validTransfer(req *agent.TransferRequest, headers map[string]string) error {
	switch req.Mode {
	case "":
		req.Mode = agent.TransferCold
	case agent.TransferCold, agent.TransferWarm:
	default:
		return fmt.Errorf("%w: transfer mode %q (want cold or warm)", ErrMalformed, req.Mode)
	}
	if req.Target == "" || len(req.Target) > maxTargetLen || !printable(req.Target, false) {
		return fmt.Errorf("%w: transfer target must be 1 to %d printable bytes without spaces", ErrMalformed, maxTargetLen)
	}
	if len(req.Context) > maxContextLen || !printable(req.Context, true) {
		return fmt.Errorf("%w: transfer context must be at most %d bytes without control characters", ErrMalformed, maxContextLen)
	}
	if len(headers) > maxHeaders {
		return fmt.Errorf("%w: more than %d transfer headers", ErrMalformed, maxHeaders)
	}
	for k, v := range headers {
		if !isToken(k) || len(k) > maxHeaderLen || len(v) > maxHeaderLen || !printable(v, true) {
			return fmt.Errorf("%w: transfer header %q is not a valid SIP header", ErrMalformed, k)
		}
	}
	if len(headers) > 0 {
		req.Headers = headers
	}
	return nil
}

// printable reports whether s has no control characters (and, unless
// spaces is set, no spaces).
func printable(s string, spaces bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == ' ' && !spaces {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 3261 token (a header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0) {
			return false
		}
	}
	return true
}
