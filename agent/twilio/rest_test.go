package twilio

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
)

type fakeControl struct {
	mu        sync.Mutex
	state     CallState
	hangups   []string
	transfers []agent.TransferRequest
	err       error
}

func (f *fakeControl) Hangup(reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hangups = append(f.hangups, reason)
	if f.err == nil {
		f.state.Status = "completed"
	}
	return f.err
}

func (f *fakeControl) Transfer(req agent.TransferRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.transfers = append(f.transfers, req)
	return f.err
}

func (f *fakeControl) State() CallState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

type fakeDirectory map[string]*fakeControl

func (d fakeDirectory) Lookup(sid string) (CallControl, bool) {
	c, ok := d[sid]
	return c, ok
}

const (
	testAccount = "AC0123456789abcdef0123456789abcdef"
	testToken   = "tok3n"
)

func restFixture(t *testing.T) (http.Handler, *fakeControl, string) {
	sid := CallSid("call-1@example.com")
	fc := &fakeControl{state: CallState{CallSid: sid, From: "+15550100001", To: "+15550100002", Status: "in-progress",
		StartTime: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), Duration: 42 * time.Second}}
	log, _ := testLogger(t)
	h := NewRESTHandler(fakeDirectory{sid: fc}, testAccount, testAccount, testToken, log)
	return h, fc, "/2010-04-01/Accounts/" + testAccount + "/Calls/" + sid + ".json"
}

func do(h http.Handler, method, path string, form url.Values, user, pass string) *httptest.ResponseRecorder {
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	r := httptest.NewRequest(method, path, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" || pass != "" {
		r.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func decodeBody(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
	return m
}

func TestRESTAuth(t *testing.T) {
	h, _, path := restFixture(t)
	for _, cred := range [][2]string{{"", ""}, {testAccount, "wrong"}, {"ACother", testToken}} {
		w := do(h, "GET", path, nil, cred[0], cred[1])
		if w.Code != 401 || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%v: %d %v", cred, w.Code, w.Header())
		}
		if m := decodeBody(t, w); m["code"] != float64(20003) || m["status"] != float64(401) {
			t.Errorf("401 body %v", m)
		}
	}
	// Defaults: the default account, and the account sid as username.
	def := NewRESTHandler(fakeDirectory{}, "", "", testToken, nil)
	defPath := "/2010-04-01/Accounts/" + DefaultAccountSid() + "/Calls/" + CallSid("x") + ".json"
	if w := do(def, "GET", defPath, nil, DefaultAccountSid(), testToken); w.Code != 404 {
		t.Errorf("default account, username: %d %s", w.Code, w.Body)
	}
	// No password configured: nobody gets in.
	open := NewRESTHandler(fakeDirectory{}, testAccount, "", "", nil)
	if w := do(open, "GET", path, nil, "", ""); w.Code != 401 {
		t.Errorf("empty password: %d", w.Code)
	}
}

func TestRESTGet(t *testing.T) {
	h, fc, path := restFixture(t)
	w := do(h, "GET", path, nil, testAccount, testToken)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	m := decodeBody(t, w)
	want := map[string]any{"sid": fc.state.CallSid, "account_sid": testAccount, "from": "+15550100001", "to": "+15550100002",
		"status": "in-progress", "start_time": "Wed, 04 Mar 2026 05:06:07 +0000", "end_time": nil, "duration": "42",
		"uri": path, "api_version": "2010-04-01", "direction": "inbound"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
}

func TestRESTNotFound(t *testing.T) {
	h, _, path := restFixture(t)
	for _, p := range []string{
		"/2010-04-01/Accounts/" + testAccount + "/Calls/CA00000000000000000000000000000000.json",
		strings.Replace(path, testAccount, "AC"+strings.Repeat("f", 32), 1),
		strings.TrimSuffix(path, ".json"),
		"/2010-04-01/Accounts/" + testAccount + "/Calls.json",
	} {
		w := do(h, "GET", p, nil, testAccount, testToken)
		m := decodeBody(t, w)
		if w.Code != 404 || m["code"] != float64(20404) || m["status"] != float64(404) || m["more_info"] == nil || m["message"] == nil {
			t.Errorf("%s: %d %v", p, w.Code, m)
		}
	}
}

func TestRESTHangup(t *testing.T) {
	h, fc, path := restFixture(t)
	w := do(h, "POST", path, url.Values{"Status": {"completed"}}, testAccount, testToken)
	if w.Code != 200 || len(fc.hangups) != 1 {
		t.Fatalf("%d %s, hangups %v", w.Code, w.Body, fc.hangups)
	}
	if m := decodeBody(t, w); m["status"] != "completed" || m["end_time"] != "Wed, 04 Mar 2026 05:06:49 +0000" {
		t.Errorf("after hangup: %v", m)
	}
	// Again: the call has ended; Twilio answers 200 without doing anything.
	if w := do(h, "POST", path, url.Values{"Status": {"completed"}}, testAccount, testToken); w.Code != 200 || len(fc.hangups) != 1 {
		t.Errorf("second hangup: %d, hangups %v", w.Code, fc.hangups)
	}
	h, fc, path = restFixture(t)
	w = do(h, "POST", path, url.Values{"Twiml": {`<?xml version="1.0" encoding="UTF-8"?><Response> <Hangup/> </Response>`}}, testAccount, testToken)
	if w.Code != 200 || len(fc.hangups) != 1 {
		t.Errorf("TwiML hangup: %d %s", w.Code, w.Body)
	}
}

func TestRESTTransfer(t *testing.T) {
	cases := map[string]string{
		`<Response><Dial>+1 (555) 010-0199</Dial></Response>`:                                             "+15550100199",
		`<Response><Dial callerId="+15550100002"><Number>+15550100003</Number></Dial></Response>`:         "+15550100003",
		`<Response><Dial><Sip>sip:alice@pbx.example.com;transport=tcp</Sip></Dial></Response>`:            "sip:alice@pbx.example.com;transport=tcp",
		`<Response><Refer><Sip>sips:bob@example.com</Sip></Refer></Response>`:                             "sips:bob@example.com",
		"<Response>\n  <Dial>\n    <Number> 15550100004 </Number>\n  </Dial>\n</Response>\n<!-- done -->": "15550100004",
	}
	for twiml, target := range cases {
		h, fc, path := restFixture(t)
		w := do(h, "POST", path, url.Values{"Twiml": {twiml}}, testAccount, testToken)
		if w.Code != 200 || len(fc.transfers) != 1 {
			t.Errorf("%s: %d %s", twiml, w.Code, w.Body)
			continue
		}
		if got := fc.transfers[0]; got.Mode != agent.TransferCold || got.Target != target {
			t.Errorf("%s: transfer %+v, want cold to %s", twiml, got, target)
		}
	}
	// The gateway refuses: 400 with its reason.
	h, fc, path := restFixture(t)
	fc.err = agent.ErrTransferUnavailable
	w := do(h, "POST", path, url.Values{"Twiml": {`<Response><Dial>+15550100003</Dial></Response>`}}, testAccount, testToken)
	if m := decodeBody(t, w); w.Code != 400 || !strings.Contains(m["message"].(string), "transfer unavailable") {
		t.Errorf("refused transfer: %d %v", w.Code, m)
	}
	fc.err = errors.New("boom")
	if w := do(h, "POST", path, url.Values{"Status": {"completed"}}, testAccount, testToken); w.Code != 500 {
		t.Errorf("failed hangup: %d", w.Code)
	}
	// A call that is over cannot be transferred.
	h, fc, path = restFixture(t)
	fc.state.Status = "completed"
	w = do(h, "POST", path, url.Values{"Twiml": {`<Response><Dial>+15550100003</Dial></Response>`}}, testAccount, testToken)
	if m := decodeBody(t, w); w.Code != 400 || m["code"] != float64(21220) || len(fc.transfers) != 0 {
		t.Errorf("transfer of ended call: %d %v", w.Code, m)
	}
}

func TestRESTBadRequests(t *testing.T) {
	bad := map[string]url.Values{
		"nothing":        {},
		"status":         {"Status": {"in-progress"}},
		"url":            {"Url": {"https://example.com/twiml"}},
		"not xml":        {"Twiml": {"hang up please"}},
		"root":           {"Twiml": {"<Hangup/>"}},
		"say":            {"Twiml": {"<Response><Say>bye</Say></Response>"}},
		"two verbs":      {"Twiml": {"<Response><Say>bye</Say><Hangup/></Response>"}},
		"empty":          {"Twiml": {"<Response></Response>"}},
		"two numbers":    {"Twiml": {"<Response><Dial><Number>+15550100003</Number><Number>+15550100004</Number></Dial></Response>"}},
		"client":         {"Twiml": {"<Response><Dial><Client>joey</Client></Dial></Response>"}},
		"bad number":     {"Twiml": {"<Response><Dial>call bob</Dial></Response>"}},
		"bad sip":        {"Twiml": {"<Response><Dial><Sip>http://example.com</Sip></Dial></Response>"}},
		"sip injection":  {"Twiml": {"<Response><Refer><Sip>sip:a@b&#13;&#10;X-Evil: 1</Sip></Refer></Response>"}},
		"refer number":   {"Twiml": {"<Response><Refer><Number>+15550100003</Number></Refer></Response>"}},
		"trailing":       {"Twiml": {"<Response><Hangup/></Response><Response/>"}},
		"unclosed":       {"Twiml": {"<Response><Hangup/>"}},
		"hangup content": {"Twiml": {"<Response><Hangup>now</Hangup></Response>"}},
		"too long":       {"Twiml": {"<Response><Hangup/>" + strings.Repeat(" ", maxTwiML) + "</Response>"}},
	}
	for name, form := range bad {
		h, fc, path := restFixture(t)
		w := do(h, "POST", path, form, testAccount, testToken)
		if w.Code != 400 || len(fc.hangups)+len(fc.transfers) != 0 {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
			continue
		}
		if m := decodeBody(t, w); m["status"] != float64(400) || m["code"] == nil {
			t.Errorf("%s: body %v", name, m)
		}
	}
	h, _, path := restFixture(t)
	big := url.Values{"Twiml": {strings.Repeat("x", maxFormBytes)}}
	if w := do(h, "POST", path, big, testAccount, testToken); w.Code != 413 {
		t.Errorf("oversized body: %d", w.Code)
	}
	if w := do(h, "DELETE", path, nil, testAccount, testToken); w.Code != 405 {
		t.Errorf("DELETE: %d", w.Code)
	}
}
