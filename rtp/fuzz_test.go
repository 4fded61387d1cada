package rtp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// Fuzz input for the receive path is a list of datagrams, each framed as
// [source byte][2-byte length][bytes]; source bit 0 picks one of two far ends.
func frame(src byte, datagrams ...[]byte) []byte {
	var out []byte
	for _, d := range datagrams {
		out = append(out, src, byte(len(d)>>8), byte(len(d)))
		out = append(out, d...)
	}
	return out
}

func unframe(data []byte, each func(src byte, datagram []byte)) {
	for len(data) >= 3 {
		src, n := data[0], int(binary.BigEndian.Uint16(data[1:3]))
		data = data[3:]
		n = min(n, len(data))
		each(src, data[:n])
		data = data[n:]
	}
}

func FuzzProcessDatagram(f *testing.F) {
	var sipp [][]byte
	for _, h := range sippDigit1 {
		sipp = append(sipp, mustHex(h))
	}
	audio := func(seq uint16, ssrc uint32) []byte {
		return pkt{seq: seq, ts: uint32(seq) * 160, ssrc: ssrc, payload: make([]byte, 160)}.bytes()
	}
	pcma := mustHex("8088e6fd000000f0dee0ee8fd5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5")
	f.Add(frame(0, sipp...))
	f.Add(frame(0, pcma))
	f.Add(frame(0, audio(1, 7), audio(3, 7), audio(2, 7), audio(2, 7), audio(5, 7), audio(4, 7), audio(6, 7)))
	f.Add(frame(0, audio(65534, 7), audio(0, 7), audio(65535, 7), audio(1, 7), audio(9000, 7), audio(9001, 7)))
	f.Add(append(frame(0, audio(1, 7), audio(3, 7)), frame(1, audio(2, 7), audio(4, 8))...))
	f.Add(frame(0, audio(1, 7), audio(3, 7), audio(10, 9), audio(11, 9)))
	f.Add(frame(0, []byte{0x80}, []byte{0xb0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 1600)))
	f.Add(frame(0, mustHex("a0000001000000000000000100")))               // padding larger than payload
	f.Add(frame(0, mustHex("9000000100000000000000010000000100000000"))) // extension header

	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := newSession(Config{PayloadTypes: []uint8{0, 8, 101}, Latch: true})
		if err != nil {
			t.Fatal(err)
		}
		sources := [2]netip.AddrPort{
			netip.MustParseAddrPort("192.0.2.1:4000"),
			netip.MustParseAddrPort("192.0.2.2:4000"),
		}
		now := time.Unix(1_700_000_000, 0)

		var (
			delivered uint64
			prevSeq   uint16
			prevSSRC  uint32
			prevEpoch uint64
			haveLast  bool
		)
		handle := func(p *rtp.Packet) {
			delivered++
			if p.Version != 2 || !s.acceptsPayloadType(p.PayloadType) || len(p.Payload) > maxPacketSize-12 {
				t.Fatalf("delivered an invalid packet: %v", p.Header)
			}
			// Within one sequence (same SSRC, no restart) delivery is strictly increasing and
			// never jumps further than a plausible loss.
			epoch := s.rx.epoch
			if haveLast && p.SSRC == prevSSRC && epoch == prevEpoch {
				if d := int16(p.SequenceNumber - prevSeq); d <= 0 || d > maxDropout {
					t.Fatalf("delivered seq %d after %d in the same sequence", p.SequenceNumber, prevSeq)
				}
			}
			haveLast, prevSeq, prevSSRC, prevEpoch = true, p.SequenceNumber, p.SSRC, epoch
		}

		var latched netip.AddrPort
		unframe(data, func(srcByte byte, datagram []byte) {
			src := sources[srcByte&1]
			now = now.Add(time.Duration(srcByte>>1) * time.Millisecond)
			before := s.Stats()
			deliveredBefore := delivered
			s.processDatagram(datagram, src, now, handle)
			after := s.Stats()
			if latched.IsValid() && src != latched {
				if delivered != deliveredBefore || after.PacketsDropped != before.PacketsDropped+1 {
					t.Fatalf("packet from unlatched source %v was not dropped", src)
				}
			}
			if s.peers.latched {
				latched = s.peers.source
			}
		})
		st := s.Stats()
		if st.PacketsReceived != delivered {
			t.Fatalf("PacketsReceived %d, handler saw %d", st.PacketsReceived, delivered)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	f.Add(mustHex("010a0000"))
	f.Add(mustHex("018a08c0"))
	f.Add([]byte{11, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{1, 2})
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := ParseEvent(payload)
		if len(payload) < 4 {
			if err == nil {
				t.Fatal("short payload accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var buf [4]byte
		if _, err := ev.MarshalTo(buf[:]); err != nil {
			t.Fatal(err)
		}
		want := [4]byte(payload[:4])
		want[1] &^= 0x40 // the reserved bit is not kept
		if buf != want {
			t.Fatalf("round trip %x -> %+v -> %x", payload[:4], ev, buf)
		}
	})
}

// FuzzEventReceiver reads 8-byte records: [ts 4][event 4]; a record whose first event byte
// is 0xff is a Flush instead.
func FuzzEventReceiver(f *testing.F) {
	var sipp []byte
	for _, h := range sippDigit1 {
		b := mustHex(h)
		sipp = append(sipp, b[4:8]...)
		sipp = append(sipp, b[12:16]...)
	}
	f.Add(sipp)
	f.Add(mustHex("000003e8010a00a0" + "000003e8ff000000" + "00000bb8028a0320" + "000003e8018a0320"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewEventReceiver(8000)
		pushed := map[uint32]uint16{} // timestamp -> largest duration pushed
		var last Digit
		var haveLast bool
		for ; len(data) >= 8; data = data[8:] {
			ts := binary.BigEndian.Uint32(data)
			var d Digit
			var ok bool
			if data[4] == 0xff {
				d, ok = r.Flush()
			} else {
				ev, err := ParseEvent(data[4:8])
				if err != nil {
					t.Fatal(err)
				}
				pushed[ts] = max(pushed[ts], ev.Duration)
				d, ok = r.Push(ts, ev)
			}
			if !ok {
				continue
			}
			maxDur, seen := pushed[d.Timestamp]
			if !seen {
				t.Fatalf("digit for a timestamp never pushed: %+v", d)
			}
			if key, valid := DigitRune(d.Code); !valid || key != d.Rune {
				t.Fatalf("digit %+v has the wrong key", d)
			}
			if d.Duration < 0 || d.Duration > durationOf(uint64(maxDur), 8000) {
				t.Fatalf("digit %+v longer than any packet said (%d)", d, maxDur)
			}
			if haveLast && last.Timestamp == d.Timestamp {
				// A timestamp is reported again only after another event took its place.
				t.Fatalf("digit reported twice in a row: %+v then %+v", last, d)
			}
			last, haveLast = d, true
		}
	})
}
