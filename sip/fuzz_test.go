package sip

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// FuzzInboundRequest throws one arbitrary datagram at a running Server and
// then checks that it still answers OPTIONS correctly: whatever the parser,
// the transaction layer or our handlers make of the bytes, the endpoint must
// neither crash nor wedge. One Server serves the whole fuzz process.
//
// The seed corpus in testdata/fuzz/FuzzInboundRequest holds RFC 4475
// torture messages copied from sipgo's sip/testdata/torture.
func FuzzInboundRequest(f *testing.F) {
	// Inbound calls are refused at once so that nothing outlives an input.
	ts := startServer(f, func(ctx context.Context, call *InboundCall) { _ = call.Reject(486, "") })
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	srv := net.UDPAddrFromAddrPort(ts.addr)
	local := conn.LocalAddr().String()

	f.Add([]byte("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKb\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>;tag=2\r\nCall-ID: 2\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:9>\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\nv=0"))
	f.Add([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKc\r\nCSeq: 1 BYE\r\nCall-ID: 3\r\n\r\n"))
	f.Add([]byte{})

	probe := 0
	buf := make([]byte, 65535)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := conn.WriteToUDP(data, srv); err != nil {
			t.Skip("datagram too large:", err)
		}
		probe++
		branch := fmt.Sprintf("z9hG4bK-probe-%d", probe)
		options := fmt.Sprintf("OPTIONS sip:probe@%s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=%s\r\nMax-Forwards: 70\r\n"+
			"From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:probe@%s>\r\n"+
			"Call-ID: probe-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
			ts.addr, local, branch, ts.addr, probe)
		if _, err := conn.WriteToUDP([]byte(options), srv); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(waitTimeout)
		_ = conn.SetReadDeadline(deadline)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("no answer to OPTIONS after input %q: %v", data, err)
			}
			msg, err := sipmsg.ParseMessage(buf[:n])
			if err != nil {
				continue // whatever the fuzzed input provoked
			}
			res, ok := msg.(*sipmsg.Response)
			if !ok || res.Via() == nil {
				continue
			}
			if b, _ := res.Via().Params.Get("branch"); b != branch {
				continue // a response to the fuzzed input itself
			}
			if res.StatusCode != 200 || header(res, "Allow") != allowedMethods {
				t.Fatalf("OPTIONS after input %q: %d, Allow %q", data, res.StatusCode, header(res, "Allow"))
			}
			return
		}
	})
}
