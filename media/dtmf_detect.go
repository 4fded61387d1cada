package media

import (
	"math"
	"time"
)

// DTMFDetector finds in-band DTMF digits in 20 ms frames of 8 kHz audio, for
// callers whose far end negotiated no telephone-event: digits are never lost.
// It allocates nothing per frame.
type DTMFDetector struct {
	coeffs    [8]float64 // Goertzel coefficients: 4 rows, then 4 columns
	candidate rune
	seen      int // consecutive frames showing candidate
	current   rune
	frames    int // frames the current digit has lasted
	gaps      int // consecutive frames without it
}

// Tuning, in frames of 20 ms and normalised Goertzel power (a pure dual tone
// scores 0.5 per frequency).
const (
	dtmfOnFrames  = 2   // 40 ms before a digit counts (ITU Q.24 minimum)
	dtmfOffFrames = 2   // 40 ms of something else ends it
	dtmfMinPower  = 0.6 // row + column share of the frame's energy
	dtmfMinEach   = 0.15
	dtmfMinMS     = 90000.0 // mean square: about -35 dBFS
)

// NewDTMFDetector returns a detector for 8 kHz audio.
func NewDTMFDetector() *DTMFDetector {
	d := &DTMFDetector{}
	rows, cols := dtmfGrid()
	for i, f := range append(rows[:], cols[:]...) {
		d.coeffs[i] = 2 * math.Cos(2*math.Pi*f/SampleRate)
	}
	return d
}

// Process takes the next frame and reports a digit once it has ended, with
// how long it lasted.
func (d *DTMFDetector) Process(frame []int16) (digit rune, duration time.Duration, ok bool) {
	got := d.classify(frame)
	if got != 0 && got == d.candidate {
		d.seen++
	} else {
		d.candidate, d.seen = got, 1
	}
	if d.current == 0 {
		if got != 0 && d.seen >= dtmfOnFrames {
			d.current, d.frames, d.gaps = got, d.seen, 0
		}
		return 0, 0, false
	}
	if got == d.current {
		d.frames++
		d.gaps = 0
		return 0, 0, false
	}
	d.gaps++
	if d.gaps < dtmfOffFrames {
		return 0, 0, false
	}
	digit, duration = d.current, time.Duration(d.frames)*FrameDuration
	d.current = 0
	if got != 0 && d.seen >= dtmfOnFrames {
		d.current, d.frames, d.gaps = got, d.seen, 0
	}
	return digit, duration, true
}

// classify names the digit a frame holds, or 0.
func (d *DTMFDetector) classify(frame []int16) rune {
	var energy float64
	for _, s := range frame {
		energy += float64(s) * float64(s)
	}
	n := float64(len(frame))
	if n == 0 || energy/n < dtmfMinMS {
		return 0
	}
	var power [8]float64
	for i, c := range d.coeffs {
		var s1, s2 float64
		for _, x := range frame {
			s1, s2 = float64(x)+c*s1-s2, s1
		}
		power[i] = (s1*s1 + s2*s2 - c*s1*s2) / (energy * n / 2)
	}
	row, col := strongest(power[:4]), strongest(power[4:])
	r, c := power[row], power[4+col]
	if r+c < dtmfMinPower || r < dtmfMinEach || c < dtmfMinEach {
		return 0
	}
	return rune(dtmfKeys[row*4+col])
}

func strongest(p []float64) int {
	best := 0
	for i := range p {
		if p[i] > p[best] {
			best = i
		}
	}
	return best
}
