package sip

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// autoAnswer answers every request of method the peer receives with the
// code in *code (0: stay silent, like a dead host) until the test ends.
// It writes to the socket directly: t.Fatal is not allowed off the test
// goroutine.
func autoAnswer(t *testing.T, p *udpPeer, method string, code *atomic.Int32) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var todo []*received
			p.mu.Lock()
			for _, r := range p.log {
				if req, ok := r.msg.(*sipmsg.Request); ok && !r.used && string(req.Method) == method {
					r.used = true
					todo = append(todo, r)
				}
			}
			p.mu.Unlock()
			for _, r := range todo {
				if c := int(code.Load()); c != 0 {
					req := r.msg.(*sipmsg.Request)
					req.SetSource(r.from.String())
					res := sipmsg.NewResponseFromRequest(req, c, "Whatever", nil)
					_, _ = p.conn.WriteToUDPAddrPort([]byte(res.String()), r.from)
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// firstRequest returns the first request of method the peer got, answered
// or not.
func firstRequest(t *testing.T, p *udpPeer, method string) *sipmsg.Request {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.log {
		if req, ok := r.msg.(*sipmsg.Request); ok && string(req.Method) == method {
			return req
		}
	}
	t.Fatalf("no %s received", method)
	return nil
}

func startMonitor(t *testing.T, ts *testServer, tr Trunk, r Resolver) *TrunkMonitor {
	ctx, cancel := context.WithCancel(context.Background())
	m := ts.Monitor(ctx, tr, r)
	t.Cleanup(func() { cancel(); closed(t, m.Done(), "monitor to stop") })
	return m
}

// Any answer means alive (404 here); three unanswered probes move to the
// next address, whose 405 is alive too; a registration follows the move.
func TestMonitorFailover(t *testing.T) {
	ts := startServer(t, nil)
	a, b := newPeer(t, ts.addr), newPeer(t, ts.addr)
	var codeA, codeB atomic.Int32
	codeA.Store(404)
	codeB.Store(405)
	autoAnswer(t, a, "OPTIONS", &codeA)
	autoAnswer(t, b, "OPTIONS", &codeB)
	regCode := &atomic.Int32{}
	regCode.Store(200)
	autoAnswer(t, a, "REGISTER", regCode)
	autoAnswer(t, b, "REGISTER", regCode)

	tr := Trunk{Name: "carrier", Host: "carrier.test", Username: "alice", KeepAlive: 100 * time.Millisecond,
		Addresses: []string{a.addr(), b.addr()}}
	m := startMonitor(t, ts, tr, noResolver{t})
	eventually(t, "address A up", func() bool { return m.Up() && m.Current().String() == a.addr() })
	r, _ := startReg(t, ts, tr, m)
	eventually(t, "registered at A", func() bool { return r.State().Registrar == a.addr() && r.State().State == StateRegistered })

	req := firstRequest(t, a, "OPTIONS") // already answered; look at its form
	if req.Recipient.String() != "sip:carrier.test" || req.From().Address.User != "alice" || !req.Via().Params.Has("rport") {
		t.Errorf("OPTIONS %s From %s Via %s", req.Recipient.String(), req.From().Value(), req.Via().Value())
	}

	codeA.Store(0) // A dies
	down := time.Now()
	eventually(t, "failover to B", func() bool { return m.Current().String() == b.addr() })
	if d := time.Since(down); d < 200*time.Millisecond {
		t.Errorf("failed over after %v: fewer than 3 probe timeouts of 100 ms", d)
	}
	eventually(t, "B up", m.Up)
	eventually(t, "registered at B", func() bool { return r.State().Registrar == b.addr() && r.State().State == StateRegistered })
}

// The monitor resolves through a real *net.Resolver talking to the stub DNS
// server: SRV order decides the first address.
func TestMonitorStubDNS(t *testing.T) {
	ts := startServer(t, nil)
	first, second := newPeer(t, ts.addr), newPeer(t, ts.addr)
	d := startDNSStub(t,
		map[string][]net.SRV{"_sip._udp.carrier.test.": {
			{Target: "two.carrier.test.", Port: uint16(second.port), Priority: 20},
			{Target: "one.carrier.test.", Port: uint16(first.port), Priority: 10},
		}},
		map[string][]netip.Addr{"one.carrier.test.": {netip.MustParseAddr("127.0.0.1")}, "two.carrier.test.": {netip.MustParseAddr("127.0.0.1")}})
	var code atomic.Int32
	code.Store(200)
	autoAnswer(t, first, "OPTIONS", &code)
	m := startMonitor(t, ts, Trunk{Name: "dns", Host: "carrier.test", KeepAlive: 100 * time.Millisecond}, d.resolver())
	eventually(t, "first SRV target up", func() bool { return m.Up() && m.Current().String() == first.addr() })
	if got := m.Addresses(); len(got) != 2 || got[1].String() != second.addr() {
		t.Errorf("addresses %v", got)
	}
}

// Without keep-alive the monitor only resolves, and reports up.
func TestMonitorNoKeepAlive(t *testing.T) {
	ts := startServer(t, nil)
	p := newPeer(t, ts.addr)
	m := startMonitor(t, ts, Trunk{Name: "quiet", Host: "127.0.0.1", Port: p.port}, noResolver{t})
	eventually(t, "resolved", func() bool { return m.Up() && m.Current().String() == p.addr() })
	time.Sleep(50 * time.Millisecond)
	if n := p.count(isRequest("OPTIONS")); n != 0 {
		t.Errorf("%d OPTIONS sent with keep-alive off", n)
	}
}
