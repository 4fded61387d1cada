package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/dialplan"
	"github.com/switchboard-voice/switchboard/transfer"
)

type callsStub struct {
	hungUp      []string
	transferred []agent.TransferRequest
}

func (c *callsStub) List(context.Context) (callList, error) {
	return callList{Calls: []callView{{ID: "abc", From: "+1555", To: "+1666", State: "transferring", Transfer: "warm sip:ann@pbx: briefing",
		Legs: []legView{{CallID: "abc", Role: "caller", State: "on_hold"}, {CallID: "h1", Role: "transfer", Target: "sip:ann@pbx", State: "briefing"}}}}}, nil
}

func (c *callsStub) Hangup(_ context.Context, id, reason string) error {
	if id != "abc" {
		return errCallNotFound
	}
	c.hungUp = append(c.hungUp, reason)
	return nil
}

func (c *callsStub) Transfer(_ context.Context, id string, req agent.TransferRequest) error {
	if id != "abc" {
		return errCallNotFound
	}
	switch req.Target {
	case "busy":
		return dialplan.ErrTransferBusy
	case "no-agent":
		return agent.ErrTransferUnavailable
	case "sip:x@elsewhere":
		return fmt.Errorf("%w: %s", transfer.ErrNotAllowed, req.Target)
	case "bad":
		return fmt.Errorf("%w: transfer: target %q is neither a number nor a sip: URI", dialplan.ErrBadTransfer, req.Target)
	case "remote-forbidden":
		return &remoteError{instance: "gw-b", code: codeForbidden, msg: "transfer: target not allowed: x"}
	}
	c.transferred = append(c.transferred, req)
	return nil
}

func TestAdminRoutes(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	calls := &callsStub{}
	a := &adminServer{
		log: slog.New(slog.DiscardHandler), token: "s3cret", publicMetrics: true,
		ready: ready.Load, calls: calls, metrics: newMetrics().handler(),
	}
	srv := httptest.NewServer(a.routes())
	defer srv.Close()

	do := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, method, path, token, body string
		code                            int
		contains                        string
	}{
		{"health needs no token", "GET", "/health", "", "", 200, "ok"},
		{"ready", "GET", "/ready", "", "", 200, "ready"},
		{"metrics public", "GET", "/metrics", "", "", 200, "switchboard_calls_active"},
		{"calls need the token", "GET", "/calls", "", "", 401, "bearer token"},
		{"wrong token", "GET", "/calls", "nope", "", 401, "bearer token"},
		{"calls", "GET", "/calls", "s3cret", "", 200, `"id":"abc"`},
		{"calls show the transfer", "GET", "/calls", "s3cret", "", 200, `"transfer":"warm sip:ann@pbx: briefing"`},
		{"calls show the legs", "GET", "/calls", "s3cret", "", 200, `{"call_id":"h1","role":"transfer","target":"sip:ann@pbx","state":"briefing"}`},
		{"hangup", "POST", "/calls/abc/hangup", "s3cret", `{"reason":"supervisor"}`, 202, "accepted"},
		{"hangup unknown call", "POST", "/calls/zzz/hangup", "s3cret", "", 404, "no such call"},
		{"transfer needs a target", "POST", "/calls/abc/transfer", "s3cret", `{"mode":"cold"}`, 400, "target"},
		{"transfer bad mode", "POST", "/calls/abc/transfer", "s3cret", `{"mode":"lukewarm","target":"+1"}`, 400, "cold or warm"},
		{"transfer", "POST", "/calls/abc/transfer", "s3cret", `{"target":"+15550100"}`, 202, "accepted"},
		{"transfer unknown call", "POST", "/calls/zzz/transfer", "s3cret", `{"target":"+15550100"}`, 404, "no such call"},
		{"transfer already running", "POST", "/calls/abc/transfer", "s3cret", `{"target":"busy"}`, 409, "already in progress"},
		{"transfer without an agent", "POST", "/calls/abc/transfer", "s3cret", `{"target":"no-agent"}`, 409, "unavailable"},
		{"transfer not allowed", "POST", "/calls/abc/transfer", "s3cret", `{"target":"sip:x@elsewhere"}`, 403, "not allowed"},
		{"transfer bad target", "POST", "/calls/abc/transfer", "s3cret", `{"target":"bad"}`, 400, "bad transfer request"},
		{"transfer refused by the owner", "POST", "/calls/abc/transfer", "s3cret", `{"target":"remote-forbidden"}`, 403, "instance gw-b: transfer: target not allowed"},
		{"bad json", "POST", "/calls/abc/hangup", "s3cret", `{`, 400, "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.method, tc.path, tc.token, tc.body)
			if code != tc.code || !strings.Contains(body, tc.contains) {
				t.Fatalf("%s %s: %d %s; want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.contains)
			}
		})
	}
	if len(calls.hungUp) != 1 || calls.hungUp[0] != "supervisor" {
		t.Errorf("hangups = %q", calls.hungUp)
	}
	if len(calls.transferred) != 1 || calls.transferred[0].Mode != agent.TransferCold || calls.transferred[0].Target != "+15550100" {
		t.Errorf("transfers = %+v", calls.transferred)
	}
	ready.Store(false)
	if code, _ := do("GET", "/ready", "", ""); code != 503 {
		t.Errorf("/ready while draining = %d, want 503", code)
	}
	a.publicMetrics = false
	srv2 := httptest.NewServer(a.routes())
	defer srv2.Close()
	res, err := http.Get(srv2.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Errorf("/metrics with public_metrics off = %d, want 401", res.StatusCode)
	}
}

func TestAdminPprofIsOptInAndAuthed(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pprof       bool
		token, want string
		code        int
	}{
		{"off", false, "s3cret", "", 404},
		{"on, no token", true, "", "bearer token", 401},
		{"on", true, "s3cret", "goroutine", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &adminServer{log: slog.New(slog.DiscardHandler), token: "s3cret", pprof: tc.pprof,
				ready: func() bool { return true }, calls: &callsStub{}, metrics: newMetrics().handler()}
			srv := httptest.NewServer(a.routes())
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/debug/pprof/", nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
				t.Fatalf("/debug/pprof/: %d %.80s; want %d containing %q", res.StatusCode, b, tc.code, tc.want)
			}
		})
	}
}
