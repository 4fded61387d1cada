package media

import (
	"math"
	"time"
)

// Tone returns a sine tone at freqHz, d long, sampled at 8 kHz, with amplitude as a fraction
// of full scale (clamped to 0..1).
func Tone(freqHz float64, d time.Duration, amplitude float64) []int16 {
	if d <= 0 {
		return nil
	}
	amplitude = max(0, min(1, amplitude))
	n := int(d * SampleRate / time.Second)
	out := make([]int16, n)
	w := 2 * math.Pi * freqHz / SampleRate
	for i := range out {
		out[i] = int16(math.Round(amplitude * math.MaxInt16 * math.Sin(w*float64(i))))
	}
	return out
}

// Goertzel returns the relative power of 8 kHz samples at freqHz, normalised so that a
// full-scale sine at that frequency gives about 1 (a tone of amplitude a gives about a²).
func Goertzel(samples []int16, freqHz float64) float64 {
	n := len(samples)
	if n == 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freqHz/SampleRate)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	full := float64(math.MaxInt16) * float64(n) / 2
	return power / (full * full)
}

// DominantFrequency scans lowHz..highHz in steps of stepHz with Goertzel and returns the
// frequency of most power (0 for no samples or a bad range). Only the first second of a long
// recording is analysed, which is enough to tell "this is a 1 kHz tone" to within ±25 Hz.
func DominantFrequency(samples []int16, lowHz, highHz, stepHz float64) float64 {
	if len(samples) == 0 || stepHz <= 0 || highHz < lowHz {
		return 0
	}
	if len(samples) > SampleRate {
		samples = samples[:SampleRate]
	}
	best, bestPower := 0.0, -1.0
	for f := lowHz; f <= highHz; f += stepHz {
		if p := Goertzel(samples, f); p > bestPower {
			best, bestPower = f, p
		}
	}
	return best
}
