package media

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/rtp"
)

// heardDigit is one OnDTMF call and when it came.
type heardDigit struct {
	digit    rune
	duration time.Duration
	at       time.Time
}

// digitSink keeps the digits a leg reports, with their durations.
type digitSink struct {
	mu     sync.Mutex
	digits []heardDigit
}

func (s *digitSink) OnAudio([]int16) {}
func (s *digitSink) OnMark(string)   {}
func (s *digitSink) OnDTMF(d rune, dur time.Duration) {
	s.mu.Lock()
	s.digits = append(s.digits, heardDigit{d, dur, time.Now()})
	s.mu.Unlock()
}

func (s *digitSink) heard() []heardDigit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]heardDigit(nil), s.digits...)
}

// eventLeg starts a leg whose far end is a test socket that sends it
// telephone-events at payload type 101.
func eventLeg(t *testing.T, portMin int) (*farEnd, *digitSink) {
	t.Helper()
	far := newFarEnd(t)
	leg, err := OpenLeg(LegConfig{Pool: testPool(t, portMin)}, []uint8{0, 101})
	if err != nil {
		t.Fatal(err)
	}
	far.leg = netip.AddrPortFrom(loopback, uint16(leg.LocalPort()))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); leg.Close() })
	sink := &digitSink{}
	if err := leg.Start(ctx, negotiatedFor(far.addr(), pcmu, 20*time.Millisecond), sink); err != nil {
		t.Fatal(err)
	}
	return far, sink
}

// sendEvent sends one telephone-event packet for code at ts.
func (f *farEnd) sendEvent(t *testing.T, ts uint32, code uint8, duration uint16, end bool) {
	t.Helper()
	buf := make([]byte, 4)
	if _, err := (rtp.Event{Code: code, Volume: 10, Duration: duration, End: end}).MarshalTo(buf); err != nil {
		t.Fatal(err)
	}
	f.send(t, 101, false, ts, buf)
}

// TestLegReportsDigitWhoseEndPacketsWereLost: all three end packets of a
// digit are lost and no other key follows. The digit must still arrive,
// once, about eventEndTimeout after its last packet, with the duration its
// packets had reached; the end packets arriving late must not repeat it.
func TestLegReportsDigitWhoseEndPacketsWereLost(t *testing.T) {
	far, sink := eventLeg(t, 33400)
	const ts = 48000
	var last time.Time // when the last packet was sent
	for i := uint16(1); i <= 5; i++ {
		if i > 1 {
			time.Sleep(20 * time.Millisecond)
		}
		far.sendEvent(t, ts, 5, i*160, false)
		last = time.Now()
	}
	eventually(t, 3*time.Second, "the digit whose end was lost", func() bool { return len(sink.heard()) > 0 })
	got := sink.heard()[0]
	if got.digit != '5' || got.duration != 100*time.Millisecond {
		t.Fatalf("heard %q for %v, want '5' for 100ms (the duration its packets reached)", got.digit, got.duration)
	}
	// The leg saw the last packet after it was sent: the timer cannot fire
	// before last+timeout.
	if wait := got.at.Sub(last); wait < eventEndTimeout-5*time.Millisecond || wait > eventEndTimeout+time.Second {
		t.Errorf("digit reported %v after the last packet, want about %v", wait, eventEndTimeout)
	}

	for range 3 { // the end packets, far too late
		far.sendEvent(t, ts, 5, 800, true)
	}
	time.Sleep(eventEndTimeout + 200*time.Millisecond)
	if n := len(sink.heard()); n != 1 {
		t.Fatalf("heard %d digits, want the one digit once: %+v", n, sink.heard())
	}

	// The next key press is heard as usual.
	far.sendEvent(t, ts+8000, 7, 160, false)
	for range 3 {
		far.sendEvent(t, ts+8000, 7, 480, true)
	}
	eventually(t, 2*time.Second, "the next digit", func() bool { return len(sink.heard()) == 2 })
	if d := sink.heard()[1]; d.digit != '7' || d.duration != 60*time.Millisecond {
		t.Fatalf("next digit %q for %v, want '7' for 60ms", d.digit, d.duration)
	}
}

// TestLegLongPressIsNotCut: a key held for longer than eventEndTimeout,
// whose packets keep coming (with one gap shorter than the timeout), is one
// digit reported at its end with its whole duration.
func TestLegLongPressIsNotCut(t *testing.T) {
	far, sink := eventLeg(t, 33500)
	const ts = 96000
	held := time.Duration(0)
	for i := uint16(1); i <= 30; i++ {
		far.sendEvent(t, ts, 11, i*400, false) // 50 ms of duration per packet
		pause := 50 * time.Millisecond
		if i == 10 {
			pause = 250 * time.Millisecond // a burst of lost updates, shorter than the timeout
		}
		time.Sleep(pause)
		held += pause
		if n := len(sink.heard()); n != 0 {
			t.Fatalf("after %v of a held key the leg reported %+v: the press was cut", held, sink.heard())
		}
	}
	for range 3 {
		far.sendEvent(t, ts, 11, 12000, true)
	}
	eventually(t, 2*time.Second, "the long press", func() bool { return len(sink.heard()) > 0 })
	time.Sleep(eventEndTimeout + 200*time.Millisecond)
	got := sink.heard()
	if len(got) != 1 || got[0].digit != '#' || got[0].duration != 1500*time.Millisecond {
		t.Fatalf("heard %+v, want one '#' for 1.5s", got)
	}
}

// BenchmarkInboundEventPacket: telephone-event packets, a new key every
// ten, through the receiver with its end timer. The timer is made once per
// leg; a packet allocates nothing.
func BenchmarkInboundEventPacket(b *testing.B) {
	leg, err := OpenLeg(LegConfig{Pool: testPool(b, 33600)}, []uint8{0, 101})
	if err != nil {
		b.Fatal(err)
	}
	defer leg.Close()
	leg.sink = &countSink{}
	r := newReceiver(leg, PCMU, negotiatedFor(netip.AddrPort{}, pcmu, 20*time.Millisecond))
	defer r.stop()
	payload := make([]byte, 4)
	p := &pionrtp.Packet{Header: pionrtp.Header{Version: 2, PayloadType: 101}, Payload: payload}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		n := uint16(i%10 + 1)
		_, _ = (rtp.Event{Code: uint8(i/10) % 12, Duration: n * 160, End: n == 10}).MarshalTo(payload)
		if n == 1 {
			p.Timestamp += 8000
		}
		r.handle(p)
	}
}
