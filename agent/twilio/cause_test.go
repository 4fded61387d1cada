package twilio

import (
	"bytes"
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

const secretToken = "s3cret-token-value"

// hangingListener accepts TCP connections and never answers them.
func hangingListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// Every way of failing to reach the bot has its own cause, and neither the
// error nor the detail carries the token, in a header or in the URL's
// query (the HTTP client quotes the whole URL in its errors).
func TestStartFailureCauses(t *testing.T) {
	checkGoroutines(t)
	refusing := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "go away", code)
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close() // nothing listens here now
		return addr
	}
	for _, tc := range []struct {
		name   string
		addr   string
		cause  agent.FailureCause
		detail string
	}{
		{"unreachable", closed(), agent.CauseUnreachable, "connection refused"},
		{"forbidden", refusing(http.StatusForbidden), agent.CauseHandshakeRefused, "HTTP 403 Forbidden"},
		{"unauthorized", refusing(http.StatusUnauthorized), agent.CauseHandshakeRefused, "HTTP 401 Unauthorized"},
		{"not-found", refusing(http.StatusNotFound), agent.CauseHandshakeRefused, "HTTP 404"},
		{"slow-handshake", hangingListener(t), agent.CauseConnectTimeout, "within 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(Config{URL: "ws://" + tc.addr + "/media?token=" + secretToken,
				Headers:        http.Header{"Authorization": {"Bearer " + secretToken}},
				ConnectTimeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			log, buf := testLogger(t)
			began := time.Now()
			_, err = a.Start(context.Background(), newFakeCall(log))
			if took := time.Since(began); took > 2*time.Second {
				t.Errorf("Start took %v to fail", took)
			}
			cause, detail := agent.FailureOf(err)
			t.Logf("cause %s, detail %q, error %v", cause, detail, err)
			if !errors.Is(err, ErrConnect) || cause != tc.cause {
				t.Fatalf("Start = %v, cause %q; want ErrConnect with cause %q", err, cause, tc.cause)
			}
			if !strings.Contains(detail, tc.detail) || !strings.Contains(detail, "ws://"+tc.addr+"/media") {
				t.Errorf("detail %q, want the endpoint and %q", detail, tc.detail)
			}
			for what, s := range map[string]string{"error": err.Error(), "detail": detail, "log": buf.String()} {
				if strings.Contains(s, secretToken) {
					t.Errorf("the %s leaks the token: %s", what, s)
				}
			}
		})
	}
}

// Failures after the start have their causes too.
func TestWaitFailureCauses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bot   func(c started)
		is    error
		cause agent.FailureCause
	}{
		{"reset", func(c started) { _ = c.bot.conn.CloseNow() }, ErrBotGone, agent.CauseDropped},
		{"close-1011", func(c started) { _ = c.bot.conn.Close(websocket.StatusInternalError, "llm crashed") },
			ErrBotGone, agent.CauseDropped},
		{"malformed", func(c started) {
			go func() {
				for range maxMalformed + 1 {
					if c.bot.conn.Write(context.Background(), websocket.MessageText, []byte(`{"event":`)) != nil {
						return
					}
				}
			}()
		}, ErrProtocol, agent.CauseProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			srv := newBotServer(t)
			c := startSession(t, srv, Config{})
			res := waitResult(c.s, context.Background())
			tc.bot(c)
			err := within(t, res, 3*time.Second)
			cause, detail := agent.FailureOf(err)
			if !errors.Is(err, tc.is) || cause != tc.cause || detail == "" {
				t.Fatalf("Wait = %v, cause %q, detail %q; want %v, cause %q, a detail", err, cause, detail, tc.is, tc.cause)
			}
			c.bot.done()
		})
	}
}

// The silence watchdog: no message of any kind for the timeout, with none
// of the bot's audio left playing, ends the session with ErrBotSilent;
// marks, media, queued audio, the caller speaking, hold and a ringing
// transfer keep it alive.
func TestSilenceTimeout(t *testing.T) {
	const timeout = 250 * time.Millisecond
	mark := `{"event":"mark","mark":{"name":"tick"}}`
	mediaMsg := func(d time.Duration) string {
		return `{"event":"media","media":{"payload":"` + b64(bytes.Repeat([]byte{0x55}, int(d/time.Millisecond)*8)) + `"}}`
	}
	every := func(c started, msg string, n int) { // ends with a send
		for i := range n {
			if i > 0 {
				time.Sleep(timeout / 3)
			}
			c.bot.send(msg)
		}
	}
	for _, tc := range []struct {
		name string
		cfg  time.Duration
		// bot acts for the bot (and the call) and returns when its
		// activity ends: from then on the session must end after quiet.
		bot   func(c started)
		quiet time.Duration // how long the session must survive after bot returns
		never bool          // the watchdog is off: it never ends
	}{
		{name: "silent", bot: func(started) {}},
		{name: "marks-only", bot: func(c started) { every(c, mark, 12) }},
		{name: "media-only", bot: func(c started) { every(c, mediaMsg(20*time.Millisecond), 12) }},
		{name: "unknown-events", bot: func(c started) { every(c, `{"event":"keepalive"}`, 12) }},
		{name: "malformed", bot: func(c started) { every(c, `{nope`, 12) }},
		// One second of audio queued at once plays for a second: the bot is
		// not silent meanwhile.
		{name: "audio-playing", bot: func(c started) { c.bot.send(mediaMsg(time.Second)) }, quiet: time.Second},
		// A clear drops what was playing: silence counts from the clear.
		{name: "cleared", bot: func(c started) {
			c.bot.send(mediaMsg(5 * time.Second))
			time.Sleep(timeout / 2)
			c.bot.send(`{"event":"clear"}`)
		}},
		{name: "on-hold", bot: func(c started) {
			c.s.OnEvent(agent.Event{Kind: agent.EventHold})
			time.Sleep(4 * timeout)
			c.s.OnEvent(agent.Event{Kind: agent.EventResume})
		}},
		{name: "transfer-ringing", bot: func(c started) {
			for _, st := range []agent.TransferState{agent.TransferTrying, agent.TransferRinging} {
				c.s.OnEvent(agent.Event{Kind: agent.EventTransfer, Transfer: agent.TransferStatus{State: st}})
				time.Sleep(2 * timeout)
			}
			c.s.OnEvent(agent.Event{Kind: agent.EventTransfer, Transfer: agent.TransferStatus{State: agent.TransferFailed}})
		}},
		// The caller talking while the bot listens is not dead air; line
		// noise is.
		{name: "caller-speaks", bot: func(c started) {
			speech := media.Tone(400, media.FrameDuration, 0.3)
			for range 40 { // 800 ms, over three timeouts
				c.s.OnAudio(speech)
				time.Sleep(media.FrameDuration)
			}
		}},
		{name: "caller-noise-only", bot: func(c started) {
			noise := media.Tone(400, media.FrameDuration, 0.005)
			for range 5 {
				c.s.OnAudio(noise)
			}
		}},
		{name: "off", cfg: -1, bot: func(started) {}, never: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			srv := newBotServer(t)
			cfg := tc.cfg
			if cfg == 0 {
				cfg = timeout
			}
			c := startSession(t, srv, Config{SilenceTimeout: cfg})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res := waitResult(c.s, ctx)
			go func() { // keep reading, as a bot does, so the gateway's writes go through
				for {
					if _, err := c.bot.readRaw(); err != nil {
						return
					}
				}
			}()
			tc.bot(c)
			if c.s.closed.Load() {
				t.Fatal("the session ended while the bot was active")
			}
			active := time.Now()
			if tc.never {
				select {
				case err := <-res:
					t.Fatalf("with the watchdog off, Wait = %v", err)
				case <-time.After(4 * timeout):
				}
				cancel()
				if err := within(t, res, 3*time.Second); err != nil {
					t.Fatalf("Wait = %v", err)
				}
				c.bot.done()
				return
			}
			err := within(t, res, tc.quiet+timeout+3*time.Second)
			took := time.Since(active)
			t.Logf("ended %v after the bot's last activity: %v", took, err)
			cause, _ := agent.FailureOf(err)
			if !errors.Is(err, ErrBotSilent) || cause != agent.CauseSilent {
				t.Fatalf("Wait = %v (cause %q), want ErrBotSilent, cause %q", err, cause, agent.CauseSilent)
			}
			if min := tc.quiet + timeout - 50*time.Millisecond; took < min {
				t.Errorf("ended %v after the bot's last activity, want at least %v", took, min)
			}
			c.bot.done()
		})
	}
}

// A bot streaming into a full playout queue fails every media message; the
// warning is logged once, not once per message, and the count is on the
// session's last line.
func TestPlayoutFullWarnsOnce(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	c := startSession(t, srv, Config{})
	c.call.mu.Lock()
	c.call.playErr = media.ErrPlayoutFull
	c.call.mu.Unlock()
	res := waitResult(c.s, context.Background())
	for range 150 {
		c.bot.send(`{"event":"media","media":{"payload":"` + b64(bytes.Repeat([]byte{0x55}, 160)) + `"}}`)
	}
	c.bot.send(`{"event":"mark","mark":{"name":"last"}}`)
	// Once the mark is back, every media message before it was handled.
	c.call.expect(t, "mark:last")
	// A normal end: the session has no error to log.
	go func() { _ = c.bot.conn.Close(websocket.StatusNormalClosure, "done") }()
	if err := within(t, res, 3*time.Second); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	log := c.log.String()
	if n := strings.Count(log, "bot audio not queued"); n != 1 {
		t.Errorf("%d warnings for 150 refused media messages, want 1:\n%s", n, log)
	}
	if !strings.Contains(log, `level=INFO msg="bot session ended"`) || !strings.Contains(log, "audio_not_queued=150") {
		t.Errorf("no info line counting the 150 refused messages at the session's end:\n%s", log)
	}
	c.bot.done()
}

// A bot that asks to hang up and then neither reads nor answers the close
// handshake is cut off after the close grace, not after the WebSocket
// library's own 5 s close timeout. The hangup makes Wait's close race the
// reader, the case in which cancelling the reader alone did not close the
// connection.
func TestDeafBotCutOffWithinGrace(t *testing.T) {
	for i := range 5 {
		checkGoroutines(t)
		srv := newBotServer(t)
		c := startSession(t, srv, Config{})
		res := waitResult(c.s, context.Background())
		began := time.Now()
		c.bot.send(`{"event":"hangup"}`)
		if err := within(t, res, c.s.closeGrace+time.Second); !errors.Is(err, agent.ErrHangup) {
			t.Fatalf("round %d: Wait = %v", i, err)
		}
		if took := time.Since(began); took > c.s.closeGrace+500*time.Millisecond {
			t.Errorf("round %d: Wait took %v, want about the %v close grace", i, took, c.s.closeGrace)
		}
		c.bot.done()
	}
}
