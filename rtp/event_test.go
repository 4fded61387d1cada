package rtp

import (
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

// sippDigit1 is the RTP of digit '1' from SIPp's dtmf_2833_1.pcap (tshark -e udp.payload):
// PT 101, marker on the first packet only, start duration 0, duration +320 per packet, and
// the end packet sent three times with the same sequence number.
var sippDigit1 = []string{
	"80e51f30000033e00e05384e010a0000",
	"80651f31000033e00e05384e010a0140",
	"80651f32000033e00e05384e010a0280",
	"80651f33000033e00e05384e010a03c0",
	"80651f34000033e00e05384e010a0500",
	"80651f35000033e00e05384e010a0640",
	"80651f36000033e00e05384e010a0780",
	"80651f37000033e00e05384e018a08c0",
	"80651f37000033e00e05384e018a08c0",
	"80651f37000033e00e05384e018a08c0",
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseEvent(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    Event
		wantErr bool
	}{
		{"sipp start", mustHex("010a0000"), Event{Code: 1, Volume: 10}, false},
		{"sipp end", mustHex("018a08c0"), Event{Code: 1, End: true, Volume: 10, Duration: 2240}, false},
		{"reserved bit ignored", []byte{11, 0xc0 | 63, 0xff, 0xff}, Event{Code: 11, End: true, Volume: 63, Duration: 65535}, false},
		{"extra bytes ignored", []byte{5, 7, 0, 160, 9, 9}, Event{Code: 5, Volume: 7, Duration: 160}, false},
		{"short", []byte{1, 2, 3}, Event{}, true},
		{"empty", nil, Event{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvent(tt.payload)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseEvent = %+v, %v; want %+v, err %v", got, err, tt.want, tt.wantErr)
			}
			if tt.wantErr && !errors.Is(err, ErrShortEvent) {
				t.Fatalf("error %v is not ErrShortEvent", err)
			}
		})
	}
}

func TestEventMarshalTo(t *testing.T) {
	tests := []struct {
		ev      Event
		want    string
		wantErr bool
	}{
		{Event{Code: 1, Volume: 10}, "010a0000", false},
		{Event{Code: 1, End: true, Volume: 10, Duration: 2240}, "018a08c0", false},
		{Event{Code: 1, Volume: 64}, "", true},
	}
	for _, tt := range tests {
		buf := make([]byte, 4)
		n, err := tt.ev.MarshalTo(buf)
		if (err != nil) != tt.wantErr || (!tt.wantErr && hex.EncodeToString(buf[:n]) != tt.want) {
			t.Fatalf("%+v: got %x, %v; want %s", tt.ev, buf[:n], err, tt.want)
		}
	}
	if _, err := (Event{}).MarshalTo(make([]byte, 3)); err == nil {
		t.Fatal("short buffer: want error")
	}
}

func TestDigits(t *testing.T) {
	keys := "0123456789*#ABCD"
	for code, key := range keys {
		r, ok := DigitRune(uint8(code))
		if !ok || r != key {
			t.Fatalf("DigitRune(%d) = %q, %v", code, r, ok)
		}
		c, ok := DigitCode(key)
		if !ok || c != uint8(code) {
			t.Fatalf("DigitCode(%q) = %d, %v", key, c, ok)
		}
	}
	if c, ok := DigitCode('b'); !ok || c != 13 {
		t.Fatalf("DigitCode('b') = %d, %v", c, ok)
	}
	for _, code := range []uint8{16, 32, 255} {
		if _, ok := DigitRune(code); ok {
			t.Fatalf("DigitRune(%d) should fail", code)
		}
	}
	for _, r := range "EFx .!" {
		if _, ok := DigitCode(r); ok {
			t.Fatalf("DigitCode(%q) should fail", r)
		}
	}
}

// step is one input to an EventReceiver: a packet, or a Flush when flush is set.
type step struct {
	ts    uint32
	ev    Event
	flush bool
}

func press(ts uint32, code uint8, durations ...uint16) []step {
	var out []step
	for _, d := range durations {
		out = append(out, step{ts: ts, ev: Event{Code: code, Duration: d, Volume: 10}})
	}
	return out
}

func end(ts uint32, code uint8, duration uint16, times int) []step {
	var out []step
	for range times {
		out = append(out, step{ts: ts, ev: Event{Code: code, Duration: duration, End: true, Volume: 10}})
	}
	return out
}

func steps(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestEventReceiver(t *testing.T) {
	ms := time.Millisecond
	longPress := make([]uint16, 0, 100)
	for i := range 100 {
		longPress = append(longPress, uint16(i*160))
	}
	tests := []struct {
		name string
		in   []step
		want []Digit
	}{
		{
			name: "end retransmitted three times",
			in:   steps(press(1000, 1, 160, 320), end(1000, 1, 480, 3)),
			want: []Digit{{Rune: '1', Duration: 60 * ms, Timestamp: 1000, Code: 1}},
		},
		{
			// The marker-bearing packets were lost (or never sent): timestamps still tell.
			name: "no start packet",
			in:   steps(press(1000, 9, 480), end(1000, 9, 640, 3)),
			want: []Digit{{Rune: '9', Duration: 80 * ms, Timestamp: 1000, Code: 9}},
		},
		{
			name: "long press",
			in:   steps(press(5000, 11, longPress...), end(5000, 11, 16000, 3)),
			want: []Digit{{Rune: '#', Duration: 2 * time.Second, Timestamp: 5000, Code: 11}},
		},
		{
			name: "lost end is reported when the next digit starts",
			in:   steps(press(1000, 1, 160, 320), press(3000, 2, 160), end(3000, 2, 800, 3)),
			want: []Digit{
				{Rune: '1', Duration: 40 * ms, Timestamp: 1000, Code: 1},
				{Rune: '2', Duration: 100 * ms, Timestamp: 3000, Code: 2},
			},
		},
		{
			name: "same key twice",
			in:   steps(press(1000, 4, 160), end(1000, 4, 800, 3), press(3000, 4, 160), end(3000, 4, 800, 3)),
			want: []Digit{{Rune: '4', Duration: 100 * ms, Timestamp: 1000, Code: 4}, {Rune: '4', Duration: 100 * ms, Timestamp: 3000, Code: 4}},
		},
		{
			name: "only end packets after an unfinished digit",
			in:   steps(press(1000, 1, 160), end(3000, 2, 800, 3)),
			want: []Digit{{Rune: '1', Duration: 20 * ms, Timestamp: 1000, Code: 1}, {Rune: '2', Duration: 100 * ms, Timestamp: 3000, Code: 2}},
		},
		{
			name: "flush reports an open digit once",
			in:   steps(press(1000, 0, 160, 320), []step{{flush: true}, {flush: true}}, end(1000, 0, 800, 3)),
			want: []Digit{{Rune: '0', Duration: 40 * ms, Timestamp: 1000, Code: 0}},
		},
		{
			name: "late retransmission of the previous digit is ignored",
			in:   steps(end(1000, 1, 800, 1), press(3000, 2, 160), end(1000, 1, 800, 1), end(3000, 2, 800, 1)),
			want: []Digit{{Rune: '1', Duration: 100 * ms, Timestamp: 1000, Code: 1}, {Rune: '2', Duration: 100 * ms, Timestamp: 3000, Code: 2}},
		},
		{
			name: "timestamp wrap",
			in:   steps(end(0xffffff00, 3, 800, 3), end(0x100, 5, 800, 3)),
			want: []Digit{{Rune: '3', Duration: 100 * ms, Timestamp: 0xffffff00, Code: 3}, {Rune: '5', Duration: 100 * ms, Timestamp: 0x100, Code: 5}},
		},
		{
			// From the fuzzer: a straggler of a reported digit after a far-away event.
			name: "straggler after a distant event",
			in:   steps(end(1000, 1, 800, 1), press(0x80000000, 16, 160), end(1000, 1, 800, 1)),
			want: []Digit{{Rune: '1', Duration: 100 * ms, Timestamp: 1000, Code: 1}},
		},
		{
			name: "non-DTMF events are not digits",
			in:   steps(press(1000, 16, 160), end(1000, 16, 800, 3), end(3000, 7, 800, 1)),
			want: []Digit{{Rune: '7', Duration: 100 * ms, Timestamp: 3000, Code: 7}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewEventReceiver(8000)
			var got []Digit
			for _, st := range tt.in {
				var d Digit
				var ok bool
				if st.flush {
					d, ok = r.Flush()
				} else {
					d, ok = r.Push(st.ts, st.ev)
				}
				if ok {
					got = append(got, d)
				}
			}
			if d, ok := r.Flush(); ok {
				got = append(got, d)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("digit %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestEventReceiverPending: Pending says whether Flush has a digit to give, which is what a
// leg waits on before it reports an event whose end packets were all lost.
func TestEventReceiverPending(t *testing.T) {
	tests := []struct {
		name string
		in   []step
		want bool
	}{
		{"nothing yet", nil, false},
		{"open press", press(1000, 1, 160, 320), true},
		{"ended", steps(press(1000, 1, 160), end(1000, 1, 480, 1)), false},
		{"flushed", steps(press(1000, 1, 160), []step{{flush: true}}), false},
		{"retransmission after flush", steps(press(1000, 1, 160), []step{{flush: true}}, end(1000, 1, 480, 3)), false},
		// The end of the second digit came while the first was reported: it is still owed.
		{"end behind an unfinished digit", steps(press(1000, 1, 160), end(3000, 2, 800, 1)), true},
		{"next press after a lost end", steps(press(1000, 1, 160), press(3000, 2, 160)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewEventReceiver(8000)
			for _, st := range tt.in {
				if st.flush {
					r.Flush()
				} else {
					r.Push(st.ts, st.ev)
				}
			}
			if got := r.Pending(); got != tt.want {
				t.Fatalf("Pending() = %v, want %v", got, tt.want)
			}
			if _, ok := r.Flush(); ok != tt.want {
				t.Fatalf("Flush() reported %v, want %v", ok, tt.want)
			}
		})
	}
}

func TestEventReceiverWithSIPpCapture(t *testing.T) {
	r := NewEventReceiver(8000)
	var got []Digit
	for _, h := range sippDigit1 {
		var p pktView
		p.parse(t, mustHex(h))
		ev, err := ParseEvent(p.payload)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := r.Push(p.ts, ev); ok {
			got = append(got, d)
		}
	}
	want := Digit{Rune: '1', Duration: 280 * time.Millisecond, Timestamp: 0x33e0, Code: 1}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %+v, want [%+v]", got, want)
	}
}

func TestEventSender(t *testing.T) {
	tests := []struct {
		name      string
		duration  time.Duration
		ptime     time.Duration
		wantDur   []uint16
		wantEnd   []bool
		wantCount int
	}{
		{
			name: "100 ms at 20 ms", duration: 100 * time.Millisecond, ptime: 20 * time.Millisecond,
			wantDur: []uint16{160, 320, 480, 640, 800, 800, 800},
			wantEnd: []bool{false, false, false, false, true, true, true},
		},
		{
			name: "not a multiple of ptime", duration: 50 * time.Millisecond, ptime: 20 * time.Millisecond,
			wantDur: []uint16{160, 320, 400, 400, 400},
			wantEnd: []bool{false, false, true, true, true},
		},
		{
			name: "shorter than one packet", duration: 5 * time.Millisecond, ptime: 20 * time.Millisecond,
			wantDur: []uint16{160, 160, 160},
			wantEnd: []bool{true, true, true},
		},
		{
			name: "longer than one event can say", duration: 10 * time.Second, ptime: 2 * time.Second,
			wantDur: []uint16{16000, 32000, 48000, 64000, 65535, 65535, 65535},
			wantEnd: []bool{false, false, false, false, true, true, true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewEventSender(7, tt.duration, tt.ptime, 8000, 10)
			buf := make([]byte, 4)
			for i := range tt.wantDur {
				n, marker, done := s.Next(buf)
				ev, err := ParseEvent(buf[:n])
				if err != nil {
					t.Fatal(err)
				}
				want := Event{Code: 7, Volume: 10, Duration: tt.wantDur[i], End: tt.wantEnd[i]}
				if ev != want || marker != (i == 0) || done != (i == len(tt.wantDur)-1) {
					t.Fatalf("packet %d: %+v marker %v done %v; want %+v", i, ev, marker, done, want)
				}
			}
			if n, _, done := s.Next(buf); n != 0 || !done {
				t.Fatalf("after the last packet: n %d done %v", n, done)
			}
		})
	}
	if n, _, done := NewEventSender(1, time.Second, 0, 0, 99).Next(make([]byte, 2)); n != 0 || done {
		t.Fatal("short buffer must write nothing")
	}
}

// pktView is the little of an RTP packet the event tests need.
type pktView struct {
	ts      uint32
	payload []byte
}

func (v *pktView) parse(t *testing.T, b []byte) {
	t.Helper()
	if len(b) < 12 {
		t.Fatalf("short packet %x", b)
	}
	v.ts, v.payload = be32(b, 4), b[12:]
}
