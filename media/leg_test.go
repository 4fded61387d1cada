package media

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/rtp"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// sinkLog is a Sink that keeps what a leg hands it.
type sinkLog struct {
	mu     sync.Mutex
	frames int
	audio  []int16
	digits []rune
	marks  []string
}

func (s *sinkLog) OnAudio(f []int16) {
	s.mu.Lock()
	s.frames++
	s.audio = append(s.audio, f...)
	s.mu.Unlock()
}
func (s *sinkLog) OnDTMF(d rune, _ time.Duration) {
	s.mu.Lock()
	s.digits = append(s.digits, d)
	s.mu.Unlock()
}
func (s *sinkLog) OnMark(n string) { s.mu.Lock(); s.marks = append(s.marks, n); s.mu.Unlock() }

func (s *sinkLog) snapshot() (frames int, digits string, marks []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames, string(s.digits), append([]string(nil), s.marks...)
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testPool(t testing.TB, min int) *rtp.PortPool {
	t.Helper()
	pool, err := rtp.NewPortPool(loopback, min, min+99, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func negotiatedFor(remote netip.AddrPort, codec Codec, ptime time.Duration) Negotiated {
	return Negotiated{Codec: codec, TelephoneEvent: 101, HasTelephoneEvent: true, PTime: ptime, Remote: remote, LocalDirection: SendRecv}
}

// legPair starts two legs sending to each other.
func legPair(t *testing.T, codec Codec, ptime time.Duration) (a, b *Leg, sa, sb *sinkLog) {
	t.Helper()
	pool := testPool(t, 32000)
	var err error
	pts := []uint8{codec.PayloadType, 101}
	if a, err = OpenLeg(LegConfig{Pool: pool}, pts); err != nil {
		t.Fatal(err)
	}
	if b, err = OpenLeg(LegConfig{Pool: pool}, pts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); a.Close(); b.Close() })
	sa, sb = &sinkLog{}, &sinkLog{}
	addr := func(l *Leg) netip.AddrPort { return netip.AddrPortFrom(loopback, uint16(l.LocalPort())) }
	if err := a.Start(ctx, negotiatedFor(addr(b), codec, ptime), sa); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, negotiatedFor(addr(a), codec, ptime), sb); err != nil {
		t.Fatal(err)
	}
	return a, b, sa, sb
}

var (
	pcmu = Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000}
	pcma = Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000}
)

func TestLegCarriesAudioAtEveryPTime(t *testing.T) {
	for _, tc := range []struct {
		codec Codec
		ptime time.Duration
	}{{pcmu, 20 * time.Millisecond}, {pcma, 30 * time.Millisecond}, {pcmu, 10 * time.Millisecond}, {pcma, 40 * time.Millisecond}} {
		t.Run(tc.codec.Name+"/"+tc.ptime.String(), func(t *testing.T) {
			a, b, _, sb := legPair(t, tc.codec, tc.ptime)
			if err := a.PlayPCM(Tone(1000, 400*time.Millisecond, 0.5)); err != nil {
				t.Fatal(err)
			}
			eventually(t, 3*time.Second, "400 ms of audio at the far end", func() bool {
				f, _, _ := sb.snapshot()
				return f >= 30
			})
			sb.mu.Lock()
			got := DominantFrequency(sb.audio, 300, 3400, 10)
			sb.mu.Unlock()
			if got < 975 || got > 1025 {
				t.Fatalf("far end hears %.0f Hz, want 1000", got)
			}
			st := b.Stats()
			// Every packet carries ptime of audio, re-framed into 20 ms frames.
			// Silence keeps coming: the packet being read may be counted
			// before its frames are (two of them at 40 ms).
			wantFrames := st.RTP.PacketsReceived * uint64(tc.ptime/time.Millisecond) / 20
			inFlight := max(1, uint64(tc.ptime/FrameDuration))
			if st.FramesIn+inFlight < wantFrames || st.FramesIn > wantFrames {
				t.Errorf("frames in = %d for %d packets of %v", st.FramesIn, st.RTP.PacketsReceived, tc.ptime)
			}
		})
	}
}

func TestLegSendsDigitsAsTelephoneEvents(t *testing.T) {
	a, _, _, sb := legPair(t, pcmu, 20*time.Millisecond)
	if err := a.SendDigits("19#*"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "four digits", func() bool { _, d, _ := sb.snapshot(); return len(d) >= 4 })
	if _, d, _ := sb.snapshot(); d != "19#*" {
		t.Fatalf("far end got digits %q, want %q", d, "19#*")
	}
	if err := a.SendDigits("x"); err == nil {
		t.Fatal("SendDigits accepted a non-DTMF character")
	}
}

func TestLegFallsBackToInBandDTMF(t *testing.T) {
	pool := testPool(t, 32300)
	a, _ := OpenLeg(LegConfig{Pool: pool}, []uint8{0})
	b, _ := OpenLeg(LegConfig{Pool: pool}, []uint8{0})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); a.Close(); b.Close() })
	noEvents := func(l *Leg) Negotiated {
		n := negotiatedFor(netip.AddrPortFrom(loopback, uint16(l.LocalPort())), pcmu, 20*time.Millisecond)
		n.HasTelephoneEvent = false
		return n
	}
	sb := &sinkLog{}
	if err := a.Start(ctx, noEvents(b), &sinkLog{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, noEvents(a), sb); err != nil {
		t.Fatal(err)
	}
	if err := a.SendDigits("42*"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "three in-band digits", func() bool { _, d, _ := sb.snapshot(); return len(d) >= 3 })
	if _, d, _ := sb.snapshot(); d != "42*" {
		t.Fatalf("in-band digits = %q, want %q", d, "42*")
	}
}

func TestLegMarkFiresAfterQueuedAudioIsSent(t *testing.T) {
	a, _, sa, _ := legPair(t, pcmu, 20*time.Millisecond)
	_ = a.PlayPCM(Tone(500, 200*time.Millisecond, 0.3))
	a.Mark("first")
	_ = a.PlayPCM(Tone(500, 200*time.Millisecond, 0.3))
	a.Mark("second")
	if _, _, m := sa.snapshot(); len(m) != 0 {
		t.Fatalf("marks fired before their audio was sent: %v", m)
	}
	eventually(t, 3*time.Second, "both marks", func() bool { _, _, m := sa.snapshot(); return len(m) == 2 })
	if _, _, m := sa.snapshot(); m[0] != "first" || m[1] != "second" {
		t.Fatalf("marks in wrong order: %v", m)
	}
	if out := a.Stats().FramesOut; out != 20 {
		t.Errorf("frames of agent audio sent = %d, want 20", out)
	}
}

func TestLegClearSilencesWithinOneFrame(t *testing.T) {
	a, _, sa, _ := legPair(t, pcmu, 20*time.Millisecond)
	_ = a.PlayPCM(Tone(500, 10*time.Second, 0.3))
	a.Mark("after-speech")
	eventually(t, time.Second, "speech to start", func() bool { return a.Stats().FramesOut > 2 })
	a.Clear()
	if _, _, m := sa.snapshot(); len(m) != 1 || m[0] != "after-speech" {
		t.Fatalf("clear did not answer the pending mark: %v", m)
	}
	sent := a.Stats().FramesOut
	time.Sleep(100 * time.Millisecond)
	if more := a.Stats().FramesOut - sent; more > 1 {
		t.Fatalf("%d frames of agent audio went out after clear, want at most the one in flight", more)
	}
}

func TestLegHoldStopsSendingAndResumes(t *testing.T) {
	a, b, _, _ := legPair(t, pcmu, 20*time.Millisecond)
	eventually(t, time.Second, "packets", func() bool { return b.Stats().RTP.PacketsReceived > 3 })
	held := negotiatedFor(netip.AddrPortFrom(loopback, uint16(b.LocalPort())), pcmu, 20*time.Millisecond)
	held.LocalDirection, held.Hold = RecvOnly, true
	a.Update(held)
	time.Sleep(60 * time.Millisecond) // a packet already on the wire may still land
	before := b.Stats().RTP.PacketsReceived
	time.Sleep(200 * time.Millisecond)
	if after := b.Stats().RTP.PacketsReceived; after != before {
		t.Fatalf("held leg kept sending: %d packets during hold", after-before)
	}
	resumed := held
	resumed.LocalDirection, resumed.Hold = SendRecv, false
	a.Update(resumed)
	eventually(t, time.Second, "packets after resume", func() bool { return b.Stats().RTP.PacketsReceived > before+3 })
}

func TestLegInactivityEndsWait(t *testing.T) {
	pool := testPool(t, 32200)
	leg, err := OpenLeg(LegConfig{Pool: pool, InactivityTimeout: 200 * time.Millisecond}, []uint8{0})
	if err != nil {
		t.Fatal(err)
	}
	defer leg.Close()
	if err := leg.Start(context.Background(), negotiatedFor(netip.AddrPortFrom(loopback, 9), pcmu, 20*time.Millisecond), &sinkLog{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- leg.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Wait returned nil, want rtp.ErrInactive")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("inactivity timeout did not end the leg")
	}
	if pool.InUse() != 1 {
		t.Fatalf("ports in use before Close = %d", pool.InUse())
	}
	leg.Close()
	if pool.InUse() != 0 {
		t.Fatalf("ports in use after Close = %d", pool.InUse())
	}
}

// The media hot path: one packet in -> one 20 ms frame to the agent.
func BenchmarkInboundPacketToFrame(b *testing.B) {
	pool := testPool(b, 32400)
	leg, err := OpenLeg(LegConfig{Pool: pool}, []uint8{0, 101})
	if err != nil {
		b.Fatal(err)
	}
	defer leg.Close()
	leg.sink = &countSink{}
	r := newReceiver(leg, PCMU, negotiatedFor(netip.AddrPort{}, pcmu, 20*time.Millisecond))
	payload := make([]byte, 160)
	Encode(PCMU, payload, Tone(1000, 20*time.Millisecond, 0.5))
	p := &pionrtp.Packet{Header: pionrtp.Header{Version: 2, PayloadType: 0}, Payload: payload}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.SequenceNumber++
		p.Timestamp += 160
		r.handle(p)
	}
}

// The other half: one 20 ms frame from the agent -> one packet on the wire.
func BenchmarkOutboundFrameToPacket(b *testing.B) {
	pool := testPool(b, 32600)
	leg, err := OpenLeg(LegConfig{Pool: pool}, []uint8{0, 101})
	if err != nil {
		b.Fatal(err)
	}
	defer leg.Close()
	drain := newFarEnd(b) // where the paced packets go
	neg := negotiatedFor(drain.addr(), pcmu, 20*time.Millisecond)
	leg.neg = neg
	leg.applyRemote(neg)
	p := newPacer(leg, PCMU, neg)
	frame := Tone(1000, 20*time.Millisecond, 0.5)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = leg.PlayPCM(frame)
		p.tick()
	}
}

type countSink struct{ frames int }

func (c *countSink) OnAudio([]int16)            { c.frames++ }
func (c *countSink) OnDTMF(rune, time.Duration) {}
func (c *countSink) OnMark(string)              {}

// pacedLeg starts a leg sending PCMU every 20 ms to a raw far end.
func pacedLeg(t *testing.T) (*Leg, *farEnd) {
	t.Helper()
	far := newFarEnd(t)
	leg, err := OpenLeg(LegConfig{Pool: testPool(t, 33000)}, []uint8{0, 101})
	if err != nil {
		t.Fatal(err)
	}
	far.leg = netip.AddrPortFrom(loopback, uint16(leg.LocalPort()))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); leg.Close() })
	if err := leg.Start(ctx, negotiatedFor(far.addr(), pcmu, 20*time.Millisecond), &sinkLog{}); err != nil {
		t.Fatal(err)
	}
	return leg, far
}

func isSilence(p []byte) bool { return bytes.Count(p, []byte{0xff}) == len(p) }

// silentPacket waits until nothing is queued, drops what already arrived,
// and returns the next comfort-silence packet.
func silentPacket(t *testing.T, leg *Leg, far *farEnd) *pionrtp.Packet {
	t.Helper()
	eventually(t, time.Second, "the queue to drain", func() bool { return leg.Buffered() == 0 })
	for !isSilence(far.recv(t, 0).Payload) {
	}
	for !far.quiet(2 * time.Millisecond) {
	}
	for {
		if p := far.recv(t, 0); isSilence(p.Payload) {
			return p
		}
	}
}

// TestLegSpeechStartsAtOnce: the agent's first frame after silence goes out
// when it arrives, not at the next tick, with the marker and the next
// timestamp in sequence (never one overlapping the silence before it).
func TestLegSpeechStartsAtOnce(t *testing.T) {
	leg, far := pacedLeg(t)
	var last string
	// Scheduling jitter can delay the write to the tick; a few attempts
	// tell that apart from a pacer that always waits for it.
	for attempt := 0; attempt < 3; attempt++ {
		s := silentPacket(t, leg, far)
		silenceAt := time.Now()
		time.Sleep(5 * time.Millisecond) // mid-slot
		_ = leg.PlayPCM(Tone(700, FrameDuration, 0.4))
		b := far.recv(t, 0)
		after := time.Since(silenceAt)
		if b.Timestamp != s.Timestamp+FrameSamples || !b.Marker || isSilence(b.Payload) {
			t.Fatalf("after silence at ts %d came ts %d (marker %v, silent %v), want speech at the next timestamp with the marker",
				s.Timestamp, b.Timestamp, b.Marker, isSilence(b.Payload))
		}
		if after < 15*time.Millisecond {
			return
		}
		last = fmt.Sprintf("speech arrived %v after the silence packet", after)
	}
	t.Fatalf("speech waited for the tick: %s", last)
}

// TestLegLateFrameKeepsItsSlot: an agent streaming in real time whose frame
// lands just after the pacer's tick. The frame must go out at once in the
// slot it missed, not after a slot of silence: that silence would delay
// every later frame by a whole ptime for the rest of the call.
func TestLegLateFrameKeepsItsSlot(t *testing.T) {
	leg, far := pacedLeg(t)
	frame := Tone(700, FrameDuration, 0.4)

	// Scheduling jitter can make the late write later than the half-ptime
	// hold; a few attempts tell that apart from a pacer that never holds.
	var last string
	for attempt := 0; attempt < 3; attempt++ {
		silentPacket(t, leg, far)
		_ = leg.PlayPCM(frame)
		var a *pionrtp.Packet
		for a = far.recv(t, 0); isSilence(a.Payload); a = far.recv(t, 0) {
		}
		time.Sleep(FrameDuration + 5*time.Millisecond) // the next tick has passed
		_ = leg.PlayPCM(frame)
		b := far.recv(t, 0)
		if !isSilence(b.Payload) && b.Timestamp == a.Timestamp+FrameSamples {
			return
		}
		last = fmt.Sprintf("after speech at ts %d came ts %d, silent %v", a.Timestamp, b.Timestamp, isSilence(b.Payload))
	}
	t.Fatalf("a frame 5 ms late lost its slot: %s", last)
}

// TestPacerShedsStaleAudioAfterAStall: after missing slots, a real-time
// stream's audio for them is dropped (its marks still fire); a TTS burst
// queued ahead of time is kept whole.
func TestPacerShedsStaleAudioAfterAStall(t *testing.T) {
	for _, tc := range []struct {
		name           string
		queued, missed int // frames
		wantShed       int
	}{
		{"real-time stream", 3, 2, 2},
		{"stall longer than the queue", 1, 5, 1},
		{"long stall", 20, 18, maxShed},
		{"burst queued ahead", 50, 2, 0},
		{"no slot missed", 3, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var marks sinkLog
			leg, err := OpenLeg(LegConfig{Pool: testPool(t, 33200)}, []uint8{0})
			if err != nil {
				t.Fatal(err)
			}
			defer leg.Close()
			leg.playout = NewPlayout(0, marks.OnMark)
			for i := range tc.queued {
				_ = leg.PlayPCM(Tone(500, FrameDuration, 0.3))
				leg.Mark(fmt.Sprint(i))
			}
			p := newPacer(leg, PCMU, negotiatedFor(netip.AddrPort{}, pcmu, 20*time.Millisecond))
			p.shedStale(tc.missed)
			if got := leg.Stats().FramesShed; got != uint64(tc.wantShed) {
				t.Fatalf("shed %d frames, want %d", got, tc.wantShed)
			}
			if left := leg.Buffered(); left != time.Duration(tc.queued-tc.wantShed)*FrameDuration {
				t.Errorf("%v left queued", left)
			}
			if _, _, m := marks.snapshot(); len(m) != tc.wantShed {
				t.Errorf("marks fired %v, want the %d of the shed frames", m, tc.wantShed)
			}
		})
	}
}
