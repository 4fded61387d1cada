package rtp

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestLossAndFractionLost(t *testing.T) {
	var q sequencer
	q.start(1)
	for _, seq := range []uint16{2, 4, 5, 6, 7, 8, 9, 10} { // 3 lost
		q.classify(seq)
	}
	if q.lost() != 1 {
		t.Fatalf("lost %d, want 1", q.lost())
	}
	if f := q.fractionLost(); f != 25 { // 1 of 10 expected, as a fraction of 256
		t.Fatalf("fraction lost %d, want 25", f)
	}
	for seq := uint16(11); seq <= 20; seq++ {
		q.classify(seq)
	}
	if f := q.fractionLost(); f != 0 {
		t.Fatalf("fraction lost in a clean interval %d, want 0", f)
	}
	if q.extendedMax() != 20 {
		t.Fatalf("extended max %d", q.extendedMax())
	}
}

func TestExtendedSequenceWraps(t *testing.T) {
	var q sequencer
	q.start(65000)
	for seq := uint16(65001); seq != 1000; seq++ {
		q.classify(seq)
	}
	if q.extendedMax() != 65536+999 || q.lost() != 0 {
		t.Fatalf("extended max %d lost %d", q.extendedMax(), q.lost())
	}
}

func TestJitter(t *testing.T) {
	tests := []struct {
		name    string
		offsets []time.Duration // arrival deviation from the 20 ms schedule, cycled
		wantMs  float64
		tol     float64
	}{
		{"on schedule", []time.Duration{0}, 0, 0.01},
		// |D| is 10 ms every packet: the estimate converges to 10 ms.
		{"alternating 10 ms", []time.Duration{0, 10 * time.Millisecond}, 10, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := newSession(Config{PayloadTypes: []uint8{0}})
			if err != nil {
				t.Fatal(err)
			}
			src := netip.MustParseAddrPort("192.0.2.1:4000")
			start := time.Now()
			for i := range 500 {
				at := start.Add(time.Duration(i)*20*time.Millisecond + tt.offsets[i%len(tt.offsets)])
				s.processDatagram(pkt{seq: uint16(i), ts: uint32(i) * 160, ssrc: 1}.bytes(), src, at, func(*rtp.Packet) {})
			}
			if got := s.Stats().JitterMs; math.Abs(got-tt.wantMs) > tt.tol {
				t.Fatalf("jitter %.3f ms, want %.1f ± %.1f", got, tt.wantMs, tt.tol)
			}
		})
	}
}
