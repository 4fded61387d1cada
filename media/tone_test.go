package media

import (
	"math"
	"testing"
	"time"
)

func TestTone(t *testing.T) {
	s := Tone(1000, time.Second, 1)
	if len(s) != 8000 {
		t.Fatalf("%d samples", len(s))
	}
	var peak int16
	for _, x := range s {
		peak = max(peak, x)
	}
	if peak != math.MaxInt16 {
		t.Errorf("peak %d", peak)
	}
	if Tone(1000, 0, 1) != nil || len(Tone(1000, FrameDuration, 2)) != FrameSamples {
		t.Error("edge cases")
	}
}

func TestGoertzel(t *testing.T) {
	tests := []struct {
		freq, amp, probe float64
		lo, hi           float64
	}{
		{1000, 1, 1000, 0.95, 1.05},
		{1000, 0.5, 1000, 0.24, 0.26},
		{1000, 1, 1500, 0, 0.001},
		{697, 0.3, 697, 0.085, 0.095}, // DTMF row 1
		{1209, 0.3, 1209, 0.085, 0.095},
	}
	for _, tt := range tests {
		p := Goertzel(Tone(tt.freq, 200*time.Millisecond, tt.amp), tt.probe)
		if p < tt.lo || p > tt.hi {
			t.Errorf("tone %v Hz amp %v probed at %v: %v, want %v..%v", tt.freq, tt.amp, tt.probe, p, tt.lo, tt.hi)
		}
	}
	if Goertzel(nil, 1000) != 0 {
		t.Error("empty")
	}
}

func TestDominantFrequency(t *testing.T) {
	for _, f := range []float64{350, 440, 1000, 2600, 3400} {
		got := DominantFrequency(Tone(f, 2*time.Second, 0.5), 100, 3900, 10)
		if math.Abs(got-f) > 25 {
			t.Errorf("tone %v: %v", f, got)
		}
	}
	if DominantFrequency(nil, 100, 200, 10) != 0 || DominantFrequency(Tone(1000, time.Second, 1), 100, 200, 0) != 0 {
		t.Error("edge cases")
	}
}
