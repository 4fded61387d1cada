package sip

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

var testRegTuning = regTuning{backoffMin: 100 * time.Millisecond, backoffMax: 400 * time.Millisecond, attemptWait: 8 * time.Second, unregisterWait: time.Second}

// registrarPeer plays the registrar on a raw UDP peer. It hands out requests
// by CSeq, so sipgo's UDP retransmissions (every T1 = 25 ms here) of a
// request we have not answered yet are skipped.
type registrarPeer struct {
	*udpPeer
	last uint32 // CSeq of the last request taken
}

func (r *registrarPeer) next(method string) (*sipmsg.Request, netip.AddrPort) {
	r.t.Helper()
	got := r.take(method+" after CSeq "+fmt.Sprint(r.last), func(m *received) bool {
		req, ok := m.msg.(*sipmsg.Request)
		return ok && string(req.Method) == method && req.CSeq() != nil && req.CSeq().SeqNo > r.last
	})
	req := got.msg.(*sipmsg.Request)
	r.last = req.CSeq().SeqNo
	return req, got.from
}

func challenge(name, value string) func(*sipmsg.Response) {
	return func(res *sipmsg.Response) { res.AppendHeader(sipmsg.NewHeader(name, value)) }
}

func withHeader(name, value string) func(*sipmsg.Response) { return challenge(name, value) }

// checkDigest recomputes the response of an Authorization value from the
// RFC 2617 formulas and fails the test when it is wrong.
func checkDigest(t testing.TB, value, method, user, pass string) map[string]string {
	t.Helper()
	p, err := parseAuthParams(strings.TrimPrefix(value, "Digest "))
	if err != nil {
		t.Fatalf("Authorization %q: %v", value, err)
	}
	ha1 := md5hex(user + ":" + p["realm"] + ":" + pass)
	ha2 := md5hex(method + ":" + p["uri"])
	want := md5hex(ha1 + ":" + p["nonce"] + ":" + ha2)
	if p["qop"] == "auth" {
		want = md5hex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
	}
	if p["username"] != user || p["response"] != want {
		t.Fatalf("Authorization %q: username %q response %q, want %q %q", value, p["username"], p["response"], user, want)
	}
	return p
}

func regTrunk(p *udpPeer) Trunk {
	return Trunk{Name: "carrier", Host: "127.0.0.1", Port: p.port, Username: "alice", Password: "s3cret-pw"}
}

// startReg runs a registration with short backoffs until the test ends.
func startReg(t *testing.T, ts *testServer, tr Trunk, mon *TrunkMonitor) (*Registration, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	r := ts.register(ctx, tr, mon, testRegTuning)
	t.Cleanup(func() { cancel(); closed(t, r.Done(), "registration to stop") })
	return r, cancel
}

func TestRegisterDigestRefreshUnregister(t *testing.T) {
	ts := startServer(t, nil)
	reg := &registrarPeer{udpPeer: newPeer(t, ts.addr)}
	r, cancel := startReg(t, ts, regTrunk(reg.udpPeer), nil)

	req1, from := reg.next("REGISTER")
	if req1.GetHeader("Authorization") != nil {
		t.Error("first REGISTER already has credentials")
	}
	if req1.Recipient.String() != "sip:"+reg.addr() || req1.From().Address.User != "alice" || req1.To().Address.User != "alice" {
		t.Errorf("REGISTER %s From %s To %s", req1.Recipient.String(), req1.From().Value(), req1.To().Value())
	}
	if c := req1.Contact(); c == nil || c.Address.User != "alice" || c.Address.Host != "127.0.0.1" || c.Address.Port != int(ts.addr.Port()) {
		t.Errorf("Contact %v", req1.Contact())
	}
	if v := req1.Via(); !v.Params.Has("rport") || header(req1, "Expires") != "3600" {
		t.Errorf("Via %s Expires %q", v.Value(), header(req1, "Expires"))
	}
	if from != ts.addr {
		t.Errorf("REGISTER came from %s, want the listener %s", from, ts.addr)
	}
	reg.reply(req1, from, 401, "Unauthorized", challenge("WWW-Authenticate", `Digest realm="reg.test", nonce="n1", qop="auth", opaque="op"`))

	req2, from := reg.next("REGISTER")
	p := checkDigest(t, header(req2, "Authorization"), "REGISTER", "alice", "s3cret-pw")
	if p["nc"] != "00000001" || p["opaque"] != "op" || p["uri"] != req2.Recipient.String() {
		t.Errorf("Authorization params %v", p)
	}
	if req2.CallID().Value() != req1.CallID().Value() || req2.CSeq().SeqNo != req1.CSeq().SeqNo+1 {
		t.Errorf("retry Call-ID/CSeq %s %d after %s %d", req2.CallID().Value(), req2.CSeq().SeqNo, req1.CallID().Value(), req1.CSeq().SeqNo)
	}
	// Our contact's expires parameter wins over the Expires header.
	contact := req2.Contact().Address.String()
	reg.reply(req2, from, 200, "OK", withHeader("Contact", "<"+contact+">;expires=1"), withHeader("Expires", "3600"),
		withHeader("Contact", "<sip:other@192.0.2.1>;expires=50"))
	answered := time.Now()
	eventually(t, "registered", func() bool { return r.State().State == StateRegistered })
	st := r.State()
	if st.Expires != time.Second || st.Registrar != reg.addr() || st.Trunk != "carrier" || st.LastError != "" {
		t.Errorf("state %+v", st)
	}
	if d := time.Until(st.NextAttempt); d < 500*time.Millisecond || d > 800*time.Millisecond {
		t.Errorf("refresh scheduled in %v, want ~750ms (75%% of 1s)", d)
	}

	// The refresh: 75% of the granted second, same Call-ID, next CSeq, and
	// the held nonce reused with the next nonce count.
	req3, from := reg.next("REGISTER")
	if d := time.Since(answered); d < 600*time.Millisecond || d > 1200*time.Millisecond {
		t.Errorf("refresh came %v after the 200, want ~750ms", d)
	}
	if req3.CallID().Value() != req1.CallID().Value() || req3.CSeq().SeqNo != req2.CSeq().SeqNo+1 {
		t.Errorf("refresh Call-ID/CSeq changed")
	}
	if p := checkDigest(t, header(req3, "Authorization"), "REGISTER", "alice", "s3cret-pw"); p["nc"] != "00000002" || p["nonce"] != "n1" {
		t.Errorf("refresh Authorization %v", p)
	}
	reg.reply(req3, from, 200, "OK", withHeader("Expires", "30"))
	eventually(t, "refreshed", func() bool { return r.State().Expires == 30*time.Second })

	cancel()
	req4, from := reg.next("REGISTER")
	if header(req4, "Expires") != "0" || req4.CSeq().SeqNo != req3.CSeq().SeqNo+1 {
		t.Errorf("unregister Expires %q CSeq %d", header(req4, "Expires"), req4.CSeq().SeqNo)
	}
	reg.reply(req4, from, 200, "OK")
	closed(t, r.Done(), "Done after unregister")
	if st := r.State(); st.State != StateUnregistered {
		t.Errorf("state after stop: %+v", st)
	}
}

func TestRegister423MinExpires(t *testing.T) {
	ts := startServer(t, nil)
	reg := &registrarPeer{udpPeer: newPeer(t, ts.addr)}
	tr := regTrunk(reg.udpPeer)
	tr.Expires = 60 * time.Second
	r, _ := startReg(t, ts, tr, nil)
	req, from := reg.next("REGISTER")
	reg.reply(req, from, 423, "Interval Too Brief", withHeader("Min-Expires", "120"))
	req, from = reg.next("REGISTER")
	if header(req, "Expires") != "120" {
		t.Fatalf("retry Expires %q, want the Min-Expires 120", header(req, "Expires"))
	}
	reg.reply(req, from, 200, "OK") // no Expires: what we asked for
	eventually(t, "registered", func() bool { return r.State().State == StateRegistered })
	if st := r.State(); st.Expires != 120*time.Second {
		t.Errorf("state %+v", st)
	}
}

// Wrong credentials: one authenticated try, then failing with backoff, not
// a loop. stale=true is not a failure.
func TestRegisterWrongCredentialsAndStale(t *testing.T) {
	ts := startServer(t, nil)
	reg := &registrarPeer{udpPeer: newPeer(t, ts.addr)}
	r, _ := startReg(t, ts, regTrunk(reg.udpPeer), nil)
	chal := `Digest realm="reg.test", nonce="n1"`
	req, from := reg.next("REGISTER")
	reg.reply(req, from, 401, "Unauthorized", challenge("WWW-Authenticate", chal))
	req, from = reg.next("REGISTER")
	reg.reply(req, from, 401, "Unauthorized", challenge("WWW-Authenticate", `Digest realm="reg.test", nonce="n2"`))
	eventually(t, "failing", func() bool { return r.State().State == StateFailing })
	st := r.State()
	if !strings.Contains(st.LastError, "rejected") || strings.Contains(st.LastError, "s3cret") {
		t.Errorf("LastError %q", st.LastError)
	}
	sent := reg.count(isRequest("REGISTER"))
	time.Sleep(50 * time.Millisecond) // below the 100 ms backoff floor (-20%)
	if n := reg.count(isRequest("REGISTER")); n != sent {
		t.Errorf("%d more REGISTERs right after the rejection", n-sent)
	}

	// After the backoff: the reused nonce is refused as stale, the new one works.
	req, from = reg.next("REGISTER")
	if p := checkDigest(t, header(req, "Authorization"), "REGISTER", "alice", "s3cret-pw"); p["nonce"] != "n2" {
		t.Errorf("retry did not reuse the last nonce: %v", p)
	}
	reg.reply(req, from, 401, "Unauthorized", challenge("WWW-Authenticate", `Digest realm="reg.test", nonce="n3", stale=true`))
	req, from = reg.next("REGISTER")
	if p := checkDigest(t, header(req, "Authorization"), "REGISTER", "alice", "s3cret-pw"); p["nonce"] != "n3" {
		t.Errorf("stale retry nonce %v", p)
	}
	reg.reply(req, from, 200, "OK")
	eventually(t, "registered", func() bool { return r.State().State == StateRegistered })
}

// The registrar sees us at another address (NAT): the contact moves there,
// the old one is removed in the same REGISTER, and refreshes keep the new.
func TestRegisterNATContactChange(t *testing.T) {
	ts := startServer(t, nil)
	reg := &registrarPeer{udpPeer: newPeer(t, ts.addr)}
	r, _ := startReg(t, ts, regTrunk(reg.udpPeer), nil)
	nat := func(res *sipmsg.Response) {
		res.Via().Params.Add("received", "192.0.2.10")
		res.Via().Params.Add("rport", "40000")
	}
	req, from := reg.next("REGISTER")
	reg.reply(req, from, 200, "OK", nat)
	req, from = reg.next("REGISTER")
	contacts := req.GetHeaders("Contact")
	if len(contacts) != 2 || !strings.HasPrefix(contacts[0].Value(), "<sip:alice@192.0.2.10:40000>") ||
		contacts[1].Value() != fmt.Sprintf("<sip:alice@127.0.0.1:%d>;expires=0", ts.addr.Port()) {
		t.Fatalf("contacts after NAT discovery: %v", contacts)
	}
	reg.reply(req, from, 200, "OK", nat, withHeader("Expires", "1"))
	eventually(t, "registered", func() bool { return r.State().State == StateRegistered })
	req, _ = reg.next("REGISTER") // refresh
	if c := req.GetHeaders("Contact"); len(c) != 1 || c[0].Value() != "<sip:alice@192.0.2.10:40000>" {
		t.Errorf("refresh contacts %v", c)
	}
}

// A registrar that stops answering: failing with a "no answer" error, then
// registered again once it answers, within the backoff bound.
func TestRegisterRecovers(t *testing.T) {
	ts := startServer(t, nil)
	reg := &registrarPeer{udpPeer: newPeer(t, ts.addr)}
	r, _ := startReg(t, ts, regTrunk(reg.udpPeer), nil)
	reg.next("REGISTER") // unanswered: Timer F (64*T1 = 1.6 s here)
	eventually(t, "failing", func() bool { return r.State().State == StateFailing })
	st := r.State()
	if !strings.Contains(st.LastError, "no answer") || time.Until(st.NextAttempt) > 480*time.Millisecond {
		t.Errorf("state %+v", st)
	}
	req, from := reg.next("REGISTER")
	reg.reply(req, from, 200, "OK")
	eventually(t, "registered", func() bool { return r.State().State == StateRegistered })
	if st := r.State(); st.LastError != "" || time.Since(st.Since) > time.Second {
		t.Errorf("state after recovery %+v", st)
	}
}
