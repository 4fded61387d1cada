package twilio

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
)

func TestBotDown(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens here now
	a, err := New(Config{URL: "ws://" + addr + "/media"})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	start := time.Now()
	_, err = a.Start(context.Background(), newFakeCall(log))
	if !errors.Is(err, ErrConnect) {
		t.Fatalf("Start = %v, want ErrConnect", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Start took %v to fail", d)
	}
}

func TestBotHandshakeHangs(t *testing.T) {
	checkGoroutines(t)
	a, err := New(Config{URL: "ws://" + hangingListener(t), ConnectTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	start := time.Now()
	_, err = a.Start(context.Background(), newFakeCall(log))
	d := time.Since(start)
	if !errors.Is(err, ErrConnect) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want ErrConnect after the deadline", err)
	}
	if d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("Start failed after %v, want about the 200ms connect timeout", d)
	}
}

func TestBotRejectsHandshake(t *testing.T) {
	checkGoroutines(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	a, err := New(Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http")})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	if _, err := a.Start(context.Background(), newFakeCall(log)); !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Start = %v, want ErrConnect with the 403", err)
	}
}

// A bot that stops reading must cost the media path nothing: OnAudio stays
// fast and frames are dropped; Wait still ends within the close grace.
func TestSlowBotDropsFrames(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	c := startSession(t, srv, Config{})
	frame := make([]int16, 10*media.FrameSamples) // big frames fill the socket buffers sooner
	for i := range frame {
		frame[i] = int16(i * 37)
	}
	// Feed audio until the writer is stuck: the socket buffers are full and
	// a pause no longer drains the queue.
	var slowest time.Duration
	start := time.Now()
	for stuck := false; !stuck; {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("writer never blocked; %d frames dropped", c.s.dropped.Load())
		}
		for range 500 {
			t0 := time.Now()
			c.s.OnAudio(frame)
			slowest = max(slowest, time.Since(t0))
		}
		time.Sleep(20 * time.Millisecond)
		before := c.s.dropped.Load()
		c.s.OnAudio(frame)
		stuck = c.s.dropped.Load() > before
	}
	if slowest > 50*time.Millisecond {
		t.Errorf("OnAudio blocked for %v", slowest)
	}
	// Control messages do not block either.
	for range 2 * queueControls {
		c.s.OnDTMF('1', 0)
	}
	t.Logf("dropped %d frames, slowest OnAudio %v", c.s.dropped.Load(), slowest)
	ctx, cancel := context.WithCancel(context.Background())
	res := waitResult(c.s, ctx)
	cancel()
	if err := within(t, res, c.s.closeGrace+2*time.Second); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	if n := sessionGoroutines(); n > 0 {
		time.Sleep(100 * time.Millisecond)
		if n = sessionGoroutines(); n > 0 {
			t.Errorf("%d session goroutines after Wait", n)
		}
	}
	c.s.OnAudio(frame) // after Wait: ignored, no panic
}

func TestEchoBot(t *testing.T) {
	checkGoroutines(t)
	var wg sync.WaitGroup
	echo := NewEchoBot(nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		echo.ServeHTTP(w, r)
	}))
	defer func() { wg.Wait(); srv.Close() }()
	a, err := New(Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http")})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	call := newFakeCall(log)
	sess, err := a.Start(context.Background(), call)
	if err != nil {
		t.Fatal(err)
	}
	s := sess.(*session)
	call.mu.Lock()
	call.onMark = s.OnMark
	call.mu.Unlock()
	frame := make([]int16, media.FrameSamples)
	want := make([]byte, 0, 3*len(frame))
	for n := range 3 {
		for i := range frame {
			frame[i] = int16((i + n) * 50)
		}
		s.OnAudio(frame)
		enc := make([]byte, len(frame))
		media.Encode(media.PCMU, enc, frame)
		want = append(want, enc...)
		call.expect(t, "play:160")
	}
	s.OnDTMF('7', 0)
	call.expect(t, "mark:dtmf-7")
	if got := call.Played(); string(got) != string(want) {
		t.Errorf("echoed %d bytes, want the %d sent", len(got), len(want))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "http://bot.example.com/media"},
		{URL: "ws:///media"},
		{URL: "://bad"},
		{URL: "ws://bot.example.com", AccountSid: "AC123"},
		{URL: "ws://bot.example.com", AccountSid: "XX" + strings.Repeat("0", 32)},
		{URL: "ws://bot.example.com", Headers: http.Header{"Authorization": {"Bearer x\r\nX-Evil: 1"}}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
	a, err := New(Config{URL: "wss://user:pw@bot.example.com/media?token=secret", AccountSid: "AC" + strings.Repeat("ab", 16)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(a.endpoint, "secret") || strings.Contains(a.endpoint, "pw") {
		t.Errorf("endpoint %q leaks credentials", a.endpoint)
	}
}

func TestIDs(t *testing.T) {
	if CallSid("abc@host") != CallSid("abc@host") || !reCallSid.MatchString(CallSid("abc@host")) {
		t.Errorf("CallSid = %q", CallSid("abc@host"))
	}
	// "CA" + md5 (RFC 1321's test vector), so any service can recompute it.
	if got := CallSid("abc"); got != "CA900150983cd24fb0d6963f7d28e17f72" {
		t.Errorf("CallSid = %q", got)
	}
	if !reAccountSid.MatchString(DefaultAccountSid()) || DefaultAccountSid() != DefaultAccountSid() {
		t.Errorf("DefaultAccountSid = %q", DefaultAccountSid())
	}
	a, b := newStreamSid(), newStreamSid()
	if !reStreamSid.MatchString(a) || a == b {
		t.Errorf("stream sids %q %q", a, b)
	}
}

func TestBotMessageTooBig(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	c := startSession(t, srv, Config{})
	res := waitResult(c.s, context.Background())
	go func() { // the gateway closes the socket mid-message
		_ = c.bot.conn.Write(context.Background(), websocket.MessageText, make([]byte, maxMessageBytes+1))
	}()
	err := within(t, res, 3*time.Second)
	if cause, _ := agent.FailureOf(err); !errors.Is(err, ErrProtocol) || cause != agent.CauseProtocol {
		t.Fatalf("Wait = %v (cause %q), want ErrProtocol, cause %q", err, cause, agent.CauseProtocol)
	}
	c.bot.done()
}
