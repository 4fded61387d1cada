package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

type referResult struct {
	err      error
	progress []int
}

// startRefer sends a REFER from the server side of an established call and
// returns the REFER as the peer received it.
func startRefer(t *testing.T, p *udpPeer, call *InboundCall, timeout time.Duration, opts ReferOptions) (*sipmsg.Request, chan referResult) {
	t.Helper()
	done := make(chan referResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var r referResult
		r.err = call.Refer(ctx, opts, func(code int, _ string) { r.progress = append(r.progress, code) })
		done <- r
	}()
	req, _ := p.request("REFER")
	return req, done
}

func (u *uac) notify(id uint32, state, frag string) (string, int) {
	return u.inDialog("NOTIFY", "message/sipfrag;version=2.0", frag,
		fmt.Sprintf("Event: refer;id=%d", id), "Subscription-State: "+state)
}

func TestReferTracked(t *testing.T) {
	tests := []struct {
		name     string
		referRes int           // answer to the REFER
		notifies [][2]string   // subscription state, sipfrag
		timeout  time.Duration // for Refer
		check    func(t *testing.T, err error)
		progress []int
	}{
		{name: "accepted then 200", referRes: 202,
			notifies: [][2]string{{"active;expires=60", "SIP/2.0 100 Trying\r\n"}, {"terminated;reason=noresource", "SIP/2.0 200 OK\r\n"}},
			timeout:  5 * time.Second, progress: []int{100, 200},
			check: func(t *testing.T, err error) {
				if err != nil {
					t.Errorf("Refer = %v, want nil", err)
				}
			}},
		{name: "REFER declined", referRes: 603, timeout: 5 * time.Second,
			check: func(t *testing.T, err error) {
				var re *ReferError
				if !errors.As(err, &re) || re.Stage != "refer" || re.Code != 603 {
					t.Errorf("Refer = %v, want a refused REFER with 603", err)
				}
			}},
		{name: "target busy", referRes: 202,
			notifies: [][2]string{{"active", "SIP/2.0 180 Ringing\r\n"}, {"terminated", "SIP/2.0 486 Busy Here\r\n"}},
			timeout:  5 * time.Second, progress: []int{180, 486},
			check: func(t *testing.T, err error) {
				var re *ReferError
				if !errors.As(err, &re) || re.Stage != "notify" || re.Code != 486 {
					t.Errorf("Refer = %v, want a failed transfer with 486", err)
				}
			}},
		{name: "never notifies", referRes: 202, timeout: 300 * time.Millisecond,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrNoNotify) {
					t.Errorf("Refer = %v, want ErrNoNotify", err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, p, u, call := establishedCall(t)

			req, done := startRefer(t, p, call, tc.timeout, ReferOptions{
				ReferTo: "sip:+15550142@carrier.example", ReferredBy: "sip:bot@127.0.0.1",
				Headers: []sipmsg.Header{sipmsg.NewHeader("Diversion", "<sip:+15550100@carrier.example>;reason=unconditional")},
			})
			if got := header(req, "Refer-To"); got != "<sip:+15550142@carrier.example>" {
				t.Errorf("Refer-To = %q", got)
			}
			if got := header(req, "Diversion"); !strings.Contains(got, "+15550100") {
				t.Errorf("Diversion = %q", got)
			}
			if tag, _ := req.From().Params.Get("tag"); tag != u.toTag {
				t.Errorf("REFER From tag %q, want the dialog's %q", tag, u.toTag)
			}
			p.reply(req, rs.addr, tc.referRes, "")
			for _, n := range tc.notifies {
				branch, _ := u.notify(req.CSeq().SeqNo, n[0], n[1])
				p.response(200, "NOTIFY", branch)
			}
			r := recv(t, done, "Refer to return")
			tc.check(t, r.err)
			if fmt.Sprint(r.progress) != fmt.Sprint(tc.progress) {
				t.Errorf("progress = %v, want %v", r.progress, tc.progress)
			}
			// Our BYE; a NOTIFY crossing it is still answered 200.
			go func() { _ = call.Hangup(context.Background(), CauseNormal.Reason()) }()
			bye, _ := p.request("BYE")
			p.reply(bye, rs.addr, 200, "OK")
			closed(t, call.Done(), "call end")
			branch, _ := u.notify(req.CSeq().SeqNo, "terminated", "SIP/2.0 200 OK\r\n")
			p.response(200, "NOTIFY", branch)
		})
	}
}

func TestNotifyRefused(t *testing.T) {
	_, p, u, call := establishedCall(t)

	// No REFER was sent: there is no subscription.
	branch, _ := u.notify(1, "active", "SIP/2.0 100 Trying\r\n")
	p.response(481, "NOTIFY", branch)
	// Another event package.
	branch, _ = u.inDialog("NOTIFY", "application/pidf+xml", "<x/>", "Event: presence", "Subscription-State: active")
	p.response(489, "NOTIFY", branch)
	// Outside any dialog.
	s := u.spec("NOTIFY")
	s.toTag, s.callID = "nope", "unknown-call"
	s.extra = []string{"Event: refer", "Subscription-State: active"}
	p.send(p.build(s))
	p.response(481, "NOTIFY", s.branch)
	hangup(t, u, call)
}

func TestReferBadTarget(t *testing.T) {
	_, p, u, call := establishedCall(t)
	for _, target := range []string{"", "sip:a@b\r\nX-Evil: 1", "not a uri"} {
		if err := call.Refer(context.Background(), ReferOptions{ReferTo: target}, nil); err == nil {
			t.Errorf("Refer(%q) = nil, want an error", target)
		}
	}
	if n := p.count(isRequest("REFER")); n != 0 {
		t.Errorf("%d REFERs sent for bad targets", n)
	}
	hangup(t, u, call)
}

func TestParseSipfrag(t *testing.T) {
	tests := []struct {
		in     string
		code   int
		reason string
		ok     bool
	}{
		{"SIP/2.0 200 OK\r\n", 200, "OK", true},
		{"SIP/2.0 100 Trying", 100, "Trying", true},
		{"sip/2.0 603 Decline\r\nContent-Length: 0\r\n", 603, "Decline", true},
		{"SIP/2.0 180\r\n", 180, "", true},
		{"SIP/2.0 99 Nope", 0, "", false},
		{"HTTP/1.1 200 OK", 0, "", false},
		{"", 0, "", false},
		{"SIP/2.0 abc", 0, "", false},
	}
	for _, tc := range tests {
		code, reason, ok := ParseSipfrag([]byte(tc.in))
		if code != tc.code || reason != tc.reason || ok != tc.ok {
			t.Errorf("ParseSipfrag(%q) = %d %q %v, want %d %q %v", tc.in, code, reason, ok, tc.code, tc.reason, tc.ok)
		}
	}
}

func TestParseEvent(t *testing.T) {
	tests := []struct {
		in    string
		event string
		id    uint32
	}{
		{"refer;id=93809824", "refer", 93809824},
		{"Refer ; ID = 7", "refer", 7},
		{"refer", "refer", 0},
		{"refer;id=x", "refer", 0},
		{"presence", "presence", 0},
	}
	for _, tc := range tests {
		if e, id := parseEvent(tc.in); e != tc.event || id != tc.id {
			t.Errorf("parseEvent(%q) = %q %d, want %q %d", tc.in, e, id, tc.event, tc.id)
		}
	}
}

func FuzzParseSipfrag(f *testing.F) {
	for _, s := range []string{"SIP/2.0 200 OK\r\n", "SIP/2.0 100 Trying", "SIP/2.0 486 Busy Here\r\nX: y\r\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, _, ok := ParseSipfrag(body)
		if ok != (code >= 100 && code <= 699) {
			t.Fatalf("ok=%v with code %d", ok, code)
		}
	})
}

// A CANCEL for no pending INVITE (one that crossed the 200) gets 481.
func TestCancelUnmatched(t *testing.T) {
	_, p, u, call := establishedCall(t)
	s := u.spec("CANCEL")
	s.cseq = u.inviteCSeq
	p.send(p.build(s))
	p.response(481, "CANCEL", s.branch)
	hangup(t, u, call)
}
