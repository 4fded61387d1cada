package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/configs"
)

func TestBenchFrameRoundTrip(t *testing.T) {
	p := make([]byte, benchPayload)
	fillBenchPayload(p)
	for _, c := range []struct{ call, frame uint32 }{{0, 0}, {1, 1}, {benchMaxIndex - 1, benchMaxFrames - 1}, {12345, 67890}} {
		markBenchFrame(p, c.call, c.frame)
		for i, b := range p {
			if b == 0x7F {
				t.Fatalf("byte %d is 0x7F, which µ-law decoding turns into 0xFF", i)
			}
		}
		call, frame, ok := parseBenchFrame(p)
		if !ok || call != c.call || frame != c.frame {
			t.Errorf("mark (%d, %d) read back as (%d, %d, %v)", c.call, c.frame, call, frame, ok)
		}
	}
	if _, _, ok := parseBenchFrame(bytes.Repeat([]byte{0xFF}, benchPayload)); ok {
		t.Error("comfort silence parsed as a bench frame")
	}
}

func TestLatencyHistQuantiles(t *testing.T) {
	var h latencyHist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * 10 * time.Microsecond) // 10 µs .. 10 ms
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{.5, 5 * time.Millisecond}, {.99, 9900 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want || got > c.want+c.want/50 {
			t.Errorf("q%.2f = %v, want %v (within 2%% above)", c.q, got, c.want)
		}
	}
	var empty latencyHist
	if empty.quantile(.5) != 0 {
		t.Error("empty histogram has a median")
	}
}

func TestBenchRefusesOffLoopback(t *testing.T) {
	for _, a := range []string{"192.0.2.1:5060", "0.0.0.0:5060", "[2001:db8::1]:5060", "localhost:5060", "example.com:5060"} {
		if _, err := loopbackAddr("target", a); err == nil {
			t.Errorf("%s accepted as a bench target", a)
		}
	}
	for _, a := range []string{"127.0.0.1:5060", "127.0.0.2:5060", "[::1]:5060"} {
		if _, err := loopbackAddr("target", a); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
	o := benchOptions{target: mustAddrPort(t, "127.0.0.1:5060"), user: "bench", calls: benchCapCalls + 1, concurrent: 1, rate: 1,
		callDuration: time.Second, maxTime: time.Minute, setupTimeout: time.Second, sample: time.Second}
	if err := o.validate(); err == nil {
		t.Error("a call count over the cap was accepted")
	}
}

// TestBenchAgainstGateway runs the bench against a gateway started in this
// process (websocket agent pointing at the bench's own bot): every frame
// must come back, with inbound and outbound delays measured.
func TestBenchAgainstGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway: skipped with -short")
	}
	sipPort, err := freeSIPPort(mustAddrPort(t, "127.0.0.1:0").Addr())
	if err != nil {
		t.Fatal(err)
	}
	botLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	botAddr := botLn.Addr().String()
	_ = botLn.Close() // the bench binds it again below
	rtpMin := 20000 + 2*int(time.Now().UnixNano()%2000)
	cfgPath := filepath.Join(t.TempDir(), "gw.yaml")
	cfg := fmt.Sprintf(`sip:
  listen: 127.0.0.1:%d
media:
  rtp_address: 127.0.0.1
  rtp_port_min: %d
  rtp_port_max: %d
agents:
  bot: {type: websocket, url: "ws://%s/media", connect_timeout: 3s}
default_agent: bot
access:
  rate_limit: {per_second: 0}
admin:
  listen: ""
log:
  level: error
`, sipPort, rtpMin, rtpMin+39, botAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gcfg, err := LoadConfig(cfgPath, configs.DefaultGateway())
	if err != nil {
		t.Fatal(err)
	}
	// newLogger also sets sipgo's process-wide logger: make it once, before
	// the gateway goroutine starts, and share it.
	log := newLogger(io.Discard, "error", "text")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runGateway(ctx, gcfg, log) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the gateway did not stop")
		}
	}()
	waitUDP(t, fmt.Sprintf("127.0.0.1:%d", sipPort))

	o := benchOptions{target: mustAddrPort(t, fmt.Sprintf("127.0.0.1:%d", sipPort)), user: "bench",
		listen: mustAddrPort(t, "127.0.0.1:0"), calls: 6, concurrent: 3, rate: 20, callDuration: time.Second,
		maxTime: 30 * time.Second, drain: 300 * time.Millisecond, setupTimeout: 5 * time.Second, botListen: botAddr,
		pid: os.Getpid(), idle: 200 * time.Millisecond, sample: 200 * time.Millisecond}
	var out strings.Builder
	rep, err := runBench(t.Context(), o, &out, log)
	if err != nil {
		t.Fatal(err)
	}
	rep.print(&out)
	t.Log(out.String())
	if err := rep.verdict(); err != nil {
		t.Error(err)
	}
	if rep.Answered != 6 || rep.BotConns != 6 {
		t.Errorf("answered %d, bot connections %d; want 6 and 6", rep.Answered, rep.BotConns)
	}
	if want := int64(6 * 50); rep.FramesSent != want {
		t.Errorf("sent %d frames, want %d", rep.FramesSent, want)
	}
	if rep.LostTotal != 0 || rep.Foreign != 0 {
		t.Errorf("lost %d frames, %d misrouted; want none on loopback", rep.LostTotal, rep.Foreign)
	}
	if rep.InboundP50 <= 0 || rep.OutboundP50 <= 0 || rep.SetupP50 <= 0 {
		t.Errorf("inbound p50 %v, outbound p50 %v, setup p50 %v: want all measured", rep.InboundP50, rep.OutboundP50, rep.SetupP50)
	}
}

func waitUDP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		// A bound port refuses our own bind: the gateway is listening.
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return
		}
		_ = c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
