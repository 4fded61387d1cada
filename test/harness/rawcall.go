package harness

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// RawCall is a call placed by a raw UAC (RawSIP) with its RTP on a plain
// UDP socket: the test controls every byte of signalling and media.
type RawCall struct {
	SIP    *RawSIP
	D      *Dialog
	RTP    *net.UDPConn
	Remote *net.UDPAddr // where the gateway takes our RTP
	OK     *SIPMessage  // the 200 to the INVITE

	// The next packet's sequence number and timestamp, and the SSRC, of
	// SendRTP.
	Seq  uint16
	TS   uint32
	SSRC uint32
}

// Invite sends the INVITE of a new call from localIP, with extra header
// lines ("X-Customer-Id: 42") if given, and returns the call and the
// INVITE's final response (not yet ACKed).
func Invite(t testing.TB, localIP, gwAddr string, headers ...string) (*RawCall, *SIPMessage) {
	t.Helper()
	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(localIP)})
	if err != nil {
		t.Fatalf("harness: rtp socket: %v", err)
	}
	t.Cleanup(func() { _ = rtpConn.Close() })
	p := NewRawSIP(t, localIP, gwAddr)
	c := &RawCall{SIP: p, D: NewDialog(p.Addr(), gwAddr, "fault"), RTP: rtpConn, SSRC: 0x5EED0001, Seq: 1000, TS: 16000}
	p.Send(t, c.D.Request("INVITE", headers, OfferSDP(localIP, rtpConn.LocalAddr().(*net.UDPAddr).Port)))
	res, err := p.Await(t, 10*time.Second, true, IsFinal("INVITE"))
	if err != nil {
		t.Fatalf("harness: no final answer to INVITE: %v", err)
	}
	return c, res
}

// Dial places a call from localIP, requires 200 OK and ACKs it.
func Dial(t testing.TB, localIP, gwAddr string, headers ...string) *RawCall {
	t.Helper()
	c, res := Invite(t, localIP, gwAddr, headers...)
	if res.Code != 200 {
		t.Fatalf("harness: INVITE answered %q, want 200", res.StartLine)
	}
	c.Answered(t, res)
	return c
}

// Answered takes the 200's To tag and SDP, and ACKs it.
func (c *RawCall) Answered(t testing.TB, ok *SIPMessage) {
	t.Helper()
	c.OK = ok
	c.D.ToTag = ok.ToTag()
	addr, err := SDPAudioAddr(ok.Body)
	if err != nil {
		t.Fatal(err)
	}
	if c.Remote, err = net.ResolveUDPAddr("udp4", addr); err != nil {
		t.Fatal(err)
	}
	c.SIP.Send(t, c.D.AckFor(ok))
}

// Refused ACKs a final failure answer to the INVITE.
func (c *RawCall) Refused(t testing.TB, res *SIPMessage) {
	t.Helper()
	c.SIP.Send(t, c.D.AckFor(res))
}

// Hangup sends BYE and waits for its 200.
func (c *RawCall) Hangup(t testing.TB) {
	t.Helper()
	c.SIP.Send(t, c.D.Request("BYE", nil, nil))
	if _, err := c.SIP.Await(t, 5*time.Second, true, IsResponse("BYE", 200)); err != nil {
		t.Fatalf("harness: no 200 to our BYE: %v", err)
	}
}

// SendRTP sends one packet with the call's running sequence and timestamp.
func (c *RawCall) SendRTP(t testing.TB, pt uint8, payload []byte) {
	t.Helper()
	c.WriteRTP(t, pt, c.Seq, c.TS, c.SSRC, payload)
	c.Seq++
	c.TS += 160
}

// WriteRTP sends one RTP packet with every field given.
func (c *RawCall) WriteRTP(t testing.TB, pt uint8, seq uint16, ts, ssrc uint32, payload []byte) {
	t.Helper()
	pkt := make([]byte, 12+len(payload))
	pkt[0], pkt[1] = 0x80, pt&0x7F
	binary.BigEndian.PutUint16(pkt[2:], seq)
	binary.BigEndian.PutUint32(pkt[4:], ts)
	binary.BigEndian.PutUint32(pkt[8:], ssrc)
	copy(pkt[12:], payload)
	c.WriteRaw(t, pkt)
}

// WriteRaw sends any datagram to the gateway's RTP port.
func (c *RawCall) WriteRaw(t testing.TB, pkt []byte) {
	t.Helper()
	if _, err := c.RTP.WriteToUDP(pkt, c.Remote); err != nil {
		t.Fatalf("harness: rtp send: %v", err)
	}
}

// CountPayload reads RTP from the gateway for d and counts packets whose
// whole payload is fill bytes (the echo of frames we sent filled with it).
func (c *RawCall) CountPayload(fill byte, n int, d time.Duration) int {
	want := bytes.Repeat([]byte{fill}, n)
	buf := make([]byte, 4096)
	count := 0
	deadline := time.Now().Add(d)
	for {
		_ = c.RTP.SetReadDeadline(deadline)
		k, _, err := c.RTP.ReadFromUDP(buf)
		if err != nil {
			return count
		}
		if k >= 12 && bytes.Equal(buf[12:k], want) {
			count++
		}
	}
}
