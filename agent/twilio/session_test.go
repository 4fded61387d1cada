package twilio

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
)

var (
	reStreamSid  = regexp.MustCompile(`^MZ[0-9a-f]{32}$`)
	reCallSid    = regexp.MustCompile(`^CA[0-9a-f]{32}$`)
	reAccountSid = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
)

// stringFields checks that the named keys of a raw JSON object are strings.
func stringFields(t *testing.T, raw []byte, path string, keys ...string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	obj := m
	if path != "" {
		obj, _ = m[path].(map[string]any)
	}
	for _, k := range keys {
		if _, ok := obj[k].(string); !ok {
			t.Errorf("%s.%s = %#v, want a string in %s", path, k, obj[k], raw)
		}
	}
	return m
}

func TestStartMessages(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	log, _ := testLogger(t)
	a, err := New(Config{URL: srv.wsURL() + "/media?token=x", Headers: http.Header{"Authorization": {"Bearer s3cret"}},
		CustomHeaders: []string{"X-Customer-Id"}})
	if err != nil {
		t.Fatal(err)
	}
	call := newFakeCall(log)
	call.info.Params = map[string]string{"lang": "en"}
	call.info.Header = func(name string) string {
		if strings.EqualFold(name, "X-Customer-Id") {
			return "42"
		}
		return ""
	}
	sess, err := a.Start(context.Background(), call)
	if err != nil {
		t.Fatal(err)
	}
	bot := srv.accept(t)
	if got := bot.header.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("Authorization = %q", got)
	}
	_, raw := bot.next("connected")
	var connected map[string]any
	_ = json.Unmarshal(raw, &connected)
	want := map[string]any{"event": "connected", "protocol": "Call", "version": "1.0.0"}
	if len(connected) != len(want) {
		t.Errorf("connected = %s", raw)
	}
	for k, v := range want {
		if connected[k] != v {
			t.Errorf("connected.%s = %v, want %v", k, connected[k], v)
		}
	}
	m, raw := bot.next("start")
	stringFields(t, raw, "", "sequenceNumber", "streamSid")
	if m.SequenceNumber != "1" || !reStreamSid.MatchString(m.StreamSid) || m.Start == nil {
		t.Fatalf("start = %s", raw)
	}
	st := m.Start
	if st.StreamSid != m.StreamSid || !reCallSid.MatchString(st.CallSid) || !reAccountSid.MatchString(st.AccountSid) {
		t.Errorf("start ids = %s", raw)
	}
	if st.CallSid != CallSid(call.info.CallID) || st.AccountSid != DefaultAccountSid() {
		t.Errorf("callSid %s accountSid %s", st.CallSid, st.AccountSid)
	}
	if len(st.Tracks) != 1 || st.Tracks[0] != "inbound" {
		t.Errorf("tracks = %v", st.Tracks)
	}
	if st.MediaFormat != (mediaFormat{Encoding: "audio/x-mulaw", SampleRate: 8000, Channels: 1}) {
		t.Errorf("mediaFormat = %+v", st.MediaFormat)
	}
	wantParams := map[string]string{"from_number": "+15550100001", "to_number": "+15550100002", "trunk": "telnyx",
		"call_id": call.info.CallID, "lang": "en", "X-Customer-Id": "42"}
	if len(st.CustomParameters) != len(wantParams) {
		t.Errorf("customParameters = %v", st.CustomParameters)
	}
	for k, v := range wantParams {
		if st.CustomParameters[k] != v {
			t.Errorf("customParameters[%s] = %q, want %q", k, st.CustomParameters[k], v)
		}
	}
	cancelWait(t, started{s: sess.(*session), call: call, bot: bot})
}

func TestMediaFraming(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	c := startSession(t, srv, Config{})
	frame := make([]int16, media.FrameSamples)
	for i := range frame {
		frame[i] = int16(i * 100)
	}
	ulaw := make([]byte, len(frame))
	media.Encode(media.PCMU, ulaw, frame)
	for i := range 5 {
		if i == 3 {
			time.Sleep(60 * time.Millisecond)
		}
		c.s.OnAudio(frame)
	}
	var lastTS int64
	for i := range 5 {
		m, raw := c.bot.next("media")
		stringFields(t, raw, "", "sequenceNumber", "streamSid")
		stringFields(t, raw, "media", "track", "chunk", "timestamp", "payload")
		if m.SequenceNumber != strconv.Itoa(i+2) || m.Media.Chunk != strconv.Itoa(i+1) || m.Media.Track != "inbound" {
			t.Errorf("message %d: %s", i, raw)
		}
		if m.StreamSid != c.s.streamSid {
			t.Errorf("streamSid %s, want %s", m.StreamSid, c.s.streamSid)
		}
		p, err := base64.StdEncoding.DecodeString(m.Media.Payload)
		if err != nil || string(p) != string(ulaw) {
			t.Errorf("payload %d: %v, %d bytes", i, err, len(p))
		}
		ts, err := strconv.ParseInt(m.Media.Timestamp, 10, 64)
		if err != nil || ts < lastTS {
			t.Errorf("timestamp %q after %d", m.Media.Timestamp, lastTS)
		}
		if i == 3 && ts-lastTS < 60 {
			t.Errorf("timestamp %d only %d ms after %d across a 60 ms gap", ts, ts-lastTS, lastTS)
		}
		lastTS = ts
	}
	c.s.OnDTMF('5', 120*time.Millisecond)
	m, raw := c.bot.next("dtmf")
	stringFields(t, raw, "", "sequenceNumber", "streamSid")
	if m.SequenceNumber != "7" || m.DTMF == nil || *m.DTMF != (dtmfInfo{Track: "inbound_track", Digit: "5", Duration: "120"}) {
		t.Errorf("dtmf = %s", raw)
	}
	cancelWait(t, c)
}

// cancelWait ends the session through ctx and checks the stop message.
func cancelWait(t *testing.T, c started) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := waitResult(c.s, ctx)
	cancel()
	m, raw := c.bot.next("stop")
	stringFields(t, raw, "", "sequenceNumber", "streamSid")
	if m.Stop == nil || m.Stop.CallSid != c.s.callSid || m.Stop.AccountSid != c.s.accountSid || m.StreamSid != c.s.streamSid {
		t.Errorf("stop = %s", raw)
	}
	_, err := c.bot.readRaw()
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after stop: %v, want a normal close", err)
	}
	if err := within(t, res, 2*time.Second); err != nil {
		t.Errorf("Wait = %v, want nil", err)
	}
	deadline := time.Now().Add(time.Second)
	for sessionGoroutines() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := sessionGoroutines(); n > 0 {
		t.Errorf("%d session goroutines still running after Wait", n)
	}
}

func TestBotHangsUp(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	c := startSession(t, srv, Config{})
	res := waitResult(c.s, context.Background())
	c.bot.send(`{"event":"hangup","hangup":{"reason":"caller said goodbye"}}`)
	c.bot.next("stop")
	if _, err := c.bot.readRaw(); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after stop: %v", err)
	}
	err := within(t, res, 2*time.Second)
	var he *agent.HangupError
	if !errors.As(err, &he) || he.Reason != "caller said goodbye" || !errors.Is(err, agent.ErrHangup) {
		t.Fatalf("Wait = %v, want a HangupError", err)
	}
}

func TestBotClosesNormally(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	c := startSession(t, srv, Config{})
	res := waitResult(c.s, context.Background())
	if err := c.bot.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := within(t, res, 2*time.Second); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
}

func TestBotDrops(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	c := startSession(t, srv, Config{})
	res := waitResult(c.s, context.Background())
	_ = c.bot.conn.CloseNow() // TCP close, no close frame
	if err := within(t, res, 2*time.Second); !errors.Is(err, ErrBotGone) {
		t.Fatalf("Wait = %v, want ErrBotGone", err)
	}
}

func TestBotBadCloseCode(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	c := startSession(t, srv, Config{})
	res := waitResult(c.s, context.Background())
	_ = c.bot.conn.Close(websocket.StatusInternalError, "llm crashed")
	if err := within(t, res, 2*time.Second); !errors.Is(err, ErrBotGone) {
		t.Fatalf("Wait = %v, want ErrBotGone", err)
	}
}

func TestTooManyMalformed(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	c := startSession(t, srv, Config{})
	res := waitResult(c.s, context.Background())
	go func() {
		for range maxMalformed + 1 {
			if c.bot.conn.Write(context.Background(), websocket.MessageText, []byte(`{"event":`)) != nil {
				return
			}
		}
	}()
	c.bot.next("stop")
	if _, err := c.bot.readRaw(); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Errorf("close: %v, want policy violation", err)
	}
	if err := within(t, res, 2*time.Second); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Wait = %v, want ErrProtocol", err)
	}
}
