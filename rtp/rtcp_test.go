package rtp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// report is a decoded SR/RR + SDES compound as the far end sees it.
type report struct {
	pt      uint8
	ssrc    uint32
	packets uint32 // SR only
	octets  uint32 // SR only
	blocks  int
	block   reportBlock
	cname   string
}

func decodeReport(t *testing.T, b []byte) report {
	t.Helper()
	var r report
	if len(b) < 8 || b[0]>>6 != 2 {
		t.Fatalf("not RTCP: %x", b)
	}
	size := (int(binary.BigEndian.Uint16(b[2:])) + 1) * 4
	r.pt, r.ssrc, r.blocks = b[1], be32(b, 4), int(b[0]&0x1f)
	off := 8
	if r.pt == rtcpSR {
		r.packets, r.octets = be32(b, 20), be32(b, 24)
		off = 28
	}
	if r.blocks == 1 {
		rb := b[off:]
		r.block = reportBlock{
			ssrc: be32(rb, 0), fractionLost: rb[4], cumulative: int64(be32(rb, 4) & 0xffffff),
			highestSeq: be32(rb, 8), jitter: be32(rb, 12), lsr: be32(rb, 16), dlsr: be32(rb, 20),
		}
	}
	sdes := b[size:]
	if len(sdes) < 12 || sdes[1] != rtcpSDES || sdes[8] != sdesCNAME || len(sdes)%4 != 0 {
		t.Fatalf("no SDES CNAME after report: %x", sdes)
	}
	r.cname = string(sdes[10 : 10+int(sdes[9])])
	return r
}

func TestRTCPReports(t *testing.T) {
	farPool, _ := testPool(t, 1, 0)
	farRTP, farRTCP, farPort, err := farPool.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer farRTP.Close()
	defer farRTCP.Close()
	far := &peer{t: t, conn: farRTP}
	farCtl := &peer{t: t, conn: farRTCP}

	s := openSession(t, Config{
		Remote:       netip.AddrPortFrom(loopback, uint16(farPort)),
		RTCPInterval: 40 * time.Millisecond,
		CNAME:        "leg@switchboard.test",
	})
	running(t, s, nil)
	for seq := uint16(10); seq < 15; seq++ {
		far.send(localAddr(s), pkt{seq: seq, ts: uint32(seq) * 160, ssrc: 0xabcd}.bytes())
	}
	waitFor(t, time.Second, "far packets", func() bool { return s.Stats().PacketsReceived == 5 })
	for range 3 {
		if err := s.WriteAudio(0, false, make([]byte, 160), 160); err != nil {
			t.Fatal(err)
		}
	}

	// Within a couple of intervals a SR arrives on the far end's RTCP port (RTP port + 1).
	var sr report
	deadline := time.Now().Add(2 * time.Second)
	for sr.pt != rtcpSR {
		if time.Now().After(deadline) {
			t.Fatal("no SR received")
		}
		sr = decodeReport(t, farCtl.recv(time.Second))
	}
	want := reportBlock{ssrc: 0xabcd, highestSeq: 14}
	if sr.ssrc != s.SSRC() || sr.packets != 3 || sr.octets != 480 || sr.blocks != 1 || sr.cname != "leg@switchboard.test" {
		t.Fatalf("SR %+v", sr)
	}
	if sr.block.ssrc != want.ssrc || sr.block.highestSeq != want.highestSeq || sr.block.cumulative != 0 || sr.block.fractionLost != 0 {
		t.Fatalf("SR report block %+v, want %+v", sr.block, want)
	}

	// The far end sends its own SR: our next RR (nothing sent since) echoes its timing.
	var farSR [28]byte
	farSR[0], farSR[1] = 0x80, rtcpSR
	binary.BigEndian.PutUint16(farSR[2:], 6)
	binary.BigEndian.PutUint32(farSR[4:], 0xabcd)
	binary.BigEndian.PutUint64(farSR[8:], 0x1122334455667788)
	farCtl.send(netip.AddrPortFrom(loopback, uint16(s.LocalPort()+1)), farSR[:])
	farCtl.send(netip.AddrPortFrom(loopback, uint16(s.LocalPort()+1)), []byte("garbage"))
	waitFor(t, time.Second, "SR received", func() bool { return s.Stats().RTCPReceived == 1 })

	deadline = time.Now().Add(2 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("no RR with LSR received")
		}
		rr := decodeReport(t, farCtl.recv(time.Second))
		if rr.pt != rtcpRR || rr.block.lsr == 0 {
			continue
		}
		if rr.block.lsr != 0x33445566 || rr.block.dlsr > 2*65536 {
			t.Fatalf("RR block %+v, want LSR 0x33445566 and a small DLSR", rr.block)
		}
		break
	}
	waitFor(t, time.Second, "RTCPSent counts both reports", func() bool { return s.Stats().RTCPSent >= 2 })
}

func TestParseRTCPIsLenient(t *testing.T) {
	sr := make([]byte, 52)
	n := putSR(sr, 7, senderInfo{ntp: 0xaaaabbbbccccdddd}, &reportBlock{ssrc: 9})
	rr := make([]byte, 32)
	putRR(rr, 7, nil)
	tests := []struct {
		name   string
		in     []byte
		valid  bool
		haveSR bool
	}{
		{"empty", nil, false, false},
		{"short", []byte{0x80, 200}, false, false},
		{"wrong version", []byte{0x40, 200, 0, 0}, false, false},
		{"length beyond datagram", []byte{0x80, 200, 0, 10, 0, 0, 0, 0}, false, false},
		{"sr", sr[:n], true, true},
		{"rr then truncated sr", append(rr[:8:8], sr[:20]...), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, haveSR, valid := parseRTCP(tt.in)
			if valid != tt.valid || haveSR != tt.haveSR {
				t.Fatalf("valid %v haveSR %v, want %v %v", valid, haveSR, tt.valid, tt.haveSR)
			}
			if haveSR && (got.ssrc != 7 || got.lsr != 0xbbbbcccc) {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestRTCPLatchesToPeerSource(t *testing.T) {
	far := newPeer(t)
	farCtl := newPeer(t) // RTCP from a port that is not RTP port + 1 (NAT)
	s := openSession(t, Config{Remote: far.addr(), Latch: true, RTCPInterval: 30 * time.Millisecond})
	running(t, s, nil)
	farCtl.send(netip.AddrPortFrom(loopback, uint16(s.LocalPort()+1)), putTestRR())
	b := farCtl.recv(2 * time.Second)
	if b[1] != rtcpRR {
		t.Fatalf("got %x", b)
	}
}

func putTestRR() []byte {
	b := make([]byte, 8)
	putRR(b, 1, nil)
	return b
}
