package media

import (
	"testing"
	"time"
)

// frames feeds audio through the detector in 20 ms frames.
func detect(audio []int16) (digits string, durations []time.Duration) {
	d := NewDTMFDetector()
	audio = append(audio, make([]int16, 4*FrameSamples)...) // trailing silence ends the last digit
	for len(audio) >= FrameSamples {
		if digit, dur, ok := d.Process(audio[:FrameSamples]); ok {
			digits += string(digit)
			durations = append(durations, dur)
		}
		audio = audio[FrameSamples:]
	}
	return digits, durations
}

func concat(parts ...[]int16) []int16 {
	var out []int16
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestDTMFDetectorFindsEveryDigit(t *testing.T) {
	gap := make([]int16, 60*8)
	var audio []int16
	const all = "0123456789*#ABCD"
	for _, d := range all {
		audio = concat(audio, DTMFTone(d, 100*time.Millisecond), gap)
	}
	got, durs := detect(audio)
	if got != all {
		t.Fatalf("detected %q, want %q", got, all)
	}
	for i, d := range durs {
		if d < 80*time.Millisecond || d > 120*time.Millisecond {
			t.Errorf("digit %c lasted %v, want about 100ms", all[i], d)
		}
	}
}

func TestDTMFDetectorReportsALongPressOnce(t *testing.T) {
	got, durs := detect(DTMFTone('5', 2*time.Second))
	if got != "5" || durs[0] < 1900*time.Millisecond {
		t.Fatalf("long press: %q %v, want one 5 of about 2s", got, durs)
	}
}

func TestDTMFDetectorIgnoresNonDigits(t *testing.T) {
	for name, audio := range map[string][]int16{
		"silence":        make([]int16, 8000),
		"1 kHz tone":     Tone(1000, time.Second, 0.5),
		"row tone alone": Tone(770, time.Second, 0.5),
		"too short":      DTMFTone('7', 20*time.Millisecond),
		"too quiet":      scale(DTMFTone('7', 200*time.Millisecond), 0.005),
	} {
		if got, _ := detect(audio); got != "" {
			t.Errorf("%s: detected %q", name, got)
		}
	}
}

func scale(s []int16, f float64) []int16 {
	for i := range s {
		s[i] = int16(float64(s[i]) * f)
	}
	return s
}

func BenchmarkDTMFDetector(b *testing.B) {
	d := NewDTMFDetector()
	frame := Tone(440, FrameDuration, 0.3)
	b.ReportAllocs()
	for b.Loop() {
		d.Process(frame)
	}
}
