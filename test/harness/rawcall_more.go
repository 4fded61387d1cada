package harness

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// InviteWith is Invite with extra header lines ("X-Customer-Id: 42") in the
// INVITE.
func InviteWith(t testing.TB, localIP, gwAddr string, headers ...string) (*RawCall, *SIPMessage) {
	t.Helper()
	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(localIP)})
	if err != nil {
		t.Fatalf("harness: rtp socket: %v", err)
	}
	t.Cleanup(func() { _ = rtpConn.Close() })
	p := NewRawSIP(t, localIP, gwAddr)
	c := &RawCall{SIP: p, D: NewDialog(p.Addr(), gwAddr, "fault"), RTP: rtpConn, SSRC: 0x5EED0002, Seq: 2000, TS: 32000}
	p.Send(t, c.D.Request("INVITE", headers, OfferSDP(localIP, rtpConn.LocalAddr().(*net.UDPAddr).Port)))
	res, err := p.Await(t, 10*time.Second, true, IsFinal("INVITE"))
	if err != nil {
		t.Fatalf("harness: no final answer to INVITE: %v", err)
	}
	return c, res
}

// DialWith is Dial with extra INVITE headers.
func DialWith(t testing.TB, localIP, gwAddr string, headers ...string) *RawCall {
	t.Helper()
	c, res := InviteWith(t, localIP, gwAddr, headers...)
	if res.Code != 200 {
		t.Fatalf("harness: INVITE answered %q, want 200", res.StartLine)
	}
	c.Answered(t, res)
	return c
}

// SendDTMF sends one RFC 4733 event (code 0-9, 10 for *, 11 for #) on
// payload type 101, as a phone does: a start packet, one update and three
// end packets, all with the event's timestamp. The audio timestamp moves on
// by the event's duration.
func (c *RawCall) SendDTMF(t testing.TB, code byte) {
	t.Helper()
	ts := c.TS
	for i, d := range []uint16{160, 320, 480, 480, 480} {
		payload := make([]byte, 4)
		payload[0] = code
		payload[1] = 10 // volume -10 dBm0
		if i >= 2 {
			payload[1] |= 0x80 // E: end of event
		}
		binary.BigEndian.PutUint16(payload[2:], d)
		c.WriteRTP(t, 101, c.Seq, ts, c.SSRC, payload)
		c.Seq++
	}
	c.TS += 480
}
