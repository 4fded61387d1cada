package sip

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

type answerResult struct {
	body []byte
	err  error
}

// answeringHandler answers every call with answerSDP (after 180 when ring
// is set), reports Answer's result, then holds the call until it ends.
func answeringHandler(ring bool, calls chan<- *InboundCall, results chan<- answerResult) CallHandler {
	return func(ctx context.Context, call *InboundCall) {
		if calls != nil {
			calls <- call
		}
		if ring {
			if err := call.Ringing(); err != nil {
				results <- answerResult{err: err}
				return
			}
		}
		body, err := call.Answer(ctx, []byte(answerSDP))
		results <- answerResult{body, err}
		if err != nil {
			return
		}
		select {
		case <-call.Done():
		case <-ctx.Done():
		}
	}
}

func TestInviteAnswer(t *testing.T) {
	calls := make(chan *InboundCall, 1)
	results := make(chan answerResult, 1)
	ts := startServer(t, answeringHandler(true, calls, results), func(c *Config) {
		c.PublicHost = "192.0.2.10" // Contact must advertise this, not the bind address
	})
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.invite("application/sdp", offerSDP, "X-Account: acme")

	p.response(100, "INVITE", u.inviteBranch)
	call := recv(t, calls, "call")
	ringing := p.response(180, "INVITE", u.inviteBranch)
	ok := p.response(200, "INVITE", u.inviteBranch)

	// The provisional and the final answer carry the same To tag.
	u.answered(ok)
	if tag, _ := ringing.To().Params.Get("tag"); tag != u.toTag {
		t.Errorf("180 To tag %q != 200 To tag %q", tag, u.toTag)
	}
	if got := string(ok.Body()); got != answerSDP {
		t.Errorf("200 body = %q, want the answer SDP", got)
	}
	if ct := ok.ContentType(); ct == nil || ct.Value() != "application/sdp" {
		t.Errorf("200 Content-Type = %v", ct)
	}
	contact := ok.Contact()
	if contact == nil {
		t.Fatal("200 has no Contact")
	}
	if contact.Address.Host != "192.0.2.10" || contact.Address.Port != int(ts.addr.Port()) {
		t.Errorf("Contact = %s, want host 192.0.2.10 port %d", contact.Address.String(), ts.addr.Port())
	}
	if header(ok, "Allow") != allowedMethods {
		t.Errorf("200 Allow = %q", header(ok, "Allow"))
	}

	// What the handler saw, parsed once at the edge.
	if call.From != "+15550199" || call.FromDisplay != "Alice" || call.To != "+15550100" {
		t.Errorf("From/Display/To = %q/%q/%q", call.From, call.FromDisplay, call.To)
	}
	if call.CallID != u.callID || string(call.Offer) != offerSDP {
		t.Errorf("CallID %q Offer %q", call.CallID, call.Offer)
	}
	if call.Source.String() != p.addr() || !strings.EqualFold(call.Transport, "udp") {
		t.Errorf("Source %s Transport %q, want %s udp", call.Source, call.Transport, p.addr())
	}
	if call.Header("X-Account") != "acme" || call.Header("X-Missing") != "" {
		t.Errorf("Header(X-Account) = %q", call.Header("X-Account"))
	}

	// Answer returns only once the ACK arrives.
	select {
	case r := <-results:
		t.Fatalf("Answer returned before the ACK: %+v", r)
	default:
	}
	u.ack(u.inviteCSeq, "", "")
	r := recv(t, results, "Answer to return")
	if r.err != nil || r.body != nil {
		t.Fatalf("Answer = %q, %v; want nil, nil", r.body, r.err)
	}
	if ts.ActiveCalls() != 1 {
		t.Errorf("ActiveCalls = %d during the call", ts.ActiveCalls())
	}
	if err := call.Ringing(); !errors.Is(err, ErrAlreadyAnswer) {
		t.Errorf("Ringing after answer = %v", err)
	}
	if _, err := call.Answer(context.Background(), []byte(answerSDP)); !errors.Is(err, ErrAlreadyAnswer) {
		t.Errorf("second Answer = %v", err)
	}
	if err := call.Reject(486, ""); !errors.Is(err, ErrAlreadyAnswer) {
		t.Errorf("Reject after answer = %v", err)
	}

	// End the call from the far end so the test leaves nothing behind.
	branch, _ := u.inDialog("BYE", "", "")
	p.response(200, "BYE", branch)
	closed(t, call.Done(), "call to end")
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
}

func TestRejectCodes(t *testing.T) {
	ts := startServer(t, func(ctx context.Context, call *InboundCall) {
		if err := call.Reject(200, ""); err == nil {
			t.Error("Reject(200) succeeded")
		}
		_ = call.Reject(488, "no common codec")
	})
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.invite("application/sdp", offerSDP)
	res := p.response(488, "INVITE", u.inviteBranch)
	u.ackFailure(res)
	if w := header(res, "Warning"); !strings.HasPrefix(w, "304 ") || !strings.Contains(w, `"no common codec"`) {
		t.Errorf("Warning = %q", w)
	}
}

// CANCEL before the answer: 200 for the CANCEL, 487 for the INVITE, and the
// call ends with ErrCanceled.
func TestCancelBeforeAnswer(t *testing.T) {
	calls := make(chan *InboundCall, 1)
	ended := make(chan error, 1)
	ts := startServer(t, func(ctx context.Context, call *InboundCall) {
		if err := call.Ringing(); err != nil {
			t.Errorf("Ringing: %v", err)
		}
		calls <- call
		<-call.Done()
		<-ctx.Done() // the handler's context ends with the call
		ended <- call.Err()
	})
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.invite("application/sdp", offerSDP)
	p.response(180, "INVITE", u.inviteBranch)
	call := recv(t, calls, "call")

	u.cancel()
	p.response(200, "CANCEL", u.inviteBranch)
	res := p.response(487, "INVITE", u.inviteBranch)
	closed(t, call.Done(), "Done after CANCEL")
	if err := recv(t, ended, "handler to see the end"); !errors.Is(err, ErrCanceled) {
		t.Fatalf("Err() = %v, want ErrCanceled", err)
	}
	u.ackFailure(res)
	p.barrier()
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
	// Nothing but the 487 retransmissions: the safety net must not send 500.
	if n := p.count(isResponse(500, "INVITE", "")); n != 0 {
		t.Errorf("got %d 500s after CANCEL", n)
	}
}

// BYE from the far end after the answer.
func TestRemoteHangup(t *testing.T) {
	calls := make(chan *InboundCall, 1)
	results := make(chan answerResult, 1)
	ts := startServer(t, answeringHandler(false, calls, results))
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.establish()
	call := recv(t, calls, "call")
	if r := recv(t, results, "Answer"); r.err != nil {
		t.Fatalf("Answer: %v", r.err)
	}
	if call.Err() != nil {
		t.Errorf("Err() = %v while the call is up", call.Err())
	}

	branch, _ := u.inDialog("BYE", "", "")
	p.response(200, "BYE", branch)
	closed(t, call.Done(), "Done after BYE")
	if !errors.Is(call.Err(), ErrRemoteHangup) {
		t.Fatalf("Err() = %v, want ErrRemoteHangup", call.Err())
	}
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
	// Our side must not BYE a call the far end ended.
	if n := p.count(isRequest("BYE")); n != 0 {
		t.Errorf("server sent %d BYEs after the far end's BYE", n)
	}
	// A second BYE for the ended dialog: 481.
	branch, _ = u.inDialog("BYE", "", "")
	p.response(481, "BYE", branch)
}

// Hangup from our side: BYE to the far end's Contact with a Reason header,
// and no second BYE from serveInbound's safety net.
func TestLocalHangup(t *testing.T) {
	hungUp := make(chan error, 1)
	returned := make(chan struct{})
	calls := make(chan *InboundCall, 1)
	ts := startServer(t, func(ctx context.Context, call *InboundCall) {
		defer close(returned)
		calls <- call
		if _, err := call.Answer(ctx, []byte(answerSDP)); err != nil {
			hungUp <- err
			return
		}
		err := call.Hangup(ctx, CauseRTPTimeout.Reason())
		hungUp <- err
		if err == nil {
			// Safe twice.
			if err := call.Hangup(ctx, CauseNormal.Reason()); err != nil {
				t.Errorf("second Hangup: %v", err)
			}
		}
	})
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.establish()
	call := recv(t, calls, "call")

	bye, from := p.request("BYE")
	if bye.Recipient.User != "alice" || bye.Recipient.Host != "127.0.0.1" || bye.Recipient.Port != p.port {
		t.Errorf("BYE Request-URI = %s, want the far end's Contact sip:alice@%s", bye.Recipient.String(), p.addr())
	}
	if from != ts.addr {
		t.Errorf("BYE sent from %s, want the listener %s", from, ts.addr)
	}
	want := `Q.850;cause=102;text="RTP inactivity timeout"`
	if got := header(bye, "Reason"); got != want {
		t.Errorf("Reason = %q, want %q", got, want)
	}
	if tag, _ := bye.From().Params.Get("tag"); tag != u.toTag {
		t.Errorf("BYE From tag %q, want our To tag %q", tag, u.toTag)
	}
	if tag, _ := bye.To().Params.Get("tag"); tag != u.fromTag {
		t.Errorf("BYE To tag %q, want the caller's tag %q", tag, u.fromTag)
	}
	if bye.CallID().Value() != u.callID {
		t.Errorf("BYE Call-ID %q", bye.CallID().Value())
	}
	p.reply(bye, from, 200, "OK")

	if err := recv(t, hungUp, "Hangup to return"); err != nil {
		t.Fatalf("Hangup: %v", err)
	}
	closed(t, returned, "handler to return")
	closed(t, call.Done(), "Done after our BYE")
	if call.Err() != nil {
		t.Errorf("Err() = %v after we hung up, want nil", call.Err())
	}
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
	// One BYE on the wire (UDP retransmissions carry the same branch).
	branches := map[string]bool{}
	p.count(func(r *received) bool {
		if req, ok := r.msg.(*sipmsg.Request); ok && req.Method == sipmsg.BYE {
			b, _ := req.Via().Params.Get("branch")
			branches[b] = true
		}
		return false
	})
	if len(branches) != 1 {
		t.Errorf("server sent %d distinct BYE transactions, want 1", len(branches))
	}
}

// Late offer: INVITE without a body, our offer in the 200, the answer in the ACK.
func TestLateOffer(t *testing.T) {
	calls := make(chan *InboundCall, 1)
	results := make(chan answerResult, 1)
	ts := startServer(t, answeringHandler(false, calls, results))
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.invite("", "")
	call := recv(t, calls, "call")
	if call.Offer != nil {
		t.Errorf("Offer = %q for a bodiless INVITE", call.Offer)
	}
	ok := p.response(200, "INVITE", u.inviteBranch)
	u.answered(ok)
	if string(ok.Body()) != answerSDP {
		t.Errorf("200 body = %q, want our offer", ok.Body())
	}
	u.ack(u.inviteCSeq, "application/sdp", offerSDP)
	r := recv(t, results, "Answer")
	if r.err != nil || string(r.body) != offerSDP {
		t.Fatalf("Answer = %q, %v; want the ACK's SDP", r.body, r.err)
	}
	branch, _ := u.inDialog("BYE", "", "")
	p.response(200, "BYE", branch)
	closed(t, call.Done(), "call end")
}

// INVITE bodies that are not SDP are refused before the handler runs.
func TestInviteNonSDPBody(t *testing.T) {
	var called atomic.Bool
	ts := startServer(t, func(ctx context.Context, call *InboundCall) {
		called.Store(true)
		_ = call.Reject(486, "")
	})
	p := newPeer(t, ts.addr)
	tests := []struct {
		ct   string
		want int
	}{
		{"text/plain", 415},
		{"multipart/mixed;boundary=x", 415},
		{"", 415}, // a body without Content-Type
		{"Application/SDP; charset=utf-8", 486},
	}
	for _, tc := range tests {
		t.Run(tc.ct, func(t *testing.T) {
			called.Store(false)
			u := p.newUAC()
			u.invite(tc.ct, offerSDP)
			res := p.response(tc.want, "INVITE", u.inviteBranch)
			u.ackFailure(res)
			if tc.want == 415 {
				if header(res, "Accept") != "application/sdp" {
					t.Errorf("415 Accept = %q", header(res, "Accept"))
				}
				if called.Load() {
					t.Errorf("handler ran for Content-Type %q", tc.ct)
				}
			}
		})
	}
}

func TestInviteWithoutContact(t *testing.T) {
	var called atomic.Bool
	ts := startServer(t, func(ctx context.Context, call *InboundCall) { called.Store(true); _ = call.Reject(486, "") })
	p := newPeer(t, ts.addr)
	branch := newBranch()
	p.send(p.build(reqSpec{method: "INVITE", branch: branch, noContact: true, contentType: "application/sdp", body: offerSDP}))
	p.response(400, "INVITE", branch)
	if called.Load() {
		t.Error("handler ran for an INVITE without Contact")
	}
}

// A handler that returns without answering: the safety net sends 500.
func TestHandlerReturnsWithoutAnswer(t *testing.T) {
	ts := startServer(t, func(ctx context.Context, call *InboundCall) {})
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.invite("application/sdp", offerSDP)
	u.ackFailure(p.response(500, "INVITE", u.inviteBranch))
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
}

// A 200 that is never ACKed: Answer gives up after 64*T1 with ErrNoAck and
// the call is torn down with a BYE.
func TestAnswerNoAck(t *testing.T) {
	t.Parallel() // waits out 64*T1 on its own server
	calls := make(chan *InboundCall, 1)
	results := make(chan answerResult, 1)
	ts := startServer(t, answeringHandler(false, calls, results))
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.invite("application/sdp", offerSDP)
	start := time.Now()
	call := recv(t, calls, "call")
	p.response(200, "INVITE", u.inviteBranch)

	r := recv(t, results, "Answer to give up")
	if !errors.Is(r.err, ErrNoAck) {
		t.Fatalf("Answer err = %v, want ErrNoAck", r.err)
	}
	if elapsed := time.Since(start); elapsed < 64*testT1 {
		t.Errorf("Answer gave up after %v, before 64*T1 = %v", elapsed, 64*testT1)
	}
	// The 200 was retransmitted while we waited (UDP).
	if n := p.count(isResponse(200, "INVITE", u.inviteBranch)); n < 3 {
		t.Errorf("200 sent %d times, want retransmissions", n)
	}
	bye, from := p.request("BYE")
	if got := header(bye, "Reason"); !strings.Contains(got, "cause=41") {
		t.Errorf("BYE Reason = %q, want the error cause", got)
	}
	p.reply(bye, from, 200, "OK")
	closed(t, call.Done(), "call end")
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
	// Answer's own BYE and the safety net's must not both go out.
	branches := map[string]bool{}
	p.count(func(r *received) bool {
		if req, ok := r.msg.(*sipmsg.Request); ok && req.Method == sipmsg.BYE {
			b, _ := req.Via().Params.Get("branch")
			branches[b] = true
		}
		return false
	})
	if len(branches) != 1 {
		t.Errorf("server sent %d distinct BYEs, want 1", len(branches))
	}
}

// Shutting the server down ends the handler's context of a call in progress.
func TestShutdownEndsCallContext(t *testing.T) {
	calls := make(chan *InboundCall, 1)
	results := make(chan answerResult, 1)
	handlerCtxDone := make(chan struct{})
	ts := startServer(t, func(ctx context.Context, call *InboundCall) {
		answeringHandler(false, calls, results)(ctx, call)
		if ctx.Err() != nil {
			close(handlerCtxDone)
		}
	})
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.establish()
	recv(t, calls, "call")
	if r := recv(t, results, "Answer"); r.err != nil {
		t.Fatalf("Answer: %v", r.err)
	}

	ts.cancel()
	closed(t, handlerCtxDone, "handler context to end")
	// The safety net hangs up the answered call; Serve waits for it.
	bye, from := p.request("BYE")
	if got := header(bye, "Reason"); !strings.Contains(got, "cause=16") {
		t.Errorf("shutdown BYE Reason = %q", got)
	}
	p.reply(bye, from, 200, "OK")
	if err := ts.stop(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if ts.ActiveCalls() != 0 {
		t.Errorf("ActiveCalls = %d after shutdown", ts.ActiveCalls())
	}
}

// Answer's context ends after the 200 went out but before the ACK: the far
// end has an answered call, so the safety net must BYE it once the ACK
// confirms the dialog (regression: the call was left up on the far end).
func TestAnswerContextEndsBeforeAck(t *testing.T) {
	results := make(chan answerResult, 1)
	ts := startServer(t, func(ctx context.Context, call *InboundCall) {
		actx, cancel := context.WithCancel(ctx)
		go func() {
			// End Answer's context once the 200 has been sent.
			for call.dlg.LoadState() < sipmsg.DialogStateEstablished {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		body, err := call.Answer(actx, []byte(answerSDP))
		cancel()
		results <- answerResult{body, err}
	})
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.invite("application/sdp", offerSDP)
	u.answered(p.response(200, "INVITE", u.inviteBranch))
	if r := recv(t, results, "Answer"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Answer err = %v, want context.Canceled", r.err)
	}
	u.ack(u.inviteCSeq, "", "")
	bye, from := p.request("BYE")
	p.reply(bye, from, 200, "OK")
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
}

// A BYE the far end never answers: Hangup fails after Timer F and the call
// still counts as ended (regression: Done never closed, because sipgo's
// DialogServerSession.Close does not end the dialog).
func TestHangupUnanswered(t *testing.T) {
	t.Parallel() // waits out 64*T1 on its own server
	calls := make(chan *InboundCall, 1)
	hungUp := make(chan error, 1)
	release := make(chan struct{})
	ts := startServer(t, func(ctx context.Context, call *InboundCall) {
		calls <- call
		if _, err := call.Answer(ctx, []byte(answerSDP)); err != nil {
			hungUp <- err
			return
		}
		hungUp <- call.Hangup(ctx, CauseAgentHangup.Reason())
		<-release
	})
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.establish()
	call := recv(t, calls, "call")
	bye, _ := p.request("BYE")
	if got := header(bye, "Reason"); got != `Q.850;cause=16;text="Agent hung up"` {
		t.Errorf("Reason = %q", got)
	}
	if err := recv(t, hungUp, "Hangup to fail"); err == nil {
		t.Fatal("Hangup succeeded without a 200 to the BYE")
	}
	closed(t, call.Done(), "Done after a failed BYE")
	close(release)
	eventually(t, "ActiveCalls to drop to 0", func() bool { return ts.ActiveCalls() == 0 })
}
