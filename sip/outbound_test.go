package sip

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
)

type dialResult struct {
	call *OutboundCall
	err  error
}

// dial runs Dial on its own goroutine: the test plays the far end meanwhile.
func dial(ts *testServer, ctx context.Context, target string, opts DialOptions) <-chan dialResult {
	out := make(chan dialResult, 1)
	go func() {
		call, err := ts.Dial(ctx, target, []byte(offerSDP), opts)
		out <- dialResult{call, err}
	}()
	return out
}

// uas is the far end of an outbound call, written by hand over a raw socket.
type uas struct {
	p      *udpPeer
	invite *sipmsg.Request
	from   netip.AddrPort
	tag    string
}

func (p *udpPeer) acceptInvite() *uas {
	p.t.Helper()
	req, from := p.request("INVITE")
	u := &uas{p: p, invite: req, from: from, tag: fmt.Sprintf("uas-%d", branchSeq.Add(1))}
	req.To().Params.Add("tag", u.tag) // every response after 100 carries it
	return u
}

func (u *uas) respond(code int, reason string, body string, extra ...sipmsg.Header) {
	u.p.t.Helper()
	u.p.reply(u.invite, u.from, code, reason, func(res *sipmsg.Response) {
		contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: u.p.port}}
		res.AppendHeader(&contact)
		for _, h := range extra {
			res.AppendHeader(h)
		}
		if body != "" {
			res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
			res.SetBody([]byte(body))
		}
	})
}

// bye sends a BYE from the far end inside the dialog and returns its branch.
func (u *uas) bye() string {
	u.p.t.Helper()
	branch := newBranch()
	inv := u.invite
	fromTag, _ := inv.From().Params.Get("tag")
	u.p.send(fmt.Sprintf("BYE %s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=%s\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:bob@127.0.0.1>;tag=%s\r\n"+
		"To: <%s>;tag=%s\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 BYE\r\n"+
		"Content-Length: 0\r\n\r\n",
		inv.Contact().Address.String(), u.p.addr(), branch, u.tag,
		inv.From().Address.String(), fromTag, inv.CallID().Value()))
	return branch
}

func TestDialAnswered(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.UserAgent = "switchboard-test" })
	p := newPeer(t, ts.addr)
	progress := make(chan int, 8)
	res := dial(ts, context.Background(), "sip:+15550100@"+p.addr(), DialOptions{
		FromUser: "+15550111", FromDisplay: "Switchboard",
		Headers:    []sipmsg.Header{sipmsg.NewHeader("X-Call", "abc")},
		OnProgress: func(code int, _ string) { progress <- code },
	})
	far := p.acceptInvite()
	inv := far.invite
	if got := string(inv.Body()); got != offerSDP {
		t.Errorf("INVITE body = %q", got)
	}
	if ct := inv.ContentType(); ct == nil || ct.Value() != "application/sdp" {
		t.Errorf("INVITE Content-Type = %v", ct)
	}
	if f := inv.From(); f.Address.User != "+15550111" || f.DisplayName != "Switchboard" || f.Address.Host != "127.0.0.1" {
		t.Errorf("From = %s", f.Value())
	}
	if c := inv.Contact(); c == nil || c.Address.Port != int(ts.addr.Port()) || c.Address.Host != "127.0.0.1" {
		t.Errorf("Contact = %v, want our listener", c)
	}
	if far.from != ts.addr {
		t.Errorf("INVITE came from %s, want the listener %s", far.from, ts.addr)
	}
	if header(inv, "X-Call") != "abc" || header(inv, "User-Agent") != "switchboard-test" {
		t.Errorf("X-Call %q User-Agent %q", header(inv, "X-Call"), header(inv, "User-Agent"))
	}

	far.respond(180, "Ringing", "")
	// sipgo hands each datagram to its own goroutine: a 200 sent right
	// behind the 180 may overtake it, so wait until the 180 was seen.
	if code := recv(t, progress, "OnProgress"); code != 180 {
		t.Errorf("OnProgress saw %d, want 180", code)
	}
	far.respond(200, "OK", answerSDP)
	r := recv(t, res, "Dial to return")
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	call := r.call
	if string(call.Answer) != answerSDP {
		t.Errorf("Answer = %q", call.Answer)
	}

	ack, _ := p.request("ACK")
	if ack.CSeq().SeqNo != inv.CSeq().SeqNo {
		t.Errorf("ACK CSeq %d, INVITE CSeq %d", ack.CSeq().SeqNo, inv.CSeq().SeqNo)
	}
	if tag, _ := ack.To().Params.Get("tag"); tag != far.tag {
		t.Errorf("ACK To tag %q, want %q", tag, far.tag)
	}
	if ack.Recipient.User != "bob" || ack.Recipient.Port != p.port {
		t.Errorf("ACK Request-URI %s, want the 200's Contact", ack.Recipient.String())
	}
	if ts.ActiveCalls() != 1 {
		t.Errorf("ActiveCalls = %d", ts.ActiveCalls())
	}

	// The far end hangs up.
	branch := far.bye()
	p.response(200, "BYE", branch)
	closed(t, call.Done(), "OutboundCall.Done after BYE")
	if !errors.Is(call.Err(), ErrRemoteHangup) {
		t.Errorf("Err() = %v", call.Err())
	}
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
	if err := call.Hangup(context.Background(), CauseNormal.Reason()); err != nil {
		t.Errorf("Hangup after remote BYE: %v", err)
	}
	if n := p.count(isRequest("BYE")); n != 0 {
		t.Errorf("we sent %d BYEs for a call the far end ended", n)
	}
}

func TestDialHangup(t *testing.T) {
	ts := startServer(t, nil)
	p := newPeer(t, ts.addr)
	res := dial(ts, context.Background(), "sip:bob@"+p.addr(), DialOptions{})
	far := p.acceptInvite()
	far.respond(200, "OK", answerSDP)
	r := recv(t, res, "Dial")
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	p.request("ACK")

	hung := make(chan error, 1)
	go func() { hung <- r.call.Hangup(context.Background(), CauseShutdown.Reason()) }()
	bye, from := p.request("BYE")
	if got := header(bye, "Reason"); got != `Q.850;cause=41;text="Gateway shutting down"` {
		t.Errorf("Reason = %q", got)
	}
	if bye.Recipient.User != "bob" || bye.Recipient.Port != p.port {
		t.Errorf("BYE Request-URI %s, want the 200's Contact", bye.Recipient.String())
	}
	if tag, _ := bye.To().Params.Get("tag"); tag != far.tag {
		t.Errorf("BYE To tag %q", tag)
	}
	p.reply(bye, from, 200, "OK")
	if err := recv(t, hung, "Hangup"); err != nil {
		t.Fatalf("Hangup: %v", err)
	}
	closed(t, r.call.Done(), "Done after our BYE")
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
}

func TestDialRejected(t *testing.T) {
	ts := startServer(t, nil)
	p := newPeer(t, ts.addr)
	res := dial(ts, context.Background(), "sip:bob@"+p.addr(), DialOptions{})
	far := p.acceptInvite()
	far.respond(486, "Busy Here", "")
	r := recv(t, res, "Dial")
	var rerr *ResponseError
	if !errors.As(r.err, &rerr) || rerr.Code != 486 || rerr.Reason != "Busy Here" {
		t.Fatalf("Dial err = %v, want *ResponseError{486}", r.err)
	}
	if r.call != nil {
		t.Errorf("Dial returned a call with the error")
	}
	// The transaction ACKs the failure with the INVITE's branch.
	ack, _ := p.request("ACK")
	ib, _ := far.invite.Via().Params.Get("branch")
	if ab, _ := ack.Via().Params.Get("branch"); ab != ib {
		t.Errorf("ACK for 486 has branch %q, want %q", ab, ib)
	}
	if ts.ActiveCalls() != 0 {
		t.Errorf("ActiveCalls = %d", ts.ActiveCalls())
	}
}

func TestDialDigestAuth(t *testing.T) {
	ts := startServer(t, nil)
	p := newPeer(t, ts.addr)
	target := "sip:+15550100@" + p.addr()
	res := dial(ts, context.Background(), target, DialOptions{Username: "acme", Password: "s3cret"})

	first := p.acceptInvite()
	if header(first.invite, "Proxy-Authorization") != "" {
		t.Fatal("first INVITE already carries credentials")
	}
	first.respond(407, "Proxy Authentication Required", "",
		sipmsg.NewHeader("Proxy-Authenticate", `Digest realm="sip.test", nonce="n0nce", algorithm=MD5`))
	p.request("ACK") // for the 407

	second := p.acceptInvite()
	if second.invite.CallID().Value() != first.invite.CallID().Value() {
		t.Errorf("retry changed Call-ID")
	}
	if second.invite.CSeq().SeqNo <= first.invite.CSeq().SeqNo {
		t.Errorf("retry CSeq %d not above %d", second.invite.CSeq().SeqNo, first.invite.CSeq().SeqNo)
	}
	auth := header(second.invite, "Proxy-Authorization")
	if auth == "" {
		t.Fatal("second INVITE has no Proxy-Authorization")
	}
	// The digest must be right: MD5(MD5(user:realm:pass):nonce:MD5(INVITE:uri)).
	md := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	uri := second.invite.Recipient.Addr()
	want := md(md("acme:sip.test:s3cret") + ":n0nce:" + md("INVITE:"+uri))
	for _, part := range []string{`username="acme"`, `realm="sip.test"`, `nonce="n0nce"`, `response="` + want + `"`} {
		if !strings.Contains(auth, part) {
			t.Errorf("Proxy-Authorization %q lacks %s", auth, part)
		}
	}
	second.respond(200, "OK", answerSDP)
	r := recv(t, res, "Dial")
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	ack, _ := p.request("ACK")
	if ack.CSeq().SeqNo != second.invite.CSeq().SeqNo {
		t.Errorf("ACK CSeq %d, want %d", ack.CSeq().SeqNo, second.invite.CSeq().SeqNo)
	}
	branch := second.bye()
	p.response(200, "BYE", branch)
	closed(t, r.call.Done(), "call end")
}

// Without credentials the challenge is the answer.
func TestDialChallengeWithoutCredentials(t *testing.T) {
	ts := startServer(t, nil)
	p := newPeer(t, ts.addr)
	res := dial(ts, context.Background(), "sip:bob@"+p.addr(), DialOptions{})
	far := p.acceptInvite()
	far.respond(401, "Unauthorized", "", sipmsg.NewHeader("WWW-Authenticate", `Digest realm="r", nonce="n"`))
	r := recv(t, res, "Dial")
	var rerr *ResponseError
	if !errors.As(r.err, &rerr) || rerr.Code != 401 {
		t.Fatalf("Dial err = %v, want 401", r.err)
	}
}

// Cancelling Dial's context after a provisional response sends CANCEL.
func TestDialCancel(t *testing.T) {
	ts := startServer(t, nil)
	p := newPeer(t, ts.addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := dial(ts, ctx, "sip:bob@"+p.addr(), DialOptions{})
	far := p.acceptInvite()
	far.respond(180, "Ringing", "")
	cancel()
	creq, from := p.request("CANCEL")
	ib, _ := far.invite.Via().Params.Get("branch")
	if cb, _ := creq.Via().Params.Get("branch"); cb != ib {
		t.Errorf("CANCEL branch %q, want the INVITE's %q", cb, ib)
	}
	p.reply(creq, from, 200, "OK")
	far.respond(487, "Request Terminated", "")
	r := recv(t, res, "Dial")
	if r.err == nil || r.call != nil {
		t.Fatalf("Dial = %v, %v after cancel", r.call, r.err)
	}
}

func TestDialBadInput(t *testing.T) {
	ts := startServer(t, nil)
	p := newPeer(t, ts.addr)
	tests := []struct {
		name   string
		target string
		opts   DialOptions
	}{
		{"bad uri", "not a uri\r\n", DialOptions{}},
		{"CRLF in display name", "sip:bob@" + p.addr(), DialOptions{FromDisplay: "x\r\nX-Evil: 1"}},
		{"LF in user", "sip:bob@" + p.addr(), DialOptions{FromUser: "1\n2"}},
		{"CR in extra header", "sip:bob@" + p.addr(), DialOptions{Headers: []sipmsg.Header{sipmsg.NewHeader("X-A", "a\rb")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ts.Dial(context.Background(), tc.target, []byte(offerSDP), tc.opts); err == nil {
				t.Fatal("Dial succeeded")
			}
		})
	}
	if n := p.count(isRequest("INVITE")); n != 0 {
		t.Errorf("%d INVITEs sent for bad input", n)
	}
}

// A BYE the far end never answers: Hangup fails after Timer F, and the call
// still ends (regression: Done never closed and ActiveCalls stayed up,
// because sipgo's DialogClientSession.Close does not end the dialog).
func TestDialHangupUnanswered(t *testing.T) {
	t.Parallel() // waits out 64*T1 on its own server
	ts := startServer(t, nil)
	p := newPeer(t, ts.addr)
	res := dial(ts, context.Background(), "sip:bob@"+p.addr(), DialOptions{})
	far := p.acceptInvite()
	far.respond(200, "OK", answerSDP)
	r := recv(t, res, "Dial")
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	if err := r.call.Hangup(context.Background(), CauseNormal.Reason()); err == nil {
		t.Fatal("Hangup succeeded without a 200 to the BYE")
	}
	p.request("BYE")
	closed(t, r.call.Done(), "Done after a failed BYE")
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
}
