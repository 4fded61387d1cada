package sip

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// newPeerFrom is newPeer bound to another loopback address, so one test can
// play a trunk and a stranger.
func newPeerFrom(t testing.TB, ip string, srv netip.AddrPort) *udpPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatalf("peer socket on %s: %v", ip, err)
	}
	p := &udpPeer{t: t, conn: conn, srv: srv, port: conn.LocalAddr().(*net.UDPAddr).Port}
	done := make(chan struct{})
	go p.read(done)
	t.Cleanup(func() { conn.Close(); <-done })
	return p
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// inviteFrom sends an out-of-dialog INVITE for user from peer p. The Via
// names the peer's own address, so the answer comes back to it.
func inviteFrom(p *udpPeer, user string, extra ...string) string {
	branch := newBranch()
	msg := p.build(reqSpec{method: "INVITE", ruri: "sip:" + user + "@" + p.srv.String(), branch: branch, extra: extra})
	msg = strings.ReplaceAll(msg, p.addr(), p.conn.LocalAddr().String())
	p.send(msg)
	return branch
}

func TestAccessRefusesStrangersUniformly(t *testing.T) {
	calls := newCallCapture()
	ts := startServer(t, func(ctx context.Context, c *InboundCall) {
		calls.calls <- c
		_ = c.Reject(486, "")
	}, func(c *Config) {
		c.Access = AccessConfig{Trunks: []TrunkAccess{{Name: "carrier", Networks: prefixes("127.0.0.1/32")}}}
	})

	stranger := newPeerFrom(t, "127.0.0.2", ts.addr)
	var statusLines []string
	for _, user := range []string{"+15550100", "admin"} {
		branch := inviteFrom(stranger, user)
		res := stranger.take("403 for "+user, isResponse(403, "INVITE", branch))
		if res.msg.(*sipmsg.Response).GetHeader("Server") != nil {
			t.Errorf("403 reveals a Server header")
		}
		statusLines = append(statusLines, strings.SplitN(string(res.raw), "\r\n", 2)[0])
	}
	if statusLines[0] != statusLines[1] {
		t.Errorf("answers differ by user part: %q vs %q", statusLines[0], statusLines[1])
	}
	if n := stranger.count(isResponse(100, "INVITE", "")); n != 0 {
		t.Errorf("stranger got %d 100 Trying; a refusal must come before any call state", n)
	}
	select {
	case c := <-calls.calls:
		t.Fatalf("a stranger's INVITE reached the dialplan: %s", c.CallID)
	default:
	}

	trunk := newPeerFrom(t, "127.0.0.1", ts.addr)
	branch := inviteFrom(trunk, "+15550100")
	c := calls.next(t)
	if c.Trunk != "carrier" {
		t.Errorf("call from the trunk's network has Trunk %q, want carrier", c.Trunk)
	}
	trunk.take("486 for the trunk's call", isResponse(486, "INVITE", branch))
}

func TestAccessQuietScannerAndSize(t *testing.T) {
	ts := startServer(t, func(ctx context.Context, c *InboundCall) { _ = c.Reject(486, "") }, func(c *Config) {
		c.Access = AccessConfig{
			Allow:          prefixes("127.0.0.1/32"),
			Quiet:          true,
			MaxMessageSize: 2000,
			DropUserAgents: DefaultScannerAgents(),
		}
	})
	stranger := newPeerFrom(t, "127.0.0.2", ts.addr)
	inviteFrom(stranger, "100")
	allowed := newPeerFrom(t, "127.0.0.1", ts.addr)
	inviteFrom(allowed, "100", "User-Agent: friendly-scanner")
	big := inviteFrom(allowed, "100", "X-Padding: "+strings.Repeat("a", 3000))
	allowed.take("513 for an oversize request", isResponse(513, "INVITE", big))
	ok := inviteFrom(allowed, "100", "User-Agent: Telnyx")
	allowed.take("486 for a normal request", isResponse(486, "INVITE", ok))
	// The refused ones were sent first; by now their answers would be here.
	if n := stranger.count(func(*received) bool { return true }); n != 0 {
		t.Errorf("quiet mode answered a stranger %d times:\n%s", n, stranger.dump())
	}
	if n := allowed.count(isResponse(100, "INVITE", "")); n > 2 {
		t.Errorf("scanner request was answered: %d 100 Trying for 2 admitted INVITEs", n)
	}
}

func TestAccessRateLimitBansOneSourceOnly(t *testing.T) {
	ts := startServer(t, func(ctx context.Context, c *InboundCall) { _ = c.Reject(486, "") }, func(c *Config) {
		c.Access = AccessConfig{Allow: prefixes("127.0.0.0/8"), RatePerSecond: 5, Burst: 5, BanFor: time.Minute}
	})
	flooder := newPeerFrom(t, "127.0.0.3", ts.addr)
	const sent = 200
	for range sent {
		flooder.send(flooder.build(reqSpec{method: "OPTIONS", ruri: "sip:" + ts.addr.String()}))
	}
	other := newPeerFrom(t, "127.0.0.4", ts.addr)
	branch := newBranch()
	other.send(other.build(reqSpec{method: "OPTIONS", ruri: "sip:" + ts.addr.String(), branch: branch}))
	other.take("200 for a quiet source during the flood", isResponse(200, "OPTIONS", branch))
	if !ts.guard.banned(netip.MustParseAddr("127.0.0.3")) {
		t.Errorf("flooding source is not banned")
	}
	// Burst plus what the bucket refills while the loop runs; far below sent.
	if n := flooder.count(isResponse(200, "OPTIONS", "")); n > 15 {
		t.Errorf("flooder got %d of %d requests answered", n, sent)
	}
	// Let sipgo finish the flood's queued transactions before the server
	// stops: one still being answered at close makes sipgo bind a new
	// socket nobody closes (seen as a leaked reader goroutine).
	time.Sleep(500 * time.Millisecond)
}

func TestGuardTokenBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	g := newGuard(AccessConfig{RatePerSecond: 2, Burst: 3, BanFor: time.Minute})
	g.now = func() time.Time { return now }
	src := netip.MustParseAddr("192.0.2.1")
	steps := []struct {
		advance time.Duration
		want    bool
	}{
		{0, true}, {0, true}, {0, true}, // the burst
		{0, false},                     // dry: strike 1
		{500 * time.Millisecond, true}, // one token refilled
		{0, false}, {0, false},         // strikes 2, 3: banned
		{10 * time.Second, false}, // refilled, but banned
		{time.Minute, true},       // ban over
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := g.allowRate(src); got != s.want {
			t.Fatalf("step %d: allow = %v, want %v", i, got, s.want)
		}
	}
}

func TestGuardTrunkClassification(t *testing.T) {
	registrar := netip.MustParseAddr("198.51.100.7")
	g := newGuard(AccessConfig{
		Trunks: []TrunkAccess{
			{Name: "telnyx", Networks: prefixes("192.76.120.0/24")},
			{Name: "signalwire", Addresses: func() []netip.Addr { return []netip.Addr{registrar} }},
		},
		Allow: prefixes("10.0.0.0/8"),
	})
	for _, tc := range []struct {
		src   string
		trunk string
		ok    bool
	}{
		{"192.76.120.10", "telnyx", true},
		{"198.51.100.7", "signalwire", true},
		{"10.1.2.3", "", true},
		{"203.0.113.9", "", false},
	} {
		name, ok := g.trunkFor(netip.MustParseAddr(tc.src))
		if name != tc.trunk || ok != tc.ok {
			t.Errorf("%s: got (%q, %v), want (%q, %v)", tc.src, name, ok, tc.trunk, tc.ok)
		}
	}
	if open := newGuard(AccessConfig{}); !open.open {
		t.Errorf("an empty AccessConfig must accept everyone")
	}
}
