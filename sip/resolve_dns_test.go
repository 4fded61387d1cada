package sip

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// dnsStub is a tiny authoritative DNS server on 127.0.0.1 answering SRV, A
// and AAAA from maps, hand-encoded (golang.org/x/net is not a dependency).
// Unknown names get NXDOMAIN. It lets the tests use a real *net.Resolver
// without a query ever leaving loopback.
type dnsStub struct {
	conn *net.UDPConn
	srv  map[string][]net.SRV    // "_sip._udp.carrier.test." -> records
	ips  map[string][]netip.Addr // "a.carrier.test." -> A and AAAA
	mu   sync.Mutex
	seen []string // "SRV _sip._udp.carrier.test."
}

func startDNSStub(t testing.TB, srv map[string][]net.SRV, ips map[string][]netip.Addr) *dnsStub {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsStub{conn: conn, srv: srv, ips: ips}
	done := make(chan struct{})
	go d.serve(done)
	t.Cleanup(func() { conn.Close(); <-done })
	return d
}

// resolver is a Go resolver whose every query goes to the stub.
func (d *dnsStub) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, "udp", d.conn.LocalAddr().String())
	}}
}

func (d *dnsStub) queries() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.seen...)
}

func (d *dnsStub) serve(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if out, err := d.answer(buf[:n]); err == nil {
			_, _ = d.conn.WriteToUDPAddrPort(out, from)
		}
	}
}

const (
	dnsTypeA    = 1
	dnsTypeAAAA = 28
	dnsTypeSRV  = 33
)

// answer builds the response to one query: header, the question copied,
// then the answers, each naming the question by a pointer to offset 12.
func (d *dnsStub) answer(q []byte) ([]byte, error) {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil, errors.New("not one question")
	}
	name, end, err := readName(q, 12)
	if err != nil || end+4 > len(q) {
		return nil, errors.New("bad question")
	}
	qtype := binary.BigEndian.Uint16(q[end:])
	question := q[12 : end+4]
	key := strings.ToLower(name)
	d.mu.Lock()
	d.seen = append(d.seen, map[uint16]string{dnsTypeA: "A", dnsTypeAAAA: "AAAA", dnsTypeSRV: "SRV"}[qtype]+" "+key)
	d.mu.Unlock()

	var rrs [][]byte // RDATA of each answer
	_, knownSRV := d.srv[key]
	_, knownIP := d.ips[key]
	switch qtype {
	case dnsTypeSRV:
		for _, s := range d.srv[key] {
			rd := binary.BigEndian.AppendUint16(nil, s.Priority)
			rd = binary.BigEndian.AppendUint16(rd, s.Weight)
			rd = binary.BigEndian.AppendUint16(rd, s.Port)
			rrs = append(rrs, appendName(rd, s.Target))
		}
	case dnsTypeA, dnsTypeAAAA:
		for _, a := range d.ips[key] {
			if a.Is4() == (qtype == dnsTypeA) {
				rrs = append(rrs, a.AsSlice())
			}
		}
	}
	flags := uint16(0x8000 | 0x0400 | 0x0080)        // response, authoritative, recursion available
	flags |= binary.BigEndian.Uint16(q[2:]) & 0x0100 // echo RD
	if !knownSRV && !knownIP {
		flags |= 3 // NXDOMAIN
	}
	out := make([]byte, 0, 512)
	out = append(out, q[0], q[1])
	out = binary.BigEndian.AppendUint16(out, flags)
	out = binary.BigEndian.AppendUint16(out, 1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(rrs)))
	out = append(out, 0, 0, 0, 0) // no authority, no additional
	out = append(out, question...)
	for _, rd := range rrs {
		out = append(out, 0xC0, 12) // the question's name
		out = binary.BigEndian.AppendUint16(out, qtype)
		out = binary.BigEndian.AppendUint16(out, 1) // IN
		out = binary.BigEndian.AppendUint32(out, 60)
		out = binary.BigEndian.AppendUint16(out, uint16(len(rd)))
		out = append(out, rd...)
	}
	return out, nil
}

// readName reads an uncompressed name (queries carry no pointers).
func readName(b []byte, off int) (string, int, error) {
	var labels []string
	for off < len(b) {
		l := int(b[off])
		off++
		if l == 0 {
			return strings.Join(labels, ".") + ".", off, nil
		}
		if l > 63 || off+l > len(b) {
			return "", 0, errors.New("bad label")
		}
		labels = append(labels, string(b[off:off+l]))
		off += l
	}
	return "", 0, errors.New("unterminated name")
}

func appendName(b []byte, name string) []byte {
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}
