package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// Ports below Linux's default ephemeral range (32768-60999), so that ranges we
// pick do not collide with ports the kernel hands out for ":0" binds.
const (
	rangeLow  = 10000
	rangeHigh = 32000
)

// FreeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago
// (bound on :0, then closed).
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: bind udp 127.0.0.1:0: %v", err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	_ = c.Close()
	return port
}

// FreePortPair returns a port on 127.0.0.1 that is free for both TCP and UDP,
// as the SIP listener binds both on the same port. It binds TCP on :0, then
// tries UDP on the same port, at most 50 times.
func FreePortPair(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("harness: bind tcp 127.0.0.1:0: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			_ = u.Close()
			_ = l.Close()
			return port
		}
		_ = l.Close()
	}
	t.Fatal("harness: no port free for both TCP and UDP on 127.0.0.1 after 50 tries")
	return 0
}

// FreeUDPPortRange returns n consecutive UDP ports [min, max] on 127.0.0.1,
// min even (RTP convention), all free a moment ago. Ranges are drawn at random
// below the ephemeral range so parallel tests rarely meet; at most 100 tries.
func FreeUDPPortRange(t testing.TB, n int) (min, max int) {
	t.Helper()
	if n < 1 || n > 1000 {
		t.Fatalf("harness: FreeUDPPortRange: n=%d out of 1..1000", n)
	}
	for range 100 {
		base := rangeLow + 2*rand.IntN((rangeHigh-rangeLow-n)/2)
		conns := make([]net.PacketConn, 0, n)
		ok := true
		for p := base; p < base+n; p++ {
			c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			_ = c.Close()
		}
		if ok {
			return base, base + n - 1
		}
	}
	t.Fatalf("harness: no %d consecutive free UDP ports on 127.0.0.1 after 100 tries", n)
	return 0, 0
}
