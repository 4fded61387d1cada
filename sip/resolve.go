package sip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Resolver is the part of *net.Resolver that trunk resolution uses; tests
// pass a fake or a net.Resolver whose Dial reaches a stub DNS server.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ResolveTrunk returns the trunk's next hops in the order to try them,
// after RFC 3263 without NAPTR: the explicit Addresses list; else the
// outbound proxy; else Host itself when it is an IP or has a Port; else
// SRV records (_sip._udp, _sip._tcp or _sips._tcp by transport, ordered by
// priority and weight, RFC 2782), falling back to A/AAAA on the default
// port when the domain has none.
func ResolveTrunk(ctx context.Context, r Resolver, t Trunk) ([]netip.AddrPort, error) {
	t, err := t.Normalize()
	if err != nil {
		return nil, err
	}
	def := defaultPort(t.Transport)
	var out []netip.AddrPort
	var errs []error
	add := func(host string, port int) {
		addrs, err := lookupHost(ctx, r, host)
		if err != nil {
			errs = append(errs, err)
		}
		for _, a := range addrs {
			out = append(out, netip.AddrPortFrom(a, uint16(port)))
		}
	}
	switch {
	case len(t.Addresses) > 0 || t.OutboundProxy != "":
		list := t.Addresses
		if len(list) == 0 {
			list = []string{t.OutboundProxy}
		}
		for _, a := range list {
			host, port, err := splitHostPort(a, def)
			if err != nil {
				return nil, err
			}
			add(host, port)
		}
	case isIP(t.Host) || t.Port != 0:
		port := t.Port
		if port == 0 {
			port = def
		}
		add(strings.Trim(t.Host, "[]"), port)
	default:
		service, proto := "sip", t.Transport
		if t.Transport == "tls" {
			service, proto = "sips", "tcp"
		}
		_, srvs, srvErr := r.LookupSRV(ctx, service, proto, t.Host)
		srvs = slices.DeleteFunc(srvs, func(s *net.SRV) bool { return s == nil || s.Target == "." || s.Target == "" })
		if srvErr != nil || len(srvs) == 0 {
			// No SRV records: the domain itself, on the default port.
			add(t.Host, def)
			break
		}
		for _, s := range orderSRV(srvs, rand.IntN) {
			add(s.Target, int(s.Port))
		}
	}
	out = dedupe(out)
	if len(out) == 0 {
		if len(errs) > 0 {
			return nil, fmt.Errorf("sip: resolve %s: %w", t.Name, errors.Join(errs...))
		}
		return nil, fmt.Errorf("sip: resolve %s: no addresses", t.Name)
	}
	return out, nil
}

func isIP(h string) bool {
	_, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil
}

// lookupHost returns an IP literal as is and looks names up; IPv4 first, as
// our listener (the socket requests leave from) is usually IPv4.
func lookupHost(ctx context.Context, r Resolver, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
		switch {
		case a.Is4() == b.Is4():
			return 0
		case a.Is4():
			return -1
		default:
			return 1
		}
	})
	return addrs, nil
}

// orderSRV sorts records by priority and, within one priority, in the
// weighted random order of RFC 2782: each pick chooses a record with
// probability weight/sum (zero weights only get a small chance). rnd(n)
// returns a number in [0, n); tests pass a fixed one.
func orderSRV(srvs []*net.SRV, rnd func(n int) int) []*net.SRV {
	srvs = slices.Clone(srvs)
	slices.SortStableFunc(srvs, func(a, b *net.SRV) int { return int(a.Priority) - int(b.Priority) })
	out := make([]*net.SRV, 0, len(srvs))
	for i := 0; i < len(srvs); {
		j := i
		for j < len(srvs) && srvs[j].Priority == srvs[i].Priority {
			j++
		}
		group := srvs[i:j]
		// Zero weights first, as RFC 2782 says, so they are picked only
		// when the random number lands on 0.
		slices.SortStableFunc(group, func(a, b *net.SRV) int { return boolInt(a.Weight != 0) - boolInt(b.Weight != 0) })
		for len(group) > 0 {
			sum := 0
			for _, s := range group {
				sum += int(s.Weight)
			}
			pick, acc := 0, 0
			n := rnd(sum + 1)
			for k, s := range group {
				acc += int(s.Weight)
				if acc >= n {
					pick = k
					break
				}
			}
			out = append(out, group[pick])
			group = slices.Delete(group, pick, pick+1)
		}
		i = j
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func dedupe(in []netip.AddrPort) []netip.AddrPort {
	out := in[:0]
	seen := make(map[netip.AddrPort]bool, len(in))
	for _, a := range in {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}
