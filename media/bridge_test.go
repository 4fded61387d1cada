package media

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
	"github.com/zaf/g711"
)

// farEnd is a raw RTP endpoint on the other side of a leg.
type farEnd struct {
	conn *net.UDPConn
	leg  netip.AddrPort
	seq  uint16
	ts   uint32
}

func newFarEnd(t testing.TB) *farEnd {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &farEnd{conn: c}
}

func (f *farEnd) addr() netip.AddrPort { return f.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (f *farEnd) send(t *testing.T, pt uint8, marker bool, ts uint32, payload []byte) {
	t.Helper()
	f.seq++
	p := pionrtp.Packet{Header: pionrtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: f.seq, Timestamp: ts, SSRC: 0x1234}, Payload: payload}
	buf, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.conn.WriteToUDPAddrPort(buf, f.leg); err != nil {
		t.Fatal(err)
	}
}

// recv reads packets until one with payload type pt arrives.
func (f *farEnd) recv(t *testing.T, pt uint8) *pionrtp.Packet {
	t.Helper()
	buf := make([]byte, 1500)
	deadline := time.Now().Add(2 * time.Second)
	for {
		_ = f.conn.SetReadDeadline(deadline)
		n, _, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no packet with payload type %d: %v", pt, err)
		}
		var p pionrtp.Packet
		if p.Unmarshal(buf[:n]) == nil && p.PayloadType == pt {
			return &p
		}
	}
}

// quiet reports whether nothing arrives for d.
func (f *farEnd) quiet(d time.Duration) bool {
	buf := make([]byte, 1500)
	_ = f.conn.SetReadDeadline(time.Now().Add(d))
	_, _, err := f.conn.ReadFromUDPAddrPort(buf)
	return err != nil
}

// bridgedLegs starts two legs, one per far end, and bridges them.
func bridgedLegs(t *testing.T, codecA, codecB Codec) (caller, human *farEnd, a, b *Leg) {
	t.Helper()
	pool := testPool(t, 33000)
	caller, human = newFarEnd(t), newFarEnd(t)
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	if a, err = OpenLeg(LegConfig{Pool: pool}, []uint8{codecA.PayloadType, 101}); err != nil {
		t.Fatal(err)
	}
	if b, err = OpenLeg(LegConfig{Pool: pool}, []uint8{codecB.PayloadType, 101}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); a.Close(); b.Close() })
	if err := a.Start(ctx, negotiatedFor(caller.addr(), codecA, 20*time.Millisecond), &sinkLog{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, negotiatedFor(human.addr(), codecB, 20*time.Millisecond), &sinkLog{}); err != nil {
		t.Fatal(err)
	}
	caller.leg = netip.AddrPortFrom(loopback, uint16(a.LocalPort()))
	human.leg = netip.AddrPortFrom(loopback, uint16(b.LocalPort()))
	if err := Bridge(a, b); err != nil {
		t.Fatal(err)
	}
	// Whatever the pacers sent before the bridge is read away.
	for !caller.quiet(60*time.Millisecond) || !human.quiet(60*time.Millisecond) {
	}
	return caller, human, a, b
}

func TestBridgeRelaysLegToLeg(t *testing.T) {
	tone := make([]byte, 160)
	Encode(PCMU, tone, Tone(440, 20*time.Millisecond, 0.5))
	alawTone := make([]byte, 160)
	for i, c := range tone {
		alawTone[i] = g711.Ulaw2AlawFrame(c)
	}
	tests := []struct {
		name           string
		codecA, codecB Codec
		want           []byte // what the human gets for tone
	}{
		{"same codec: payload untouched", pcmu, pcmu, tone},
		{"PCMU to PCMA", pcmu, pcma, alawTone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			caller, human, _, _ := bridgedLegs(t, tc.codecA, tc.codecB)
			caller.send(t, tc.codecA.PayloadType, true, 1000, tone)
			got := human.recv(t, tc.codecB.PayloadType)
			if !bytes.Equal(got.Payload, tc.want) {
				t.Errorf("human got %x..., want %x...", got.Payload[:8], tc.want[:8])
			}
			if !got.Marker {
				t.Errorf("first relayed packet has no marker")
			}
			// The next packet after a lost one keeps the clock: +320.
			caller.send(t, tc.codecA.PayloadType, false, 1320, tone)
			next := human.recv(t, tc.codecB.PayloadType)
			if d := next.Timestamp - got.Timestamp; d != 320 {
				t.Errorf("timestamp advanced %d across a lost packet, want 320", d)
			}
			if next.SSRC != got.SSRC || next.SequenceNumber != got.SequenceNumber+1 {
				t.Errorf("relay is not one stream: ssrc %x->%x seq %d->%d", got.SSRC, next.SSRC, got.SequenceNumber, next.SequenceNumber)
			}
			// And back the other way.
			human.send(t, tc.codecB.PayloadType, true, 5000, tc.want)
			back := caller.recv(t, tc.codecA.PayloadType)
			wantBack := tone
			if tc.codecA != tc.codecB {
				wantBack = g711.Alaw2Ulaw(tc.want) // A-law to µ-law is not the identity
			}
			if !bytes.Equal(back.Payload, wantBack) {
				t.Errorf("caller got %x..., want %x...", back.Payload[:8], wantBack[:8])
			}
			// Pacers stay quiet: no comfort noise between relayed packets.
			if !human.quiet(100 * time.Millisecond) {
				t.Errorf("the human's leg sent audio nobody relayed")
			}
		})
	}
}

func TestBridgePassesDTMFEvents(t *testing.T) {
	caller, human, _, _ := bridgedLegs(t, pcmu, pcma)
	tone := make([]byte, 160)
	caller.send(t, 0, true, 8000, tone)
	human.recv(t, 8)
	// Digit 5: start, continuation, end sent three times, one timestamp.
	for i, ev := range [][]byte{{5, 10, 0, 160}, {5, 10, 1, 64}, {5, 138, 1, 224}, {5, 138, 1, 224}} {
		caller.send(t, 101, i == 0, 8160, ev)
	}
	var ts uint32
	for i := range 4 {
		p := human.recv(t, 101)
		if p.Payload[0] != 5 {
			t.Fatalf("event %d is digit %d, want 5", i, p.Payload[0])
		}
		if i == 0 {
			ts = p.Timestamp
			if !p.Marker {
				t.Errorf("event start without marker")
			}
		} else if p.Timestamp != ts {
			t.Errorf("event packet %d timestamp %d, want %d (the event's start)", i, p.Timestamp, ts)
		}
	}
}

func TestUnbridgeResumesPacing(t *testing.T) {
	caller, human, a, b := bridgedLegs(t, pcmu, pcmu)
	Unbridge(a, b)
	human.recv(t, 0) // comfort silence from b's pacer again
	caller.send(t, 0, true, 100, make([]byte, 160))
	// The caller's packet is not relayed any more: b only paces silence.
	if p := human.recv(t, 0); p.SSRC == 0x1234 {
		t.Errorf("packet relayed after Unbridge")
	}
}

// The bridge's hot path: one packet in on a leg, one out on the other.
func BenchmarkBridgeRelay(b *testing.B) {
	pool := testPool(b, 33400)
	from, err := OpenLeg(LegConfig{Pool: pool}, []uint8{0, 101})
	if err != nil {
		b.Fatal(err)
	}
	defer from.Close()
	to, err := OpenLeg(LegConfig{Pool: pool}, []uint8{8, 101})
	if err != nil {
		b.Fatal(err)
	}
	defer to.Close()
	drain := newFarEnd(b) // where the relayed packets go
	from.neg = negotiatedFor(netip.AddrPort{}, pcmu, 20*time.Millisecond)
	to.neg = negotiatedFor(drain.addr(), pcma, 20*time.Millisecond)
	to.applyRemote(to.neg)
	r, err := newRelay(from, to)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 160)
	p := &pionrtp.Packet{Header: pionrtp.Header{Version: 2, PayloadType: 0}, Payload: payload}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.SequenceNumber++
		p.Timestamp += 160
		r.forward(p)
	}
}
