package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/agent/twilio"
	"github.com/switchboard-voice/switchboard/configs"
)

// wsHeard is what a test bot saw of one connection.
type wsHeard struct {
	header http.Header
	start  map[string]any
}

// silentBot accepts the gateway's WebSocket, reads `connected` and `start`,
// reports them, then says nothing and drains until the gateway closes.
func silentBot(t *testing.T) (url string, heard <-chan wsHeard) {
	t.Helper()
	ch := make(chan wsHeard, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = conn.CloseNow() }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h := wsHeard{header: r.Header.Clone()}
		for i := range 2 {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if i == 1 {
				_ = json.Unmarshal(data, &h.start)
			}
		}
		ch <- h
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/media", ch
}

// wiringCall is the agent.Call of a call whose INVITE carried X-Customer-Id.
type wiringCall struct{ log *slog.Logger }

func (c wiringCall) Info() agent.Info {
	return agent.Info{CallID: "wiring@test", From: "+15550100001", To: "+15550100002", Trunk: "t",
		Header: func(name string) string {
			if strings.EqualFold(name, "X-Customer-Id") {
				return "cust-42"
			}
			return ""
		}}
}
func (c wiringCall) Log() *slog.Logger                  { return c.log }
func (wiringCall) PlayPCM([]int16) error                { return nil }
func (wiringCall) PlayUlaw([]byte) error                { return nil }
func (wiringCall) Mark(string)                          {}
func (wiringCall) Clear()                               {}
func (wiringCall) SendDigits(string) error              { return nil }
func (wiringCall) Transfer(agent.TransferRequest) error { return agent.ErrTransferUnavailable }
func (wiringCall) CompleteTransfer(bool) error          { return agent.ErrTransferUnavailable }

// The websocket section of the gateway config, through LoadConfig and
// buildAgents, reaches the bot: token (inline from the environment, or from
// token_file) as Authorization: Bearer, extra headers, the INVITE's headers
// named in sip_headers as customParameters, and silence_timeout (unset: the
// 30 s default; 0: off).
func TestBuildAgentsWiresWebSocketConfig(t *testing.T) {
	url, heard := silentBot(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("from-file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SB_TEST_BOT_TOKEN", "env-token-123")
	for _, tc := range []struct {
		name, yaml string
		bearer     string
		silence    time.Duration // 0: must not time out within a second
	}{
		{"token from env, silence 300ms", "    token: ${SB_TEST_BOT_TOKEN}\n    silence_timeout: 300ms\n",
			"Bearer env-token-123", 300 * time.Millisecond},
		{"token_file, silence off", "    token_file: " + tokenFile + "\n    silence_timeout: 0s\n",
			"Bearer from-file-token", 0},
		{"no token, default silence", "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "agents:\n  bot:\n    type: websocket\n    protocol: twilio\n    url: "+url+
				"\n    connect_timeout: 2s\n    headers: {X-Tenant: acme}\n    sip_headers: [X-Customer-Id]\n"+tc.yaml+
				"default_agent: bot\n")
			cfg, err := LoadConfig(path, configs.DefaultGateway())
			if err != nil {
				t.Fatal(err)
			}
			if s := cfg.Agents["bot"].SilenceTimeout; tc.yaml == "" && s != nil {
				t.Errorf("silence_timeout unset, read as %v", *s)
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			agents, err := buildAgents(cfg.Agents, "", log)
			if err != nil {
				t.Fatal(err)
			}
			sess, err := agents["bot"].Start(context.Background(), wiringCall{log: log})
			if err != nil {
				t.Fatal(err)
			}
			var h wsHeard
			select {
			case h = <-heard:
			case <-time.After(5 * time.Second):
				t.Fatal("the bot saw no start")
			}
			if got := h.header.Get("Authorization"); got != tc.bearer {
				t.Errorf("Authorization = %q, want %q", got, tc.bearer)
			}
			if got := h.header.Get("X-Tenant"); got != "acme" {
				t.Errorf("X-Tenant = %q, want acme", got)
			}
			st, _ := h.start["start"].(map[string]any)
			cp, _ := st["customParameters"].(map[string]any)
			if cp["X-Customer-Id"] != "cust-42" || cp["from_number"] != "+15550100001" {
				t.Errorf("customParameters = %v, want X-Customer-Id cust-42 from the INVITE", cp)
			}

			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			began := time.Now()
			err = sess.Wait(ctx)
			took := time.Since(began)
			cause, _ := agent.FailureOf(err)
			if tc.silence > 0 {
				if !errors.Is(err, twilio.ErrBotSilent) || cause != agent.CauseSilent || took > tc.silence+500*time.Millisecond {
					t.Errorf("Wait = %v (cause %q) after %v, want ErrBotSilent after about %v", err, cause, took, tc.silence)
				}
			} else if err != nil || took < 900*time.Millisecond {
				t.Errorf("Wait = %v after %v, want the silent bot kept until the call ends (1 s)", err, took)
			}
			for _, secret := range []string{"env-token-123", "from-file-token"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the log carries the token:\n%s", logs.String())
				}
			}
		})
	}
}

func TestAgentConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, agent, want string
	}{
		{"protocol", "    protocol: telnyx\n", `unknown protocol "telnyx" (twilio)`},
		{"sip header", "    sip_headers: [\"X-A: b\"]\n", `"X-A: b" is not a SIP header name`},
		{"negative silence", "    silence_timeout: -1s\n", `"-1s" is not a duration`},
		{"url", "    url: http://bot.example.com\n", "is not a ws:// or wss:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "agents:\n  bot:\n    type: websocket\n"
			if !strings.Contains(tc.agent, "url:") {
				body += "    url: ws://127.0.0.1:9/media\n"
			}
			path := writeConfig(t, body+tc.agent+"default_agent: bot\n")
			_, err := LoadConfig(path, configs.DefaultGateway())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadConfig = %v, want ...%s...", err, tc.want)
			}
		})
	}
}

func TestSilenceTimeoutMapping(t *testing.T) {
	d := func(v time.Duration) *Duration { x := Duration(v); return &x }
	for _, tc := range []struct {
		in   *Duration
		want time.Duration
	}{
		{nil, 0},   // unset: twilio's DefaultSilenceTimeout
		{d(0), -1}, // 0: off
		{d(5 * time.Second), 5 * time.Second},
	} {
		if got := silenceTimeout(tc.in); got != tc.want {
			t.Errorf("silenceTimeout(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
