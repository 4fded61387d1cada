package media

import (
	"math"
	"time"
)

// dtmfKeys lays out the DTMF keypad row by row (ITU Q.23): key i sounds
// row frequency i/4 with column frequency i%4.
const dtmfKeys = "123A456B789C*0#D"

// dtmfGrid returns the four row and four column frequencies, in Hz.
func dtmfGrid() (rows, cols [4]float64) {
	return [4]float64{697, 770, 852, 941}, [4]float64{1209, 1336, 1477, 1633}
}

// dtmfFreqs are the row and column frequencies of a DTMF key.
func dtmfFreqs(d rune) (low, high float64, ok bool) {
	rows, cols := dtmfGrid()
	for i, k := range dtmfKeys {
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
