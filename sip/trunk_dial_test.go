package sip

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// nextInvite accepts the next INVITE by CSeq (sipgo retransmits every
// T1 = 25 ms until the first answer; those copies are skipped).
func nextInvite(r *registrarPeer) *uas {
	r.t.Helper()
	req, from := r.next("INVITE")
	u := &uas{p: r.udpPeer, invite: req, from: from, tag: fmt.Sprintf("uas-%d", branchSeq.Add(1))}
	req.To().Params.Add("tag", u.tag)
	return u
}

// A 200 that arrives after our CANCEL is ACKed and ended with BYE, and Dial
// fails: sipgo alone would leave the far end with a call up.
func TestDialCancelAnswerRace(t *testing.T) {
	for _, tc := range []struct {
		name        string
		provisional bool
		cancelCode  int // answer to our CANCEL, sent after the 200 to the INVITE
	}{
		{"200 crosses CANCEL, CANCEL answered 200", true, 200},
		{"200 crosses CANCEL, CANCEL answered 481", true, 481},
		{"200 before any provisional", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, nil)
			far := &registrarPeer{udpPeer: newPeer(t, ts.addr)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			progress := make(chan int, 4)
			res := dial(ts, ctx, "sip:bob@"+far.addr(), DialOptions{OnProgress: func(c int, _ string) { progress <- c }})
			u := nextInvite(far)
			if tc.provisional {
				u.respond(180, "Ringing", "")
				recv(t, progress, "the 180")
			}
			cancel()
			if tc.provisional {
				creq, cfrom := far.request("CANCEL")
				if b, _ := creq.Via().Params.Get("branch"); b != branchOf(u.invite) || creq.CSeq().SeqNo != u.invite.CSeq().SeqNo {
					t.Errorf("CANCEL branch %s CSeq %d, want the INVITE's", b, creq.CSeq().SeqNo)
				}
				u.respond(200, "OK", answerSDP) // just after the CANCEL arrived
				far.reply(creq, cfrom, tc.cancelCode, "Whatever")
			} else {
				time.Sleep(20 * time.Millisecond) // Dial now waits for a provisional before CANCEL
				u.respond(200, "OK", answerSDP)
			}

			ack, _ := far.request("ACK")
			if tag, _ := ack.To().Params.Get("tag"); tag != u.tag || ack.CSeq().SeqNo != u.invite.CSeq().SeqNo {
				t.Errorf("ACK To tag %q CSeq %d", tag, ack.CSeq().SeqNo)
			}
			bye, bfrom := far.request("BYE")
			if tag, _ := bye.To().Params.Get("tag"); tag != u.tag || bye.Recipient.User != "bob" {
				t.Errorf("BYE To tag %q R-URI %s", tag, bye.Recipient.String())
			}
			if got := header(bye, "Reason"); got != `SIP;cause=487;text="Request Terminated"` {
				t.Errorf("BYE Reason %q", got)
			}
			far.reply(bye, bfrom, 200, "OK")
			r := recv(t, res, "Dial")
			if r.err == nil || r.call != nil || !errors.Is(r.err, context.Canceled) {
				t.Fatalf("Dial = %v, %v; want no call and context.Canceled", r.call, r.err)
			}
			if n := far.count(isRequest("CANCEL")); !tc.provisional && n != 0 {
				t.Errorf("CANCEL sent before any provisional response")
			}
			if ts.ActiveCalls() != 0 {
				t.Errorf("ActiveCalls = %d", ts.ActiveCalls())
			}
		})
	}
}

func branchOf(req *sipmsg.Request) string { b, _ := req.Via().Params.Get("branch"); return b }

// Through a trunk: a bare number at the trunk's host, the trunk's digest
// user answering 407 with qop=auth, then 200.
func TestDialTrunk407Then200(t *testing.T) {
	ts := startServer(t, nil)
	far := &registrarPeer{udpPeer: newPeer(t, ts.addr)}
	tr := &Trunk{Name: "carrier", Host: "127.0.0.1", Port: far.port, Username: "acme", AuthUsername: "acme-auth",
		Password: "pw-secret", Realm: "sip.test", FromDomain: "carrier.test"}
	res := dial(ts, context.Background(), "+15550100", DialOptions{Trunk: tr, CallerID: "+15550111", CallerName: "Ann"})
	first := nextInvite(far)
	inv := first.invite
	if inv.Recipient.String() != "sip:+15550100@"+far.addr() {
		t.Errorf("Request-URI %s", inv.Recipient.String())
	}
	if f := inv.From(); f.Address.User != "+15550111" || f.Address.Host != "carrier.test" || f.DisplayName != "Ann" {
		t.Errorf("From %s", f.Value())
	}
	if c := inv.Contact(); c.Address.User != "acme" || c.Address.Port != int(ts.addr.Port()) {
		t.Errorf("Contact %s", c.Value())
	}
	first.respond(407, "Proxy Authentication Required", "",
		sipmsg.NewHeader("Proxy-Authenticate", `Digest realm="sip.test", nonce="p1", qop="auth", algorithm=MD5`))
	second := nextInvite(far)
	p := checkDigest(t, header(second.invite, "Proxy-Authorization"), "INVITE", "acme-auth", "pw-secret")
	if p["uri"] != second.invite.Recipient.String() || p["qop"] != "auth" || p["nc"] != "00000001" {
		t.Errorf("Proxy-Authorization %v", p)
	}
	ft1, _ := inv.From().Params.Get("tag")
	ft2, _ := second.invite.From().Params.Get("tag")
	if second.invite.CallID().Value() != inv.CallID().Value() || ft1 != ft2 || second.invite.CSeq().SeqNo != inv.CSeq().SeqNo+1 {
		t.Errorf("retry changed the dialog identifiers or CSeq")
	}
	second.respond(200, "OK", answerSDP)
	r := recv(t, res, "Dial")
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	// The 407's ACK (the transaction's) came first; the 2xx's ACK is ours.
	far.take("ACK of the 200", func(m *received) bool {
		ack, ok := m.msg.(*sipmsg.Request)
		return ok && ack.IsAck() && ack.CSeq().SeqNo == second.invite.CSeq().SeqNo
	})
	far.response(200, "BYE", second.bye())
	closed(t, r.call.Done(), "call end")
}

// Wrong credentials: one authenticated retry, then the challenge is the
// answer. A challenge for another realm is not answered at all.
func TestDialTrunkAuthRefused(t *testing.T) {
	ts := startServer(t, nil)
	far := &registrarPeer{udpPeer: newPeer(t, ts.addr)}
	tr := &Trunk{Name: "carrier", Host: "127.0.0.1", Port: far.port, Username: "acme", Password: "pw", Realm: "sip.test"}
	res := dial(ts, context.Background(), "+15550100", DialOptions{Trunk: tr})
	nextInvite(far).respond(401, "Unauthorized", "", sipmsg.NewHeader("WWW-Authenticate", `Digest realm="sip.test", nonce="a"`))
	nextInvite(far).respond(401, "Unauthorized", "", sipmsg.NewHeader("WWW-Authenticate", `Digest realm="sip.test", nonce="b"`))
	var rerr *ResponseError
	if r := recv(t, res, "Dial"); !errors.As(r.err, &rerr) || rerr.Code != 401 {
		t.Fatalf("Dial err = %v, want the 401", r.err)
	}

	far.barrier()
	if n := far.count(func(m *received) bool {
		return isRequest("INVITE")(m) && m.msg.(*sipmsg.Request).CSeq().SeqNo > far.last
	}); n != 0 {
		t.Errorf("%d INVITEs after the refused challenge", n)
	}

	// A new call has a new random CSeq: a new peer keeps them apart.
	far = &registrarPeer{udpPeer: newPeer(t, ts.addr)}
	tr.Port = far.port
	res = dial(ts, context.Background(), "+15550100", DialOptions{Trunk: tr})
	nextInvite(far).respond(407, "Proxy Authentication Required", "", sipmsg.NewHeader("Proxy-Authenticate", `Digest realm="evil.test", nonce="c"`))
	if r := recv(t, res, "Dial"); !errors.As(r.err, &rerr) || rerr.Code != 407 {
		t.Fatalf("Dial err = %v, want the 407", r.err)
	}
	far.barrier()
	if n := far.count(func(m *received) bool {
		return isRequest("INVITE")(m) && m.msg.(*sipmsg.Request).CSeq().SeqNo > far.last
	}); n != 0 {
		t.Errorf("%d INVITEs after the challenge for another realm", n)
	}
}

// CallerIDMode "pai": From stays the account, the caller id goes into
// P-Asserted-Identity. The INVITE goes to the monitor's current address,
// through the outbound proxy's Route.
func TestDialTrunkPAIAndRoute(t *testing.T) {
	ts := startServer(t, nil)
	far := &registrarPeer{udpPeer: newPeer(t, ts.addr)}
	tr := Trunk{Name: "carrier", Host: "carrier.test", Username: "acme", CallerIDMode: "pai", OutboundProxy: far.addr()}
	m := startMonitor(t, ts, tr, noResolver{t})
	eventually(t, "monitor resolved", func() bool { return m.Current().IsValid() })
	res := dial(ts, context.Background(), "+15550100", DialOptions{Trunk: &tr, Monitor: m, CallerID: "+15550111", CallerName: `Ann "A" Agent`})
	u := nextInvite(far)
	inv := u.invite
	if inv.Recipient.String() != "sip:+15550100@carrier.test" || inv.From().Address.User != "acme" || inv.From().Address.Host != "carrier.test" {
		t.Errorf("Request-URI %s From %s", inv.Recipient.String(), inv.From().Value())
	}
	if got := header(inv, "P-Asserted-Identity"); got != `"Ann \"A\" Agent" <sip:+15550111@carrier.test>` {
		t.Errorf("P-Asserted-Identity %q", got)
	}
	if got := header(inv, "Route"); got != "<sip:"+far.addr()+";lr>" {
		t.Errorf("Route %q", got)
	}
	u.respond(486, "Busy Here", "")
	var rerr *ResponseError
	if r := recv(t, res, "Dial"); !errors.As(r.err, &rerr) || rerr.Code != 486 {
		t.Fatalf("Dial err = %v", r.err)
	}
}

func TestDialTrunkBadInput(t *testing.T) {
	ts := startServer(t, nil)
	p := newPeer(t, ts.addr)
	tr := &Trunk{Name: "carrier", Host: "127.0.0.1", Port: p.port}
	for name, c := range map[string]struct {
		target string
		opts   DialOptions
	}{
		"CRLF in caller name": {"+1555", DialOptions{Trunk: tr, CallerName: "x\r\nX-Evil: 1"}},
		"@ in caller id":      {"+1555", DialOptions{Trunk: tr, CallerID: "1@evil.test"}},
		"space in number":     {"+1 555", DialOptions{Trunk: tr}},
		"bad trunk":           {"+1555", DialOptions{Trunk: &Trunk{Name: "x", Host: "a b"}}},
		"CRLF in target":      {"sip:a@b\r\nX: y", DialOptions{Trunk: tr}},
	} {
		if _, err := ts.Dial(context.Background(), c.target, []byte(offerSDP), c.opts); err == nil {
			t.Errorf("%s: Dial succeeded", name)
		}
	}
	if n := p.count(isRequest("INVITE")); n != 0 {
		t.Errorf("%d INVITEs sent for bad input", n)
	}
}
