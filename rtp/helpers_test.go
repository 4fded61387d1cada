package rtp

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// testPool returns a pool of n pairs on a random loopback range whose ports were all free a
// moment ago, so tests running in parallel (here or in other packages) rarely collide.
func testPool(t testing.TB, pairs int, quarantine time.Duration) (*PortPool, int) {
	t.Helper()
	for range 50 {
		base := 20000 + 2*rand.IntN(19000)
		if !rangeFree(base, 2*pairs) {
			continue
		}
		p, err := NewPortPool(loopback, base, base+2*pairs-1, quarantine)
		if err != nil {
			t.Fatal(err)
		}
		return p, base
	}
	t.Fatal("no free port range found")
	return nil, 0
}

func rangeFree(base, n int) bool {
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for port := base; port < base+n; port++ {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, uint16(port))))
		if err != nil {
			return false
		}
		conns = append(conns, c)
	}
	return true
}

// peer is a raw UDP socket standing in for the far end.
type peer struct {
	t    testing.TB
	conn *net.UDPConn
}

func newPeer(t testing.TB) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, conn: c}
}

func (p *peer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *peer) send(to netip.AddrPort, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

// recv reads one datagram or fails the test after timeout.
func (p *peer) recv(timeout time.Duration) []byte {
	p.t.Helper()
	b, ok := p.tryRecv(timeout)
	if !ok {
		p.t.Fatalf("peer %s: nothing received within %v", p.addr(), timeout)
	}
	return b
}

func (p *peer) tryRecv(timeout time.Duration) ([]byte, bool) {
	buf := make([]byte, 2048)
	p.conn.SetReadDeadline(time.Now().Add(timeout))
	n, _, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, false
	}
	return buf[:n], true
}

type pkt struct {
	seq     uint16
	ts      uint32
	ssrc    uint32
	pt      uint8
	marker  bool
	payload []byte
}

func (p pkt) bytes() []byte {
	payload := p.payload
	if payload == nil {
		payload = []byte{0xd5, 0xd5, 0xd5, 0xd5}
	}
	b, err := (&rtp.Packet{Header: rtp.Header{
		Version: 2, Marker: p.marker, PayloadType: p.pt, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: p.ssrc,
	}, Payload: payload}).Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// received is a thread-safe log of delivered packets.
type received struct {
	mu   sync.Mutex
	pkts []pkt
}

func (r *received) handle(p *rtp.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pkts = append(r.pkts, pkt{
		seq: p.SequenceNumber, ts: p.Timestamp, ssrc: p.SSRC, pt: p.PayloadType, marker: p.Marker,
		payload: append([]byte(nil), p.Payload...),
	})
}

func (r *received) snapshot() []pkt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pkt(nil), r.pkts...)
}

func (r *received) seqs() []uint16 {
	var out []uint16
	for _, p := range r.snapshot() {
		out = append(out, p.seq)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// running starts ReadLoop and returns a channel with its result. Cleanup closes the session
// and waits for ReadLoop to end.
func running(t testing.TB, s *Session, handle func(*rtp.Packet)) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	ended := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- s.ReadLoop(ctx, handle)
		close(ended)
	}()
	t.Cleanup(func() {
		cancel()
		s.Close()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Error("ReadLoop did not end")
		}
	})
	return done
}

func openSession(t testing.TB, cfg Config) *Session {
	t.Helper()
	if cfg.Pool == nil {
		cfg.Pool, _ = testPool(t, 2, 0)
	}
	if cfg.PayloadTypes == nil {
		cfg.PayloadTypes = []uint8{0, 8, 101}
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func localAddr(s *Session) netip.AddrPort {
	return netip.AddrPortFrom(loopback, uint16(s.LocalPort()))
}

func waitErr(t testing.TB, done <-chan error, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		t.Fatalf("ReadLoop still running after %v", timeout)
		return errors.New("unreachable")
	}
}

// be32 reads a big-endian uint32 at off.
func be32(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }
