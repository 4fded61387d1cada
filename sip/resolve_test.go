package sip

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
)

// fakeResolver answers from maps and records the lookups.
type fakeResolver struct {
	srv   map[string][]*net.SRV // "sip/udp/carrier.test"
	ips   map[string][]netip.Addr
	calls []string
}

func (f *fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := service + "/" + proto + "/" + name
	f.calls = append(f.calls, "SRV "+key)
	if s, ok := f.srv[key]; ok {
		return "", s, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.calls = append(f.calls, "IP "+host)
	if a, ok := f.ips[host]; ok {
		return slices.Clone(a), nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// noResolver fails the test if anything is looked up.
type noResolver struct{ t testing.TB }

func (n noResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	n.t.Errorf("unexpected SRV lookup of %s", name)
	return "", nil, errors.New("no DNS in this test")
}

func (n noResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	n.t.Errorf("unexpected lookup of %s", host)
	return nil, errors.New("no DNS in this test")
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestResolveTrunk(t *testing.T) {
	ips := map[string][]netip.Addr{
		"a.carrier.test.": {netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.1")},
		"b.carrier.test.": {netip.MustParseAddr("192.0.2.2")},
		"carrier.test":    {netip.MustParseAddr("192.0.2.9")},
		"proxy.test":      {netip.MustParseAddr("192.0.2.7")},
	}
	srv := map[string][]*net.SRV{
		"sip/udp/carrier.test":  {{Target: "b.carrier.test.", Port: 5070, Priority: 20, Weight: 1}, {Target: "a.carrier.test.", Port: 5080, Priority: 10, Weight: 1}},
		"sips/tcp/carrier.test": {{Target: "a.carrier.test.", Port: 5061, Priority: 1}},
		"sip/udp/dot.test":      {{Target: ".", Port: 0}},
	}
	tests := []struct {
		name  string
		trunk Trunk
		want  []netip.AddrPort
		calls []string
	}{
		{"SRV by priority, IPv4 first", Trunk{Host: "carrier.test"},
			[]netip.AddrPort{ap("192.0.2.1:5080"), ap("[2001:db8::1]:5080"), ap("192.0.2.2:5070")},
			[]string{"SRV sip/udp/carrier.test", "IP a.carrier.test.", "IP b.carrier.test."}},
		{"tls uses _sips._tcp", Trunk{Host: "carrier.test", Transport: "tls"},
			[]netip.AddrPort{ap("192.0.2.1:5061"), ap("[2001:db8::1]:5061")},
			[]string{"SRV sips/tcp/carrier.test", "IP a.carrier.test."}},
		{"no SRV: A on the default port", Trunk{Host: "carrier.test", Transport: "tcp"},
			[]netip.AddrPort{ap("192.0.2.9:5060")}, []string{"SRV sip/tcp/carrier.test", "IP carrier.test"}},
		{"explicit port skips SRV", Trunk{Host: "carrier.test", Port: 5099},
			[]netip.AddrPort{ap("192.0.2.9:5099")}, []string{"IP carrier.test"}},
		{"IP host: no DNS", Trunk{Host: "198.51.100.4"}, []netip.AddrPort{ap("198.51.100.4:5060")}, nil},
		{"explicit addresses in order", Trunk{Host: "carrier.test", Addresses: []string{"198.51.100.5:5062", "proxy.test", "198.51.100.5:5062"}},
			[]netip.AddrPort{ap("198.51.100.5:5062"), ap("192.0.2.7:5060")}, []string{"IP proxy.test"}},
		{"outbound proxy", Trunk{Host: "carrier.test", OutboundProxy: "proxy.test:5070"},
			[]netip.AddrPort{ap("192.0.2.7:5070")}, []string{"IP proxy.test"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeResolver{srv: srv, ips: ips}
			tc.trunk.Name = "t"
			got, err := ResolveTrunk(context.Background(), f, tc.trunk)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("addresses %v, want %v", got, tc.want)
			}
			if !slices.Equal(f.calls, tc.calls) {
				t.Errorf("lookups %q, want %q", f.calls, tc.calls)
			}
		})
	}
	for _, tr := range []Trunk{{Host: "dot.test"}, {Host: "nowhere.test"}} {
		if got, err := ResolveTrunk(context.Background(), &fakeResolver{srv: srv, ips: ips}, tr); err == nil {
			t.Errorf("%s resolved to %v", tr.Host, got)
		}
	}
}

// RFC 2782 weights: with a fixed random number the pick is predictable, and
// over all numbers each record is first in proportion to its weight.
func TestOrderSRV(t *testing.T) {
	a := &net.SRV{Target: "a", Priority: 1, Weight: 0}
	b := &net.SRV{Target: "b", Priority: 1, Weight: 30}
	c := &net.SRV{Target: "c", Priority: 1, Weight: 70}
	lo := &net.SRV{Target: "lo", Priority: 0, Weight: 5}
	first := map[string]int{}
	for n := 0; n <= 100; n++ {
		got := orderSRV([]*net.SRV{c, a, b, lo}, func(int) int { return n })
		if got[0] != lo || len(got) != 4 {
			t.Fatalf("priority 0 not first: %v", got)
		}
		first[got[1].Target]++
	}
	if first["a"] != 1 || first["b"] != 30 || first["c"] != 70 {
		t.Errorf("first pick by random number: %v, want a:1 b:30 c:70", first)
	}
}

// A real *net.Resolver against the stub DNS server: SRV, then A/AAAA.
func TestResolveTrunkStubDNS(t *testing.T) {
	d := startDNSStub(t,
		map[string][]net.SRV{"_sip._udp.carrier.test.": {
			{Target: "b.carrier.test.", Port: 5070, Priority: 20, Weight: 10},
			{Target: "a.carrier.test.", Port: 5080, Priority: 10, Weight: 10},
		}},
		map[string][]netip.Addr{
			"a.carrier.test.": {netip.MustParseAddr("127.0.0.11")},
			"b.carrier.test.": {netip.MustParseAddr("127.0.0.12"), netip.MustParseAddr("::1")},
		})
	got, err := ResolveTrunk(context.Background(), d.resolver(), Trunk{Name: "t", Host: "carrier.test"})
	if err != nil {
		t.Fatalf("ResolveTrunk: %v (queries %q)", err, d.queries())
	}
	want := []netip.AddrPort{ap("127.0.0.11:5080"), ap("127.0.0.12:5070"), ap("[::1]:5070")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v (queries %q)", got, want, d.queries())
	}
	if q := d.queries(); !slices.Contains(q, "SRV _sip._udp.carrier.test.") {
		t.Errorf("queries %q", q)
	}
}
