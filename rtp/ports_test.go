package rtp

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestNewPortPoolRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name       string
		ip         netip.Addr
		min, max   int
		quarantine time.Duration
	}{
		{"invalid IP", netip.Addr{}, 10000, 10010, 0},
		{"min above max", loopback, 10010, 10000, 0},
		{"port zero", loopback, 0, 10, 0},
		{"above 65535", loopback, 65000, 65536, 0},
		{"no pair", loopback, 10001, 10001, 0},
		{"odd single", loopback, 10000, 10000, 0},
		{"negative quarantine", loopback, 10000, 10010, -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewPortPool(tt.ip, tt.min, tt.max, tt.quarantine); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

func TestPortPoolRangeIsEvenPairs(t *testing.T) {
	p, err := NewPortPool(loopback, 10001, 10006, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, f := range p.free {
		got = append(got, f.port)
	}
	// 10001 rounds up to 10002; 10006 cannot take an RTCP port inside the range.
	if want := []int{10002, 10004}; !slices.Equal(got, want) {
		t.Fatalf("ports %v, want %v", got, want)
	}
}

func TestPortPoolAllocateAndExhaust(t *testing.T) {
	p, base := testPool(t, 2, 0)
	seen := map[int]bool{}
	var conns []*net.UDPConn
	for range 2 {
		rtpConn, rtcpConn, port, err := p.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, rtpConn, rtcpConn)
		if port%2 != 0 || port < base || port+1 > base+3 || seen[port] {
			t.Fatalf("bad port %d (base %d, seen %v)", port, base, seen)
		}
		seen[port] = true
		if got := rtpConn.LocalAddr().(*net.UDPAddr).Port; got != port {
			t.Fatalf("rtp conn on %d, want %d", got, port)
		}
		if got := rtcpConn.LocalAddr().(*net.UDPAddr).Port; got != port+1 {
			t.Fatalf("rtcp conn on %d, want %d", got, port+1)
		}
	}
	if p.InUse() != 2 {
		t.Fatalf("InUse = %d, want 2", p.InUse())
	}
	if _, _, _, err := p.Allocate(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("Allocate on full pool: %v, want ErrNoPorts", err)
	}
	conns[0].Close()
	conns[1].Close()
	port0 := conns[0].LocalAddr().(*net.UDPAddr).Port
	p.Release(port0)
	p.Release(port0) // double release must not free the pair twice
	if p.InUse() != 1 {
		t.Fatalf("InUse = %d after release, want 1", p.InUse())
	}
	rtpConn, rtcpConn, port, err := p.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer rtpConn.Close()
	defer rtcpConn.Close()
	if port != port0 {
		t.Fatalf("got %d, want released %d", port, port0)
	}
	conns[2].Close()
	conns[3].Close()
}

func TestPortPoolQuarantineIsFIFO(t *testing.T) {
	p, _ := testPool(t, 3, 10*time.Second)
	now := time.Unix(1000, 0)
	p.now = func() time.Time { return now }

	var ports []int
	for range 3 {
		rtpConn, rtcpConn, port, err := p.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		rtpConn.Close()
		rtcpConn.Close()
		ports = append(ports, port)
	}
	// Release B before A: FIFO means B comes back first.
	p.Release(ports[1])
	now = now.Add(time.Second)
	p.Release(ports[0])

	steps := []struct {
		at      time.Duration // since B's release
		want    int           // expected port, 0 = ErrNoPorts
		release bool
	}{
		{at: 5 * time.Second, want: 0},
		{at: 10 * time.Second, want: ports[1]},
		{at: 10 * time.Second, want: 0}, // A is still in quarantine
		{at: 11 * time.Second, want: ports[0]},
	}
	start := time.Unix(1000, 0)
	for i, st := range steps {
		now = start.Add(st.at)
		rtpConn, rtcpConn, port, err := p.Allocate()
		if st.want == 0 {
			if !errors.Is(err, ErrNoPorts) {
				t.Fatalf("step %d: got port %d err %v, want ErrNoPorts", i, port, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		rtpConn.Close()
		rtcpConn.Close()
		if port != st.want {
			t.Fatalf("step %d: got %d, want %d", i, port, st.want)
		}
	}
}

func TestPortPoolSkipsPortsTheOSRefuses(t *testing.T) {
	p, base := testPool(t, 3, 0)
	// Another process holds the RTCP port of the second pair.
	squatter, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, uint16(base+3))))
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()

	var got []int
	for range 2 {
		rtpConn, rtcpConn, port, err := p.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		defer rtpConn.Close()
		defer rtcpConn.Close()
		got = append(got, port)
	}
	if want := []int{base, base + 4}; !slices.Equal(got, want) {
		t.Fatalf("ports %v, want %v", got, want)
	}
	if _, _, _, err := p.Allocate(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("want ErrNoPorts, got %v", err)
	}
	if p.InUse() != 2 {
		t.Fatalf("InUse = %d, want 2 (a refused pair is not in use)", p.InUse())
	}
}
