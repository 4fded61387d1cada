package test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/media"
)

// scriptBot is a Twilio Media Streams bot driven by a test: an HTTP server on
// 127.0.0.1 that accepts the gateway's WebSocket, reads `connected` and
// `start`, and hands the connection to the test's script. A reader goroutine
// keeps draining the gateway's messages (so the gateway never sees a slow
// bot), checks the shape of every message, counts the caller's audio and
// queues everything else (marks, dtmf, stop, ...) for the script.
type scriptBot struct {
	srv    *httptest.Server
	URL    string // ws://127.0.0.1:PORT/media
	script func(ctx context.Context, c *botConn) error

	ctx    context.Context // ends every connection's script (test cleanup)
	cancel context.CancelFunc
	conns  chan *botConn // every accepted connection, once its script has ended
}

// botConn is one gateway connection as the script sees it.
type botConn struct {
	ws     *websocket.Conn
	raw    net.Conn    // the TCP connection under the WebSocket, to drop it rudely
	Header http.Header // the gateway's upgrade request's headers

	Connected map[string]any
	StartRaw  []byte
	Start     startMsg

	events   chan botEvent // non-media, non-dtmf messages from the gateway, in order
	readDone chan struct{} // closed when the reader has ended
	readErr  error         // why reading ended; valid after readDone

	mu         sync.Mutex
	problems   []string
	mediaCount int
	dtmf       []map[string]any // dtmf messages, kept apart so scripts see marks in order
	lastSeq    int64            // sequenceNumber of the last message (start is 1)
	lastChunk  int64
	lastTS     int64
	scriptErr  error
}

// botEvent is one non-media message from the gateway and when it arrived.
type botEvent struct {
	Event string
	Msg   map[string]any
	Raw   []byte
	At    time.Time
}

type startMsg struct {
	Event          string `json:"event"`
	SequenceNumber any    `json:"sequenceNumber"`
	StreamSid      string `json:"streamSid"`
	Start          struct {
		AccountSid       string            `json:"accountSid"`
		StreamSid        string            `json:"streamSid"`
		CallSid          string            `json:"callSid"`
		Tracks           []string          `json:"tracks"`
		CustomParameters map[string]string `json:"customParameters"`
		MediaFormat      struct {
			Encoding   string `json:"encoding"`
			SampleRate int    `json:"sampleRate"`
			Channels   int    `json:"channels"`
		} `json:"mediaFormat"`
	} `json:"start"`
}

type rawConnKey struct{}

// newScriptBot starts a bot whose every connection runs script after
// `connected` and `start` were read. t.Cleanup ends running scripts and
// closes the server.
func newScriptBot(t *testing.T, script func(ctx context.Context, c *botConn) error) *scriptBot {
	t.Helper()
	b := &scriptBot{script: script, conns: make(chan *botConn, 8)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("/media", b.serve)
	b.srv = httptest.NewUnstartedServer(mux)
	b.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, rawConnKey{}, c)
	}
	b.srv.Start() // httptest listens on 127.0.0.1:0
	b.URL = "ws" + strings.TrimPrefix(b.srv.URL, "http") + "/media"
	// Cleanups run last-in first-out: end the scripts, then close the server
	// (Close waits for the handlers).
	t.Cleanup(b.srv.Close)
	t.Cleanup(b.cancel)
	return b
}

func (b *scriptBot) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer func() { _ = ws.CloseNow() }()
	ws.SetReadLimit(2 << 20)
	c := &botConn{ws: ws, Header: r.Header.Clone(), events: make(chan botEvent, 256), readDone: make(chan struct{})}
	c.raw, _ = r.Context().Value(rawConnKey{}).(net.Conn)
	defer func() { b.conns <- c }()

	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := c.open(ctx); err != nil {
		c.scriptErr = err
		close(c.readDone)
		return
	}
	go c.readLoop(ctx)
	c.scriptErr = b.script(ctx, c)
}

// next waits for the next connection's script to end and returns it.
func (b *scriptBot) next(t *testing.T, timeout time.Duration) *botConn {
	t.Helper()
	select {
	case c := <-b.conns:
		return c
	case <-time.After(timeout):
		t.Fatalf("bot: no connection finished within %v", timeout)
		return nil
	}
}

// open reads `connected` and `start`.
func (c *botConn) open(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, data, err := c.ws.Read(rctx)
	if err != nil {
		return fmt.Errorf("reading connected: %w", err)
	}
	if err := json.Unmarshal(data, &c.Connected); err != nil {
		return fmt.Errorf("connected %s: %w", data, err)
	}
	_, data, err = c.ws.Read(rctx)
	if err != nil {
		return fmt.Errorf("reading start: %w", err)
	}
	c.StartRaw = data
	if err := json.Unmarshal(data, &c.Start); err != nil {
		return fmt.Errorf("start %s: %w", data, err)
	}
	c.lastSeq = 1
	return nil
}

// readLoop drains the gateway's messages until the connection ends.
func (c *botConn) readLoop(ctx context.Context) {
	defer close(c.readDone)
	defer close(c.events)
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			c.readErr = err
			return
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			c.problem("gateway sent a message that is not JSON: %q", data)
			continue
		}
		ev, _ := m["event"].(string)
		c.checkSeq(ev, m)
		if ev == "media" {
			c.checkMedia(m)
			continue
		}
		if ev == "dtmf" {
			c.mu.Lock()
			c.dtmf = append(c.dtmf, m)
			c.mu.Unlock()
			continue
		}
		select {
		case c.events <- botEvent{Event: ev, Msg: m, Raw: data, At: time.Now()}:
		default:
			c.problem("bot's event queue overflowed at %s", data)
		}
	}
}

// checkSeq checks that sequenceNumber is a string counting every message.
func (c *botConn) checkSeq(ev string, m map[string]any) {
	s, ok := m["sequenceNumber"].(string)
	if !ok {
		c.problem("%s: sequenceNumber %#v is not a JSON string", ev, m["sequenceNumber"])
		return
	}
	n, err := strconv.ParseInt(s, 10, 64)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || n != c.lastSeq+1 {
		c.problemLocked("%s: sequenceNumber %q after %d, want %d", ev, s, c.lastSeq, c.lastSeq+1)
	}
	if err == nil {
		c.lastSeq = n
	}
}

// checkMedia checks one caller-audio message against the protocol.
func (c *botConn) checkMedia(m map[string]any) {
	md, _ := m["media"].(map[string]any)
	if md == nil {
		c.problem("media message without media: %v", m)
		return
	}
	if sid, _ := m["streamSid"].(string); sid != c.Start.StreamSid {
		c.problem("media streamSid %q, start said %q", sid, c.Start.StreamSid)
	}
	if md["track"] != "inbound" {
		c.problem("media track %#v, want \"inbound\"", md["track"])
	}
	chunkS, ok1 := md["chunk"].(string)
	tsS, ok2 := md["timestamp"].(string)
	payload, ok3 := md["payload"].(string)
	if !ok1 || !ok2 || !ok3 {
		c.problem("media chunk %#v, timestamp %#v, payload (%T) must be JSON strings", md["chunk"], md["timestamp"], md["payload"])
		return
	}
	ulaw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil || len(ulaw) != 160 {
		c.problem("media payload: %d bytes, error %v; want 160 bytes of base64", len(ulaw), err)
	}
	chunk, err1 := strconv.ParseInt(chunkS, 10, 64)
	ts, err2 := strconv.ParseInt(tsS, 10, 64)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mediaCount++
	if err1 != nil || chunk != c.lastChunk+1 {
		c.problemLocked("media chunk %q after %d", chunkS, c.lastChunk)
	}
	if err2 != nil || ts < c.lastTS {
		c.problemLocked("media timestamp %q after %d", tsS, c.lastTS)
	}
	c.lastChunk, c.lastTS = chunk, ts
}

func (c *botConn) problem(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problemLocked(format, args...)
}

func (c *botConn) problemLocked(format string, args ...any) {
	if len(c.problems) < 20 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

// Problems returns what the reader found wrong with the gateway's messages.
func (c *botConn) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.problems...)
}

// MediaCount is how many caller-audio messages arrived so far.
func (c *botConn) MediaCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mediaCount
}

// DTMF returns the dtmf messages received so far.
func (c *botConn) DTMF() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.dtmf...)
}

// send writes one JSON message.
func (c *botConn) send(ctx context.Context, msg any) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.ws.Write(wctx, websocket.MessageText, data)
}

// sendMedia sends µ-law audio as one media message.
func (c *botConn) sendMedia(ctx context.Context, ulaw []byte) error {
	return c.send(ctx, map[string]any{"event": "media", "streamSid": c.Start.StreamSid,
		"media": map[string]string{"payload": base64.StdEncoding.EncodeToString(ulaw)}})
}

func (c *botConn) sendMark(ctx context.Context, name string) error {
	return c.send(ctx, map[string]any{"event": "mark", "streamSid": c.Start.StreamSid,
		"mark": map[string]string{"name": name}})
}

// nextEvent returns the next non-media message, waiting up to timeout.
func (c *botConn) nextEvent(ctx context.Context, timeout time.Duration) (botEvent, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ev, ok := <-c.events:
		if !ok {
			return botEvent{}, fmt.Errorf("connection ended (%v) while waiting for a message", c.readErr)
		}
		return ev, nil
	case <-timer.C:
		return botEvent{}, fmt.Errorf("no message from the gateway within %v", timeout)
	case <-ctx.Done():
		return botEvent{}, ctx.Err()
	}
}

// expectMark waits for the next non-media message and requires it to be the
// mark name.
func (c *botConn) expectMark(ctx context.Context, name string, timeout time.Duration) (botEvent, error) {
	ev, err := c.nextEvent(ctx, timeout)
	if err != nil {
		return ev, fmt.Errorf("waiting for mark %q: %w", name, err)
	}
	mk, _ := ev.Msg["mark"].(map[string]any)
	if ev.Event != "mark" || mk["name"] != name {
		return ev, fmt.Errorf("want mark %q, got %s", name, ev.Raw)
	}
	if sid, _ := ev.Msg["streamSid"].(string); sid != c.Start.StreamSid {
		return ev, fmt.Errorf("mark %q carries streamSid %q, start said %q", name, sid, c.Start.StreamSid)
	}
	return ev, nil
}

// waitMedia waits until n caller-audio messages have arrived.
func (c *botConn) waitMedia(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for c.MediaCount() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d media messages within %v, want %d", c.MediaCount(), timeout, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.readDone:
			return fmt.Errorf("connection ended (%v) after %d media messages, want %d", c.readErr, c.MediaCount(), n)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// waitDTMF waits until n dtmf messages have arrived.
func (c *botConn) waitDTMF(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for len(c.DTMF()) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d dtmf messages within %v, want %d", len(c.DTMF()), timeout, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.readDone:
			return fmt.Errorf("connection ended (%v) after %d dtmf messages, want %d", c.readErr, len(c.DTMF()), n)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// waitClosed waits for the reader to end and returns the WebSocket close
// status the gateway sent (-1 when the connection ended without one).
func (c *botConn) waitClosed(timeout time.Duration) (websocket.StatusCode, error) {
	select {
	case <-c.readDone:
		return websocket.CloseStatus(c.readErr), c.readErr
	case <-time.After(timeout):
		return -1, errors.New("the gateway did not close the connection")
	}
}

// dropTCP ends the connection as a crashed bot would: an RST, no close frame.
func (c *botConn) dropTCP() error {
	tc, ok := c.raw.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("raw connection is %T, not TCP", c.raw)
	}
	_ = tc.SetLinger(0)
	return tc.Close()
}

// ulawTone is a µ-law sine tone at hz, d long, amplitude 0.5.
func ulawTone(hz float64, d time.Duration) []byte {
	pcm := media.Tone(hz, d, 0.5)
	out := make([]byte, len(pcm))
	n := media.Encode(media.PCMU, out, pcm)
	return out[:n]
}
