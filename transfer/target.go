package transfer

import (
	"errors"
	"fmt"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/sip"
)

// ErrNotAllowed is wrapped when a target is not on the allowlist.
var ErrNotAllowed = errors.New("transfer: target not allowed")

// Target is where a transfer goes, resolved once at the edge.
type Target struct {
	// URI is the SIP URI put in Refer-To or the Request-URI of the new leg.
	URI string
	// Number is the E.164 number or digits, when the target is a number.
	Number string
	// Host is the URI's host, lower case.
	Host string
	// Trunk carries the new leg; nil for a SIP URI outside every trunk.
	Trunk *sip.Trunk
}

// Allowlist is the set of targets transfers may reach.
type Allowlist struct {
	numbers  map[string]bool
	prefixes []string
	domains  map[string]bool
	any      bool
}

// ParseAllowlist reads entries: "+15551234567" (a number), "+1555*" (a
// prefix), "@pbx.example.com" or "sip:pbx.example.com" (a SIP domain), and
// "*" (anything: an explicit open relay, for labs only).
func ParseAllowlist(entries []string) (Allowlist, error) {
	a := Allowlist{numbers: map[string]bool{}, domains: map[string]bool{}}
	var errs []error
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "*":
			a.any = true
		case strings.HasPrefix(e, "@"), strings.HasPrefix(e, "sip:"):
			d := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(e, "@"), "sip:"))
			if d == "" || strings.ContainsAny(d, "@;<> \t") {
				errs = append(errs, fmt.Errorf("transfer allowlist: %q is not a domain", e))
				continue
			}
			a.domains[d] = true
		case strings.HasSuffix(e, "*") && isNumber(strings.TrimSuffix(e, "*")):
			a.prefixes = append(a.prefixes, strings.TrimSuffix(e, "*"))
		case isNumber(e):
			a.numbers[e] = true
		default:
			errs = append(errs, fmt.Errorf("transfer allowlist: %q is neither a number (+15551234567), a prefix (+1555*) nor a domain (@pbx.example.com)", e))
		}
	}
	return a, errors.Join(errs...)
}

// Permits reports whether t may be called.
func (a Allowlist) Permits(t Target) bool {
	if a.any {
		return true
	}
	if t.Number != "" {
		if a.numbers[t.Number] {
			return true
		}
		for _, p := range a.prefixes {
			if strings.HasPrefix(t.Number, p) {
				return true
			}
		}
	}
	// A number at a trunk is judged as a number; any other URI by domain.
	return t.Trunk == nil && a.domains[t.Host]
}

// isNumber accepts E.164 ("+15551234567") and plain digits ("1000").
func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "+")
	if s == "" || len(s) > 20 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Resolve turns a target as written ("+15551234567", "tel:+1555...",
// "sip:agent@pbx.example.com") into a Target. A number goes through trunk,
// which must be set; a SIP URI at a trunk's host goes through that trunk.
func Resolve(raw string, trunk *sip.Trunk, trunks []sip.Trunk) (Target, error) {
	raw = strings.TrimSpace(raw)
	if err := sip.CheckHeaderValue(raw); err != nil {
		return Target{}, fmt.Errorf("transfer: target: %w", err)
	}
	num := strings.TrimPrefix(raw, "tel:")
	if isNumber(num) {
		if trunk == nil {
			return Target{}, fmt.Errorf("transfer: %s is a number but no trunk is configured to call it", num)
		}
		host := trunkDomain(trunk)
		return Target{URI: "sip:" + num + "@" + host, Number: num, Host: strings.ToLower(host), Trunk: trunk}, nil
	}
	if !strings.HasPrefix(strings.ToLower(raw), "sip:") {
		return Target{}, fmt.Errorf("transfer: target %q is neither a number nor a sip: URI", raw)
	}
	var u sipmsg.Uri
	if err := sipmsg.ParseUri(raw, &u); err != nil || u.Host == "" {
		return Target{}, fmt.Errorf("transfer: target %q is not a SIP URI", raw)
	}
	t := Target{URI: u.String(), Host: strings.ToLower(u.Host)}
	for i := range trunks {
		if strings.EqualFold(trunks[i].Host, u.Host) || strings.EqualFold(trunks[i].FromDomain, u.Host) {
			t.Trunk = &trunks[i]
			break
		}
	}
	if t.Trunk != nil && isNumber(u.User) {
		t.Number = u.User
	}
	return t, nil
}

// trunkDomain is the domain numbers are called at: the trunk's From domain,
// which Normalize defaults to its host.
func trunkDomain(t *sip.Trunk) string {
	if t.FromDomain != "" {
		return t.FromDomain
	}
	return t.Host
}
