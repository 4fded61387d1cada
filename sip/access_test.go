package sip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
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

// syncBuffer collects log output from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAccessDigest: with digest users configured, a stranger's INVITE is
// challenged (even in quiet mode) and admitted only with a fresh, correct
// answer for its own nonce; the trunk is not challenged at all.
func TestAccessDigest(t *testing.T) {
	const realm, user, password = "switchboard.test", "pbx", "pbx-Secret-42"
	logs := &syncBuffer{}
	ts := startServer(t, func(ctx context.Context, c *InboundCall) { _ = c.Reject(486, "") }, func(c *Config) {
		c.Access = AccessConfig{
			Trunks: []TrunkAccess{{Name: "carrier", Networks: prefixes("127.0.0.1/32")}},
			Quiet:  true,
			Digest: DigestConfig{Realm: realm, Users: map[string]string{user: password, "other": "other-pw"}},
		}
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	stranger := newPeerFrom(t, "127.0.0.2", ts.addr)
	ruri := "sip:+15550100@" + ts.addr.String()

	// challenge sends an INVITE without credentials and returns the 401.
	challenge := func(p *udpPeer, to string) (*sipmsg.Response, Challenge) {
		t.Helper()
		branch := inviteFrom(p, to)
		res := p.take("401 for "+to, isResponse(401, "INVITE", branch)).msg.(*sipmsg.Response)
		ch, err := ParseChallenge(headerOf401(t, res))
		if err != nil {
			t.Fatalf("challenge: %v", err)
		}
		return res, ch
	}
	first, ch := challenge(stranger, "+15550100")
	if ch.Realm != realm || len(ch.QOP) != 1 || ch.QOP[0] != "auth" || ch.Stale {
		t.Fatalf("challenge %+v: want realm %q, qop=auth, not stale", ch, realm)
	}
	// The same refusal whatever was called: only the nonce differs.
	second, ch2 := challenge(stranger, "admin")
	blank := func(res *sipmsg.Response, nonce string) string {
		line, _, _ := strings.Cut(res.String(), "\r\n")
		return line + " " + strings.Replace(headerOf401(t, res), nonce, "N", 1)
	}
	if a, b := blank(first, ch.Nonce), blank(second, ch2.Nonce); a != b || ch.Nonce == ch2.Nonce {
		t.Errorf("challenges differ by user part (or reuse a nonce):\n%s\n%s", a, b)
	}

	auth := func(ch Challenge, u, pw string, nc uint32, uri string) string {
		return "Authorization: " + ch.Authorize("INVITE", uri, u, pw, nc, "c"+strconv.Itoa(int(nc)))
	}
	replayed := auth(ch, user, password, 1, ruri)
	otherSource := newPeerFrom(t, "127.0.0.3", ts.addr)
	_, chOther := challenge(otherSource, "+15550100")
	old := ts.digest.nonce(netip.MustParseAddr("127.0.0.2"), time.Now().Add(-time.Hour))
	for _, tc := range []struct {
		name      string
		header    string
		wantCode  int
		wantStale bool
	}{
		{"correct answer", replayed, 486, false},
		{"the same answer again", replayed, 401, false},
		{"next nonce count", auth(ch, user, password, 2, ruri), 486, false},
		{"wrong password", auth(ch2, user, "guess", 1, ruri), 401, false},
		{"unknown user", auth(ch2, "nobody", password, 1, ruri), 401, false},
		{"another source's nonce", auth(chOther, user, password, 1, ruri), 401, false},
		{"another Request-URI", auth(ch2, user, password, 3, "sip:+15550999@"+ts.addr.String()), 401, false},
		{"expired nonce", auth(Challenge{Realm: realm, Nonce: old, QOP: []string{"auth"}}, user, password, 1, ruri), 401, true},
		{"forged nonce", auth(Challenge{Realm: realm, Nonce: strings.Repeat("A", 43), QOP: []string{"auth"}}, user, password, 1, ruri), 401, false},
		{"another realm", auth(Challenge{Realm: "elsewhere", Nonce: ch2.Nonce, QOP: []string{"auth"}}, user, password, 4, ruri), 401, false},
		{"not digest", "Authorization: Basic cGJ4OnBieA==", 401, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			branch := inviteFrom(stranger, "+15550100", tc.header)
			res := stranger.take(tc.name, isResponse(tc.wantCode, "INVITE", branch)).msg.(*sipmsg.Response)
			if tc.wantCode == 401 {
				got, err := ParseChallenge(headerOf401(t, res))
				if err != nil || got.Stale != tc.wantStale {
					t.Errorf("challenge %+v (%v): want stale=%v", got, err, tc.wantStale)
				}
			}
		})
	}

	trunk := newPeerFrom(t, "127.0.0.1", ts.addr)
	branch := inviteFrom(trunk, "+15550100")
	trunk.take("the trunk's call, unchallenged", isResponse(486, "INVITE", branch))
	if n := trunk.count(isResponse(401, "INVITE", "")); n != 0 {
		t.Errorf("the trunk was challenged %d times", n)
	}
	if out := logs.String(); strings.Contains(out, password) || strings.Contains(out, "other-pw") {
		t.Errorf("a password reached the log:\n%s", out)
	}
}

func headerOf401(t *testing.T, res *sipmsg.Response) string {
	t.Helper()
	h := res.GetHeader("WWW-Authenticate")
	if h == nil {
		t.Fatalf("%d without WWW-Authenticate", res.StatusCode)
	}
	return h.Value()
}

// TestDigestConfigRedacted: the configuration prints without passwords.
func TestDigestConfigRedacted(t *testing.T) {
	c := DigestConfig{Realm: "r", Users: map[string]string{"u": "hunter2-pw"}}
	ac := AccessConfig{Digest: c}
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%+v", ac), fmt.Sprintf("%#v", ac)} {
		if strings.Contains(s, "hunter2-pw") {
			t.Errorf("password printed: %s", s)
		}
	}
	if _, err := newDigestAuth(DigestConfig{Realm: "r", Users: map[string]string{"u": "bad\r\npw"}}); err == nil || strings.Contains(err.Error(), "bad") {
		t.Errorf("password with CR/LF: error %v (must refuse it without quoting it)", err)
	}
}
