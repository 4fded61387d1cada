package media

import (
	"math"
	"time"
)

// dtmfFreqs are the row and column frequencies of each DTMF key (ITU Q.23).
func dtmfFreqs(d rune) (low, high float64, ok bool) {
	const keys = "123A456B789C*0#D"
	rows := [4]float64{697, 770, 852, 941}
	cols := [4]float64{1209, 1336, 1477, 1633}
	for i, k := range keys {
		if k == d {
			return rows[i/4], cols[i%4], true
		}
	}
	return 0, 0, false
}

// DTMFTone renders a digit as an in-band dual tone for legs that negotiated
// no telephone-event. Unknown digits give nil.
func DTMFTone(d rune, duration time.Duration) []int16 {
	low, high, ok := dtmfFreqs(d)
	if !ok {
		return nil
	}
	n := int(duration.Seconds() * 8000)
	out := make([]int16, n)
	// Each tone at about -9 dBFS keeps the sum clear of clipping.
	const amp = 0.35 * math.MaxInt16
	for i := range out {
		t := float64(i) / 8000
		out[i] = int16(amp*math.Sin(2*math.Pi*low*t) + amp*math.Sin(2*math.Pi*high*t))
	}
	return out
}
