package media

import (
	"testing"
)

func TestEncodingFor(t *testing.T) {
	tests := []struct {
		c    Codec
		enc  Encoding
		want bool
	}{
		{Codec{"PCMU", 0, 8000}, PCMU, true},
		{Codec{"pcma", 8, 8000}, PCMA, true},
		{Codec{"PCMA", 96, 16000}, 0, false},
		{Codec{"G729", 18, 8000}, 0, false},
	}
	for _, tt := range tests {
		enc, ok := EncodingFor(tt.c)
		if enc != tt.enc || ok != tt.want {
			t.Errorf("%+v: %v %v", tt.c, enc, ok)
		}
	}
	if PCMU.String() != "PCMU" || PCMA.String() != "PCMA" || Encoding(0).String() != "Encoding(0)" {
		t.Error("Encoding.String")
	}
}

func TestSilenceByte(t *testing.T) {
	for _, enc := range []Encoding{PCMU, PCMA} {
		b := SilenceByte(enc)
		var s [1]int16
		Decode(enc, s[:], []byte{b})
		if s[0] < -8 || s[0] > 8 {
			t.Errorf("%v: silence byte %#x decodes to %d", enc, b, s[0])
		}
		var e [1]byte
		Encode(enc, e[:], []int16{0})
		if e[0] != b {
			t.Errorf("%v: zero encodes to %#x, SilenceByte %#x", enc, e[0], b)
		}
	}
}

// Every code decodes and re-encodes to itself (µ-law has two zeros, 0x7F and 0xFF; the
// encoder gives 0xFF for 0).
func TestCodecRoundTripBytes(t *testing.T) {
	for _, enc := range []Encoding{PCMU, PCMA} {
		src := make([]byte, 256)
		for i := range src {
			src[i] = byte(i)
		}
		pcm := make([]int16, 256)
		if n := Decode(enc, pcm, src); n != 256 {
			t.Fatalf("decoded %d", n)
		}
		back := make([]byte, 256)
		if n := Encode(enc, back, pcm); n != 256 {
			t.Fatalf("encoded %d", n)
		}
		for i := range src {
			if back[i] != src[i] && !(enc == PCMU && src[i] == 0x7F && back[i] == 0xFF) {
				t.Errorf("%v: %#x -> %d -> %#x", enc, src[i], pcm[i], back[i])
			}
		}
	}
}

// Linear PCM survives encode+decode within G.711's quantisation error.
func TestCodecRoundTripPCM(t *testing.T) {
	tone := Tone(1000, FrameDuration, 0.8)
	for _, enc := range []Encoding{PCMU, PCMA} {
		var payload [FrameSamples]byte
		var out [FrameSamples]int16
		Encode(enc, payload[:], tone)
		Decode(enc, out[:], payload[:])
		for i := range tone {
			diff := int(out[i]) - int(tone[i])
			tol := max(abs(int(tone[i]))/16, 16) // ~ 4 bits of mantissa
			if abs(diff) > tol {
				t.Fatalf("%v: sample %d: %d -> %d", enc, i, tone[i], out[i])
			}
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestTranscode(t *testing.T) {
	pcm := Tone(440, FrameDuration, 0.5)
	var u, a, u2, a2 [FrameSamples]byte
	Encode(PCMU, u[:], pcm)
	Encode(PCMA, a[:], pcm)
	if n := Transcode(PCMU, PCMA, a2[:], u[:]); n != FrameSamples {
		t.Fatal(n)
	}
	if n := Transcode(PCMA, PCMU, u2[:], a[:]); n != FrameSamples {
		t.Fatal(n)
	}
	var x, y [FrameSamples]int16
	Decode(PCMA, x[:], a2[:])
	Decode(PCMU, y[:], u2[:])
	for i := range pcm {
		if abs(int(x[i])-int(pcm[i])) > max(abs(int(pcm[i]))/8, 32) || abs(int(y[i])-int(pcm[i])) > max(abs(int(pcm[i]))/8, 32) {
			t.Fatalf("sample %d: %d, via µ-law->A-law %d, via A-law->µ-law %d", i, pcm[i], x[i], y[i])
		}
	}
	same := u
	if n := Transcode(PCMU, PCMU, same[:], same[:]); n != FrameSamples || same != u {
		t.Error("same-encoding transcode is not a copy")
	}
	if Transcode(PCMU, 0, a2[:], u[:]) != 0 || Decode(0, x[:], u[:]) != 0 || Encode(9, u[:], x[:]) != 0 {
		t.Error("unknown encoding")
	}
	if n := Decode(PCMU, x[:10], u[:]); n != 10 {
		t.Errorf("short dst: %d", n)
	}
}

func TestCodecZeroAlloc(t *testing.T) {
	pcm := make([]int16, FrameSamples)
	payload := make([]byte, FrameSamples)
	allocs := testing.AllocsPerRun(100, func() {
		Encode(PCMU, payload, pcm)
		Decode(PCMA, pcm, payload)
		Transcode(PCMU, PCMA, payload, payload)
	})
	if allocs != 0 {
		t.Errorf("%v allocs per frame", allocs)
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, enc := range []Encoding{PCMU, PCMA} {
		b.Run(enc.String(), func(b *testing.B) {
			src := make([]byte, FrameSamples)
			dst := make([]int16, FrameSamples)
			b.ReportAllocs()
			b.SetBytes(FrameSamples)
			for b.Loop() {
				Decode(enc, dst, src)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, enc := range []Encoding{PCMU, PCMA} {
		b.Run(enc.String(), func(b *testing.B) {
			src := Tone(1000, FrameDuration, 0.5)
			dst := make([]byte, FrameSamples)
			b.ReportAllocs()
			b.SetBytes(FrameSamples * 2)
			for b.Loop() {
				Encode(enc, dst, src)
			}
		})
	}
}

func BenchmarkTranscode(b *testing.B) {
	src := make([]byte, FrameSamples)
	dst := make([]byte, FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		Transcode(PCMU, PCMA, dst, src)
	}
}
