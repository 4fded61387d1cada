package rtp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// FuzzHandleRTCP feeds framed datagrams (see frame) to the RTCP receive
// path of a latching session whose RTP peer is source 0.
func FuzzHandleRTCP(f *testing.F) {
	var sr [52]byte
	n := putSR(sr[:], 7, senderInfo{ntp: 0x0102030405060708, rtpTS: 160, packets: 3, octets: 480},
		&reportBlock{ssrc: 9, fractionLost: 1, cumulative: -3, highestSeq: 70000, jitter: 12})
	var rr [32]byte
	m := putRR(rr[:], 7, &reportBlock{ssrc: 9})
	var sdes [64]byte
	k := putSDES(sdes[:], 7, "switchboard")
	compound := append(append(append([]byte(nil), sr[:n]...), sdes[:k]...), rr[:m]...)
	f.Add(frame(0, sr[:n]))
	f.Add(frame(0, compound))
	f.Add(frame(1, compound))
	f.Add(append(frame(1, rr[:m]), frame(0, sr[:28])...))
	f.Add(frame(0, sr[:27], sr[:4], []byte{0x80, 200, 0xff, 0xff}, []byte{0x40, 200, 0, 0}))

	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := newSession(Config{PayloadTypes: []uint8{0}, Latch: true})
		if err != nil {
			t.Fatal(err)
		}
		sources := [2]netip.AddrPort{
			netip.MustParseAddrPort("192.0.2.1:4001"),
			netip.MustParseAddrPort("192.0.2.2:4001"),
		}
		s.SetRemote(netip.MustParseAddrPort("192.0.2.1:4000"))
		now := time.Unix(1_700_000_000, 0)
		unframe(data, func(src byte, datagram []byte) {
			before := s.rtcpRecv.Load()
			s.handleRTCP(datagram, sources[src&1], now)
			_, _, valid := parseRTCP(datagram)
			if counted := s.rtcpRecv.Load() != before; counted != valid {
				t.Fatalf("valid=%v but counted=%v for % x", valid, counted, datagram)
			}
			if valid && binary.BigEndian.Uint16(datagram[2:])*4+4 > uint16(len(datagram)) && len(datagram) < 1<<16 {
				t.Fatalf("accepted a first packet longer than the datagram: % x", datagram)
			}
		})
		s.peers.mu.Lock()
		rtcp := s.peers.rtcpRemote
		s.peers.mu.Unlock()
		if rtcp.IsValid() && rtcp != sources[0] {
			t.Fatalf("RTCP latched to %v, which is not the RTP peer's address", rtcp)
		}
	})
}
