package twilio

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
)

// checkGoroutines fails the test if goroutines started during it are still
// running when it ends. Register it before anything else so it runs last.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// sessionGoroutines counts running goroutines inside the session's loops.
func sessionGoroutines() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "twilio.(*session).readLoop") +
		strings.Count(string(buf[:n]), "twilio.(*session).writeLoop")
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger logs at debug into a buffer that is printed if the test fails.
func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// fakeCall records what the session asks of the call.
type fakeCall struct {
	info   agent.Info
	log    *slog.Logger
	events chan string

	mu          sync.Mutex
	played      []byte
	transfers   []agent.TransferRequest
	transferErr error
	playErr     error // PlayUlaw's answer, after recording the audio
	onMark      func(string)
}

func newFakeCall(log *slog.Logger) *fakeCall {
	return &fakeCall{
		info: agent.Info{CallID: "a84b4c76e66710@pc33.example.com", From: "+15550100001", To: "+15550100002",
			Trunk: "telnyx", Params: map[string]string{"lang": "en"}},
		log:    log,
		events: make(chan string, 4096),
	}
}

func (c *fakeCall) event(format string, args ...any) {
	select {
	case c.events <- fmt.Sprintf(format, args...):
	default:
	}
}

func (c *fakeCall) Info() agent.Info              { return c.info }
func (c *fakeCall) Log() *slog.Logger             { return c.log }
func (c *fakeCall) PlayPCM(s []int16) error       { c.event("pcm:%d", len(s)); return nil }
func (c *fakeCall) Clear()                        { c.event("clear") }
func (c *fakeCall) SendDigits(d string) error     { c.event("digits:%s", d); return nil }
func (c *fakeCall) CompleteTransfer(b bool) error { c.event("complete:%v", b); return nil }

func (c *fakeCall) PlayUlaw(p []byte) error {
	c.mu.Lock()
	c.played = append(c.played, p...)
	err := c.playErr
	c.mu.Unlock()
	c.event("play:%d", len(p))
	return err
}

func (c *fakeCall) Mark(name string) {
	c.mu.Lock()
	hook := c.onMark
	c.mu.Unlock()
	c.event("mark:%s", name)
	if hook != nil {
		hook(name)
	}
}

func (c *fakeCall) Transfer(req agent.TransferRequest) error {
	c.mu.Lock()
	c.transfers = append(c.transfers, req)
	err := c.transferErr
	c.mu.Unlock()
	c.event("transfer:%s:%s", req.Mode, req.Target)
	return err
}

func (c *fakeCall) Played() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.played...)
}

// expect waits for the next call event equal to want, skipping others.
func (c *fakeCall) expect(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-c.events:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("call event %q not seen", want)
		}
	}
}

// started is a session connected to a scripted bot, past `start`.
type started struct {
	s    *session
	call *fakeCall
	bot  *botConn
	log  *syncBuffer
}

func startSession(t *testing.T, srv *botServer, cfg Config) started {
	t.Helper()
	log, buf := testLogger(t)
	if cfg.URL == "" {
		cfg.URL = srv.wsURL()
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.closeGrace = 300 * time.Millisecond
	call := newFakeCall(log)
	sess, err := a.Start(context.Background(), call)
	if err != nil {
		t.Fatal(err)
	}
	bot := srv.accept(t)
	bot.next("connected")
	bot.next("start")
	return started{s: sess.(*session), call: call, bot: bot, log: buf}
}

// waitResult runs Wait(ctx) in the background.
func waitResult(s *session, ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.Wait(ctx) }()
	return ch
}

func within(t *testing.T, ch <-chan error, d time.Duration) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("Wait did not return within %v; goroutines:\n%s", d, buf[:n])
		return nil
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
