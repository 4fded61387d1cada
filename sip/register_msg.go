package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// maxRegisterRounds bounds one attempt: a 423 and a NAT contact change each
// cost one more REGISTER (digest retries are counted by the authState).
const maxRegisterRounds = 4

// attempt runs one registration: REGISTER until a 2xx, through digest
// challenges, 423 Interval Too Brief and a change of our public address.
// It returns the lifetime the registrar granted our contact.
func (r *Registration) attempt(ctx context.Context) (time.Duration, error) {
	dest, err := r.target(ctx)
	if err != nil {
		return 0, err
	}
	r.dest = dest
	oldHost, oldPort := "", 0 // our previous contact, dropped after a NAT change
	for round := 0; round < maxRegisterRounds; round++ {
		expires := r.expires
		res, err := r.srv.sendChain(ctx, r.auth, func() *sipmsg.Request { return r.build(dest, expires, oldHost, oldPort) })
		if err != nil {
			if res != nil {
				return 0, fmt.Errorf("%d %s: %w", res.StatusCode, res.Reason, err)
			}
			return 0, fmt.Errorf("%w from %s: %w", errNoAnswer, dest, err)
		}
		switch {
		case res.StatusCode == 423:
			minExp, ok := headerSeconds(res, "Min-Expires")
			if !ok || minExp <= expires {
				return 0, fmt.Errorf("423 %s with Min-Expires %q: cannot comply", res.Reason, headerValue(res, "Min-Expires"))
			}
			r.log.Info("registrar wants a longer lifetime", "requested", expires, "min_expires", minExp)
			r.expires = minExp
		case res.IsSuccess():
			host, port := viaReceived(res)
			if host == "" {
				host = r.contactHost
			}
			if port == 0 {
				port = r.contactPort
			}
			if (host != r.contactHost || port != r.contactPort) && oldHost == "" {
				// Behind a NAT, or the NAT moved us: the registrar must reach
				// us where it saw us. The old contact goes with expires=0.
				r.log.Info("public address changed, registering the new contact",
					"old", r.contactHost+":"+strconv.Itoa(r.contactPort), "new", host+":"+strconv.Itoa(port))
				oldHost, oldPort = r.contactHost, r.contactPort
				r.contactHost, r.contactPort = host, port
				continue
			}
			granted := grantedExpiry(res, r.contactURI(r.contactHost, r.contactPort), expires)
			if granted <= 0 {
				return 0, errors.New("registrar granted our contact no lifetime")
			}
			return granted, nil
		default:
			return 0, fmt.Errorf("registrar answered %d %s", res.StatusCode, res.Reason)
		}
	}
	return 0, fmt.Errorf("registrar still not satisfied after %d REGISTERs", maxRegisterRounds)
}

// errNoAnswer: the registrar did not answer (timeout, transport error).
var errNoAnswer = errors.New("no answer")

// target is where this attempt's REGISTER goes: the monitor's current
// address, or our own resolution's.
func (r *Registration) target(ctx context.Context) (netip.AddrPort, error) {
	if r.mon != nil {
		if a := r.mon.Current(); a.IsValid() {
			return a, nil
		}
		return netip.AddrPort{}, errNoAddress
	}
	if len(r.addrs) == 0 {
		addrs, err := ResolveTrunk(ctx, r.resolver, r.trunk)
		if err != nil {
			return netip.AddrPort{}, err
		}
		if addrs = r.srv.usable(addrs); len(addrs) == 0 {
			return netip.AddrPort{}, fmt.Errorf("%w: none of the listener's IP family", errNoAddress)
		}
		r.addrs, r.addrIdx = addrs, 0
	}
	return r.addrs[r.addrIdx], nil
}

// nextAddress moves to the next resolved address after an unanswered
// attempt; after the last one DNS is asked again.
func (r *Registration) nextAddress() {
	r.addrIdx++
	if r.addrIdx >= len(r.addrs) {
		r.addrs, r.addrIdx = nil, 0
		return
	}
	r.log.Warn("registrar unreachable, trying the next address", "address", r.addrs[r.addrIdx])
}

// build makes one REGISTER of the series (same Call-ID, next CSeq).
func (r *Registration) build(dest netip.AddrPort, expires time.Duration, oldHost string, oldPort int) *sipmsg.Request {
	t := r.trunk
	req := r.srv.trunkRequest(t, &r.o, sipmsg.REGISTER, trunkURI(t), t.FromUser, dest)
	req.AppendHeader(&sipmsg.ContactHeader{Address: r.contactURI(r.contactHost, r.contactPort)})
	if oldHost != "" {
		old := &sipmsg.ContactHeader{Address: r.contactURI(oldHost, oldPort), Params: sipmsg.NewParams()}
		old.Params.Add("expires", "0")
		req.AppendHeader(old)
	}
	req.AppendHeader(sipmsg.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.AppendHeader(sipmsg.NewHeader("Allow", allowedMethods))
	return req
}

func (r *Registration) contactURI(host string, port int) sipmsg.Uri {
	u := sipmsg.Uri{Scheme: "sip", User: r.trunk.FromUser, Host: host, Port: port}
	if r.trunk.Transport != "udp" {
		u.UriParams = sipmsg.NewParams()
		u.UriParams.Add("transport", r.trunk.Transport)
	}
	return u
}

// grantedExpiry is the lifetime of our binding in a 2xx: the expires
// parameter of the Contact that is ours, else the Expires header, else
// what we asked for (RFC 3261 10.2.4).
func grantedExpiry(res *sipmsg.Response, ours sipmsg.Uri, requested time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sipmsg.ContactHeader)
		if !ok || !sameContact(c.Address, ours) {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
				return time.Duration(n) * time.Second
			}
		}
	}
	if d, ok := headerSeconds(res, "Expires"); ok {
		return d
	}
	return requested
}

func sameContact(a, b sipmsg.Uri) bool {
	port := func(p int) int {
		if p == 0 {
			return 5060
		}
		return p
	}
	return a.User == b.User && strings.EqualFold(strings.Trim(a.Host, "[]"), strings.Trim(b.Host, "[]")) && port(a.Port) == port(b.Port)
}

// headerValue returns a request's or response's header value, or "".
func headerValue(m interface{ GetHeader(string) sipmsg.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// headerSeconds reads a delta-seconds header (Expires, Min-Expires).
func headerSeconds(res *sipmsg.Response, name string) (time.Duration, bool) {
	h := res.GetHeader(name)
	if h == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}
