package dialplan

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/rtp"
	"github.com/switchboard-voice/switchboard/sip"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func testLogger() *slog.Logger {
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// freeSIPAddr finds a loopback port free for both UDP and TCP.
func freeSIPAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	for range 50 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		u.Close()
		if err == nil {
			l.Close()
			return netip.AddrPortFrom(loopback, uint16(port))
		}
	}
	t.Fatal("no free SIP port")
	return netip.AddrPort{}
}

// endpoint is a running sip.Server on loopback, stopped at test end.
type endpoint struct {
	addr netip.AddrPort
	srv  *sip.Server
}

func startEndpoint(t testing.TB, handler sip.CallHandler) *endpoint {
	t.Helper()
	addr := freeSIPAddr(t)
	srv, err := sip.NewServer(sip.Config{Listen: addr, Logger: testLogger()}, handler)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	ready := make(chan struct{})
	go func() { served <- srv.Serve(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-served:
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("sip server did not stop")
		}
	})
	return &endpoint{addr: addr, srv: srv}
}

// gateway is the inbound side under test: a sip.Server driven by an Executor.
type gateway struct {
	*endpoint
	exec *Executor
	pool *rtp.PortPool
}

func startGateway(t testing.TB, agents map[string]agent.Agent, defaultAgent string, inactivity time.Duration) *gateway {
	t.Helper()
	pool, err := rtp.NewPortPool(loopback, 30000, 30999, 0)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := NewExecutor(Env{
		Media:        media.LegConfig{Pool: pool, Latch: true, InactivityTimeout: inactivity, Logger: testLogger()},
		Answer:       media.AnswerConfig{Codecs: []string{"PCMU", "PCMA"}, LocalAddr: loopback},
		Agents:       agents,
		DefaultAgent: defaultAgent,
		Log:          testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &gateway{endpoint: startEndpoint(t, exec.HandleCall), exec: exec, pool: pool}
}

// caller places calls with real RTP, like `switchboard call`.
type caller struct {
	*endpoint
	pool *rtp.PortPool
}

func newCaller(t testing.TB) *caller {
	pool, err := rtp.NewPortPool(loopback, 31000, 31999, 0)
	if err != nil {
		t.Fatal(err)
	}
	ep := startEndpoint(t, func(ctx context.Context, c *sip.InboundCall) { _ = c.Reject(486, "") })
	return &caller{endpoint: ep, pool: pool}
}

// recorder is a media.Sink that keeps what it hears.
type recorder struct {
	mu     sync.Mutex
	audio  []int16
	digits []rune
}

func (r *recorder) OnAudio(f []int16) { r.mu.Lock(); r.audio = append(r.audio, f...); r.mu.Unlock() }
func (r *recorder) OnDTMF(d rune, _ time.Duration) {
	r.mu.Lock()
	r.digits = append(r.digits, d)
	r.mu.Unlock()
}
func (r *recorder) OnMark(string)       {}
func (r *recorder) OnEvent(agent.Event) {}

func (r *recorder) heard() []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.audio...)
}

// activeCall is an answered outbound call with its media running.
type activeCall struct {
	sip  *sip.OutboundCall
	leg  *media.Leg
	rec  *recorder
	stop context.CancelFunc
}

func (c *caller) dial(t testing.TB, target netip.AddrPort, codecs []string) *activeCall {
	t.Helper()
	leg, err := media.OpenLeg(media.LegConfig{Pool: c.pool, Latch: true, Logger: testLogger()}, []uint8{0, 8, 101})
	if err != nil {
		t.Fatal(err)
	}
	cfg := media.AnswerConfig{Codecs: codecs, PreferOurs: true, LocalAddr: loopback, LocalPort: leg.LocalPort(), SessionID: 1, SessionVersion: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call, err := c.srv.Dial(ctx, "sip:agent@"+target.String(), media.BuildOffer(cfg, 101), sip.DialOptions{FromUser: "+15550001"})
	if err != nil {
		leg.Close()
		t.Fatalf("dial: %v", err)
	}
	desc, err := media.ParseDescription(call.Answer)
	if err != nil {
		t.Fatalf("answer SDP: %v", err)
	}
	neg, err := media.ApplyAnswer(desc, cfg)
	if err != nil {
		t.Fatalf("answer SDP: %v", err)
	}
	mctx, stop := context.WithCancel(context.Background())
	rec := &recorder{}
	if err := leg.Start(mctx, neg, rec); err != nil {
		t.Fatal(err)
	}
	ac := &activeCall{sip: call, leg: leg, rec: rec, stop: stop}
	t.Cleanup(func() { ac.hangup() })
	return ac
}

func (a *activeCall) hangup() {
	_ = a.sip.Hangup(context.Background(), sip.CauseNormal.Reason())
	a.stop()
	a.leg.Close()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
