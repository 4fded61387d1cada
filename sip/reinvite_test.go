package sip

import (
	"context"
	"strings"
	"testing"
	"time"
)

type offerCall struct {
	offer []byte
	reply chan offerReply // nil: answer at once with answerSDP
}

type offerReply struct {
	answer []byte
	status int
	reason string
}

// reinviteServer answers calls and routes re-INVITE offers and INFOs to
// channels the test reads; the test decides each answer.
type reinviteServer struct {
	*testServer
	calls  chan *InboundCall
	up     chan struct{} // Answer returned: re-INVITEs now reach the OfferHandler
	offers chan offerCall
	infos  chan [2]string
}

func startReinviteServer(t *testing.T) *reinviteServer {
	rs := &reinviteServer{
		calls:  make(chan *InboundCall, 1),
		up:     make(chan struct{}),
		offers: make(chan offerCall, 4),
		infos:  make(chan [2]string, 4),
	}
	rs.testServer = startServer(t, func(ctx context.Context, call *InboundCall) {
		call.OnOffer(func(offer []byte) ([]byte, int, string) {
			oc := offerCall{offer: offer, reply: make(chan offerReply, 1)}
			rs.offers <- oc
			select {
			case r := <-oc.reply:
				return r.answer, r.status, r.reason
			case <-ctx.Done():
				return nil, 500, ""
			}
		})
		call.OnInfo(func(ct string, body []byte) int {
			rs.infos <- [2]string{ct, string(body)}
			return 200
		})
		rs.calls <- call
		if _, err := call.Answer(ctx, []byte(answerSDP)); err != nil {
			return
		}
		close(rs.up)
		select {
		case <-call.Done():
		case <-ctx.Done():
		}
	})
	return rs
}

// establishedCall answers a call from a fresh peer and returns once Answer
// has returned: from then on re-INVITEs reach the OfferHandler (before, one
// racing the ACK would get 491).
func establishedCall(t *testing.T) (*reinviteServer, *udpPeer, *uac, *InboundCall) {
	t.Helper()
	rs := startReinviteServer(t)
	p := newPeer(t, rs.addr)
	u := p.newUAC()
	u.establish()
	call := recv(t, rs.calls, "call")
	closed(t, rs.up, "Answer to return")
	return rs, p, u, call
}

func (rs *reinviteServer) nextOffer(t *testing.T) offerCall {
	t.Helper()
	return recv(t, rs.offers, "the OfferHandler to be called")
}

// reinviteIdle waits until the dialog has sent the final response to its last
// re-INVITE: the peer sees the response a moment before the handler returns,
// and a re-INVITE overlapping that moment would get 500 (correctly).
func reinviteIdle(t *testing.T, call *InboundCall) {
	t.Helper()
	eventually(t, "the re-INVITE to complete", func() bool {
		call.mu.Lock()
		defer call.mu.Unlock()
		return !call.reinvBsy
	})
}

// hangup ends the call from the far end.
func hangup(t *testing.T, u *uac, call *InboundCall) {
	t.Helper()
	branch, _ := u.inDialog("BYE", "", "")
	u.p.response(200, "BYE", branch)
	closed(t, call.Done(), "call end")
}

func TestReinviteOfferAnswer(t *testing.T) {
	rs, p, u, call := establishedCall(t)

	branch, cseq := u.inDialog("INVITE", "application/sdp", holdSDP)
	oc := rs.nextOffer(t)
	if string(oc.offer) != holdSDP {
		t.Errorf("OfferHandler got %q, want the re-INVITE body", oc.offer)
	}
	const held = "v=0\r\no=switchboard 2 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 50000 RTP/AVP 0\r\na=recvonly\r\n"
	oc.reply <- offerReply{answer: []byte(held)}
	res := p.response(200, "INVITE", branch)
	if string(res.Body()) != held {
		t.Errorf("200 body = %q, want the handler's answer", res.Body())
	}
	if ct := res.ContentType(); ct == nil || ct.Value() != "application/sdp" {
		t.Errorf("200 Content-Type = %v", ct)
	}
	if c := res.Contact(); c == nil || c.Address.Port != int(rs.addr.Port()) {
		t.Errorf("200 Contact = %v", c)
	}
	if tag, _ := res.To().Params.Get("tag"); tag != u.toTag {
		t.Errorf("200 To tag %q, want the dialog's %q", tag, u.toTag)
	}
	u.ack(cseq, "", "")
	reinviteIdle(t, call)

	// Content types are compared case-insensitively, parameters ignored.
	branch, cseq = u.inDialog("INVITE", "Application/SDP; charset=utf-8", offerSDP)
	oc = rs.nextOffer(t)
	oc.reply <- offerReply{answer: []byte(answerSDP)}
	p.response(200, "INVITE", branch)
	u.ack(cseq, "", "")

	// INFO goes to the InfoHandler.
	branch, _ = u.inDialog("INFO", "application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")
	p.response(200, "INFO", branch)
	info := recv(t, rs.infos, "InfoHandler")
	if info[0] != "application/dtmf-relay" || !strings.HasPrefix(info[1], "Signal=5") {
		t.Errorf("InfoHandler got %q", info)
	}

	hangup(t, u, call)
}

func TestReinviteRefused(t *testing.T) {
	rs, p, u, call := establishedCall(t)

	tests := []struct {
		name        string
		contentType string
		body        string
		reply       *offerReply // nil: the handler is not consulted
		want        int
		warning     string
	}{
		{name: "488 with warning", contentType: "application/sdp", body: holdSDP,
			reply: &offerReply{status: 488, reason: "no common codec"}, want: 488,
			warning: `304 127.0.0.1 "no common codec"`},
		{name: "injected warning dropped", contentType: "application/sdp", body: holdSDP,
			reply: &offerReply{status: 488, reason: "x\r\nX-Evil: 1"}, want: 488},
		{name: "500 from handler", contentType: "application/sdp", body: holdSDP,
			reply: &offerReply{status: 500}, want: 500},
		{name: "not sdp", contentType: "text/plain", body: "hello", want: 415},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			branch, cseq := u.inDialog("INVITE", tc.contentType, tc.body)
			if tc.reply != nil {
				rs.nextOffer(t).reply <- *tc.reply
			}
			res := p.response(tc.want, "INVITE", branch)
			if got := header(res, "Warning"); got != tc.warning {
				t.Errorf("Warning = %q, want %q", got, tc.warning)
			}
			if header(res, "X-Evil") != "" {
				t.Errorf("header injected through the reason")
			}
			// ACK the failure (same branch, hop-by-hop).
			s := u.spec("ACK")
			s.branch, s.cseq = branch, cseq
			p.send(p.build(s))
			reinviteIdle(t, call)
		})
	}
	select {
	case oc := <-rs.offers:
		t.Errorf("OfferHandler called for a refused offer: %q", oc.offer)
	default:
	}
	hangup(t, u, call)
}

// Over UDP the 2xx to a re-INVITE is retransmitted until its ACK arrives.
func TestReinviteRetransmitUntilAck(t *testing.T) {
	rs, p, u, call := establishedCall(t)

	branch, cseq := u.inDialog("INVITE", "application/sdp", holdSDP)
	rs.nextOffer(t).reply <- offerReply{answer: []byte(answerSDP)}
	p.response(200, "INVITE", branch)
	ok200 := isResponse(200, "INVITE", branch)
	// No ACK yet: more than T1 passes, so the 200 must come again.
	eventually(t, "a retransmitted 200", func() bool { return p.count(ok200) >= 3 })
	u.ack(cseq, "", "")
	// Let an ACK race with a retransmission already on its way, then the
	// count must stay put for longer than the largest interval (T2).
	time.Sleep(testT1)
	n := p.count(ok200)
	time.Sleep(3 * testT2)
	if m := p.count(ok200); m != n {
		t.Errorf("200 retransmitted %d more times after the ACK", m-n)
	}
	hangup(t, u, call)
}

// A second re-INVITE while one is still unanswered gets 500 with Retry-After
// (RFC 3261 §14.2), and so does one whose CSeq is out of order.
func TestReinviteOverlap(t *testing.T) {
	rs, p, u, call := establishedCall(t)

	first, firstCSeq := u.inDialog("INVITE", "application/sdp", holdSDP)
	oc := rs.nextOffer(t) // the handler now blocks on oc.reply

	second, secondCSeq := u.inDialog("INVITE", "application/sdp", offerSDP)
	res := p.response(500, "INVITE", second)
	if header(res, "Retry-After") == "" {
		t.Errorf("500 without Retry-After")
	}
	s := u.spec("ACK")
	s.branch, s.cseq = second, secondCSeq
	p.send(p.build(s))

	oc.reply <- offerReply{answer: []byte(answerSDP)}
	p.response(200, "INVITE", first)
	u.ack(firstCSeq, "", "")
	reinviteIdle(t, call)

	// A request below the highest CSeq seen is out of order.
	stale := u.spec("INVITE")
	stale.branch, stale.cseq = newBranch(), firstCSeq
	stale.contentType, stale.body = "application/sdp", offerSDP
	p.send(p.build(stale))
	p.response(500, "INVITE", stale.branch)
	hangup(t, u, call)
}

// Once the 2xx is sent, the far end may send its ACK and its next re-INVITE
// back to back; the new offer is served even when it overtakes the ACK, and
// the old 2xx is no longer retransmitted.
func TestReinviteOvertakesAck(t *testing.T) {
	rs := startReinviteServer(t)
	p := newPeer(t, rs.addr)
	u := p.newUAC()
	u.establish()
	recv(t, rs.calls, "call")
	closed(t, rs.up, "Answer to return")

	first, _ := u.inDialog("INVITE", "application/sdp", holdSDP)
	rs.nextOffer(t).reply <- offerReply{answer: []byte(answerSDP)}
	p.response(200, "INVITE", first)

	// No ACK for the first: the second re-INVITE arrives instead.
	second, secondCSeq := u.inDialog("INVITE", "application/sdp", offerSDP)
	rs.nextOffer(t).reply <- offerReply{answer: []byte(answerSDP)}
	p.response(200, "INVITE", second)
	u.ack(secondCSeq, "", "")

	ok200 := isResponse(200, "INVITE", first)
	time.Sleep(testT1)
	n := p.count(ok200)
	time.Sleep(3 * testT2)
	if m := p.count(ok200); m != n {
		t.Errorf("superseded 200 retransmitted %d more times", m-n)
	}
}

func TestReinviteBeforeAnswer(t *testing.T) {
	calls := make(chan *InboundCall, 1)
	release := make(chan struct{})
	ts := startServer(t, func(ctx context.Context, call *InboundCall) {
		call.OnOffer(func([]byte) ([]byte, int, string) { return []byte(answerSDP), 0, "" })
		_ = call.Ringing()
		calls <- call
		<-release
		_ = call.Reject(480, "")
	})
	p := newPeer(t, ts.addr)
	u := p.newUAC()
	u.invite("application/sdp", offerSDP)
	ringing := p.response(180, "INVITE", u.inviteBranch)
	u.answered(ringing) // early dialog
	recv(t, calls, "call")
	branch, _ := u.inDialog("INVITE", "application/sdp", holdSDP)
	p.response(491, "INVITE", branch)
	close(release)
	u.ackFailure(p.response(480, "INVITE", u.inviteBranch))
}
