package media

import (
	"strconv"
	"strings"
	"time"

	"github.com/zaf/g711"
)

// The pipeline's media frame: 20 ms of 8 kHz mono linear PCM.
const (
	SampleRate    = 8000
	FrameSamples  = 160
	FrameDuration = 20 * time.Millisecond
)

// Encoding is a G.711 payload encoding.
type Encoding uint8

// G.711 encodings. The zero value is no encoding.
const (
	PCMU Encoding = iota + 1 // G.711 µ-law
	PCMA                     // G.711 A-law
)

// String returns the RTP encoding name.
func (e Encoding) String() string {
	switch e {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	}
	return "Encoding(" + strconv.Itoa(int(e)) + ")"
}

// EncodingFor maps a negotiated codec to its encoding.
func EncodingFor(c Codec) (Encoding, bool) {
	if c.ClockRate != 0 && c.ClockRate != SampleRate {
		return 0, false
	}
	switch {
	case strings.EqualFold(c.Name, "PCMU"):
		return PCMU, true
	case strings.EqualFold(c.Name, "PCMA"):
		return PCMA, true
	}
	return 0, false
}

// Decode decodes G.711 bytes from src into linear PCM in dst and returns the number of samples
// written: min(len(dst), len(src)), or 0 for an unknown encoding. It does not allocate.
func Decode(enc Encoding, dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	switch enc {
	case PCMU:
		for i, b := range src {
			dst[i] = g711.DecodeUlawFrame(b)
		}
	case PCMA:
		for i, b := range src {
			dst[i] = g711.DecodeAlawFrame(b)
		}
	default:
		return 0
	}
	return n
}

// Encode encodes linear PCM from src into G.711 bytes in dst and returns the number of bytes
// written: min(len(dst), len(src)), or 0 for an unknown encoding. It does not allocate.
func Encode(enc Encoding, dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	switch enc {
	case PCMU:
		for i, s := range src {
			dst[i] = g711.EncodeUlawFrame(s)
		}
	case PCMA:
		for i, s := range src {
			dst[i] = g711.EncodeAlawFrame(s)
		}
	default:
		return 0
	}
	return n
}

// Transcode converts G.711 bytes between encodings (a table lookup per byte; a copy when from
// and to are equal) and returns the number of bytes written, or 0 for an unknown encoding.
// dst and src may be the same slice. It does not allocate.
func Transcode(from, to Encoding, dst, src []byte) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	switch {
	case from == to && (from == PCMU || from == PCMA):
		copy(dst, src)
	case from == PCMU && to == PCMA:
		for i, b := range src {
			dst[i] = g711.Ulaw2AlawFrame(b)
		}
	case from == PCMA && to == PCMU:
		for i, b := range src {
			dst[i] = g711.Alaw2UlawFrame(b)
		}
	default:
		return 0
	}
	return n
}

// SilenceByte is the encoding of a zero sample: 0xFF for µ-law, 0xD5 for A-law.
func SilenceByte(enc Encoding) byte {
	if enc == PCMA {
		return 0xD5
	}
	return 0xFF
}
