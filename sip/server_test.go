package sip

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestNewServerValidation(t *testing.T) {
	if _, err := NewServer(Config{}, nil); err == nil {
		t.Fatal("NewServer without a listen address succeeded")
	}
	srv, err := NewServer(Config{Listen: netip.MustParseAddrPort("127.0.0.1:1"), Transports: []string{"sctp"}}, nil)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := srv.Serve(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "sctp") {
		t.Fatalf("Serve with transport sctp: got %v, want unsupported transport error", err)
	}
}

func TestOptions(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.UserAgent = "switchboard-test" })
	p := newPeer(t, ts.addr)

	p.send(p.build(reqSpec{method: "OPTIONS", branch: "z9hG4bK-opt-1"}))
	res := p.response(200, "OPTIONS", "z9hG4bK-opt-1")
	if got := header(res, "Allow"); got != allowedMethods {
		t.Errorf("Allow = %q, want %q", got, allowedMethods)
	}
	if got := header(res, "Accept"); got != "application/sdp" {
		t.Errorf("Accept = %q", got)
	}
	if got := header(res, "Server"); got != "switchboard-test" {
		t.Errorf("Server = %q, want the configured UserAgent", got)
	}
}

func TestOptionsNoServerHeaderByDefault(t *testing.T) {
	ts := startServer(t, nil)
	p := newPeer(t, ts.addr)
	p.send(p.build(reqSpec{method: "OPTIONS", branch: "z9hG4bK-opt-2"}))
	res := p.response(200, "OPTIONS", "z9hG4bK-opt-2")
	if got := header(res, "Server"); got != "" {
		t.Errorf("Server = %q, want none when UserAgent is empty", got)
	}
}

func TestOptionsOverTCP(t *testing.T) {
	ts := startServer(t, nil)
	p := newTCPPeer(t, ts.addr)
	p.send(fmt.Sprintf("OPTIONS sip:%s;transport=tcp SIP/2.0\r\n"+
		"Via: SIP/2.0/TCP %s;branch=z9hG4bK-tcp-opt\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=t1\r\nTo: <sip:%s>\r\n"+
		"Call-ID: tcp-options@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		ts.addr, p.addr(), ts.addr))
	res := p.nextResponse(200)
	if res.StatusCode != 200 || header(res, "Allow") != allowedMethods {
		t.Fatalf("OPTIONS over TCP: %d, Allow %q", res.StatusCode, header(res, "Allow"))
	}
}

func TestDraining(t *testing.T) {
	var calls atomic.Int32
	ts := startServer(t, func(ctx context.Context, call *InboundCall) {
		calls.Add(1)
		_ = call.Reject(486, "")
	})
	p := newPeer(t, ts.addr)
	ts.SetDraining(true)

	p.send(p.build(reqSpec{method: "OPTIONS", branch: "z9hG4bK-drain-opt"}))
	res := p.response(503, "OPTIONS", "z9hG4bK-drain-opt")
	if header(res, "Allow") == "" {
		t.Errorf("503 to OPTIONS lacks Allow")
	}

	u := p.newUAC()
	u.invite("application/sdp", offerSDP)
	res = p.response(503, "INVITE", u.inviteBranch)
	if got := header(res, "Retry-After"); got == "" {
		t.Errorf("503 to INVITE has no Retry-After")
	}
	u.ackFailure(res)

	// Draining off again: OPTIONS is 200.
	ts.SetDraining(false)
	p.send(p.build(reqSpec{method: "OPTIONS", branch: "z9hG4bK-drain-opt2"}))
	p.response(200, "OPTIONS", "z9hG4bK-drain-opt2")
	if n := calls.Load(); n != 0 {
		t.Errorf("handler ran %d times while draining", n)
	}
}

// Requests outside any dialog and methods we do not serve.
func TestOutOfDialogRequests(t *testing.T) {
	ts := startServer(t, func(ctx context.Context, call *InboundCall) { _ = call.Reject(486, "") })
	p := newPeer(t, ts.addr)

	tests := []struct {
		method    string
		toTag     string
		want      int
		wantAllow bool
	}{
		{method: "BYE", toTag: "nosuchdialog", want: 481},
		{method: "INFO", toTag: "nosuchdialog", want: 481},
		{method: "NOTIFY", toTag: "nosuchdialog", want: 481},
		{method: "REFER", toTag: "nosuchdialog", want: 481},
		{method: "UPDATE", toTag: "nosuchdialog", want: 481},
		{method: "BYE", want: 481}, // no To tag at all
		// re-INVITE (To tag) for a dialog we do not know.
		{method: "INVITE", toTag: "nosuchdialog", want: 481},
		{method: "REGISTER", want: 405, wantAllow: true},
		{method: "SUBSCRIBE", want: 405, wantAllow: true},
		{method: "MESSAGE", want: 405, wantAllow: true},
		{method: "PUBLISH", want: 405, wantAllow: true},
		// sipgo's parser accepts any token as a method (RequestMethod is a
		// string), so an unknown method reaches OnNoRoute: 501 with Allow.
		{method: "FOO", want: 501, wantAllow: true},
	}
	for _, tc := range tests {
		t.Run(tc.method+"/"+tc.toTag, func(t *testing.T) {
			branch := newBranch()
			p.send(p.build(reqSpec{method: tc.method, toTag: tc.toTag, branch: branch}))
			res := p.response(tc.want, tc.method, branch)
			if tc.wantAllow && header(res, "Allow") != allowedMethods {
				t.Errorf("%d to %s: Allow = %q", tc.want, tc.method, header(res, "Allow"))
			}
		})
	}
}
