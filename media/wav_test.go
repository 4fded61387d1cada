package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// wavOptions describes a WAV file for makeWAV.
type wavOptions struct {
	format     uint16 // 1 PCM, 3 float, 6 A-law, 7 µ-law, 0xFFFE extensible (PCM subformat)
	channels   int
	rate       int
	bits       int
	extraChunk bool // a LIST chunk of odd size before fmt and a fact chunk after
	dataSize   int  // declared data size; -1: the real size
}

// makeWAV builds a WAV file of a sine at freq Hz, the same on every channel.
func makeWAV(t testing.TB, o wavOptions, freq float64, d time.Duration) []byte {
	t.Helper()
	n := int(d * time.Duration(o.rate) / time.Second)
	var data bytes.Buffer
	le := binary.LittleEndian
	for i := range n {
		v := 0.5 * math.Sin(2*math.Pi*freq*float64(i)/float64(o.rate))
		s16 := int16(v * 32767)
		for range o.channels {
			switch {
			case o.format == 6:
				var b [1]byte
				Encode(PCMA, b[:], []int16{s16})
				data.WriteByte(b[0])
			case o.format == 7:
				var b [1]byte
				Encode(PCMU, b[:], []int16{s16})
				data.WriteByte(b[0])
			case o.format == 3:
				binary.Write(&data, le, float32(v))
			case o.bits == 8:
				data.WriteByte(byte(int(s16)>>8 + 128))
			case o.bits == 16:
				binary.Write(&data, le, s16)
			case o.bits == 24:
				x := int32(v * 8388607)
				data.Write([]byte{byte(x), byte(x >> 8), byte(x >> 16)})
			case o.bits == 32:
				binary.Write(&data, le, int32(v*2147483647))
			}
		}
	}
	var fmtc bytes.Buffer
	block := o.channels * o.bits / 8
	binary.Write(&fmtc, le, o.format)
	binary.Write(&fmtc, le, uint16(o.channels))
	binary.Write(&fmtc, le, uint32(o.rate))
	binary.Write(&fmtc, le, uint32(o.rate*block))
	binary.Write(&fmtc, le, uint16(block))
	binary.Write(&fmtc, le, uint16(o.bits))
	if o.format == 0xFFFE {
		binary.Write(&fmtc, le, uint16(22))
		binary.Write(&fmtc, le, uint16(o.bits))
		binary.Write(&fmtc, le, uint32(3))
		fmtc.Write([]byte{1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71})
	}
	var body bytes.Buffer
	body.WriteString("WAVE")
	chunk := func(id string, b []byte, declared int) {
		body.WriteString(id)
		binary.Write(&body, le, uint32(declared))
		body.Write(b)
		if len(b)%2 == 1 {
			body.WriteByte(0)
		}
	}
	if o.extraChunk {
		chunk("LIST", []byte("INFOISFT\x05\x00\x00\x00sox!\x00"), 17)
	}
	chunk("fmt ", fmtc.Bytes(), fmtc.Len())
	if o.extraChunk {
		chunk("fact", []byte{1, 2, 3, 4}, 4)
	}
	declared := data.Len()
	if o.dataSize >= 0 {
		declared = o.dataSize
	}
	chunk("data", data.Bytes(), declared)
	var out bytes.Buffer
	out.WriteString("RIFF")
	binary.Write(&out, le, uint32(body.Len()))
	out.Write(body.Bytes())
	return out.Bytes()
}

func TestReadWAVFormats(t *testing.T) {
	tests := []struct {
		name string
		o    wavOptions
	}{
		{"8k 16-bit mono", wavOptions{format: 1, channels: 1, rate: 8000, bits: 16, dataSize: -1}},
		{"16k 16-bit mono", wavOptions{format: 1, channels: 1, rate: 16000, bits: 16, dataSize: -1}},
		{"44.1k 16-bit stereo", wavOptions{format: 1, channels: 2, rate: 44100, bits: 16, extraChunk: true, dataSize: -1}},
		{"48k 24-bit stereo", wavOptions{format: 1, channels: 2, rate: 48000, bits: 24, dataSize: -1}},
		{"22.05k 8-bit", wavOptions{format: 1, channels: 1, rate: 22050, bits: 8, extraChunk: true, dataSize: -1}},
		{"6k 16-bit (upsampled)", wavOptions{format: 1, channels: 1, rate: 6000, bits: 16, dataSize: -1}},
		{"8k µ-law", wavOptions{format: 7, channels: 1, rate: 8000, bits: 8, dataSize: -1}},
		{"8k A-law", wavOptions{format: 6, channels: 1, rate: 8000, bits: 8, dataSize: -1}},
		{"32k float", wavOptions{format: 3, channels: 1, rate: 32000, bits: 32, dataSize: -1}},
		{"extensible 32-bit 48k", wavOptions{format: 0xFFFE, channels: 2, rate: 48000, bits: 32, dataSize: -1}},
		{"streamed header 0xFFFFFFFF", wavOptions{format: 1, channels: 1, rate: 16000, bits: 16, dataSize: math.MaxUint32}},
		{"streamed header 0", wavOptions{format: 1, channels: 1, rate: 8000, bits: 16, dataSize: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			samples, err := ReadWAV(bytes.NewReader(makeWAV(t, tt.o, 1000, time.Second)))
			if err != nil {
				t.Fatal(err)
			}
			if len(samples) < 7990 || len(samples) > 8000 {
				t.Errorf("%d samples, want 8000", len(samples))
			}
			tol := 0.05
			if tt.o.rate < 8000 {
				tol = 0.1 // linear interpolation attenuates high frequencies a little
			}
			checkToneTol(t, samples, 1000, 0.5, tol)
		})
	}
}

// checkTone asserts samples are a tone at freq with about amp (fraction of full scale).
func checkTone(t *testing.T, samples []int16, freq, amp float64) {
	t.Helper()
	checkToneTol(t, samples, freq, amp, 0.05)
}

func checkToneTol(t *testing.T, samples []int16, freq, amp, tol float64) {
	t.Helper()
	if f := DominantFrequency(samples, 200, 3800, 5); math.Abs(f-freq) > 25 {
		t.Errorf("dominant frequency %v Hz, want %v", f, freq)
	}
	if p := Goertzel(samples, freq); math.Abs(math.Sqrt(p)-amp) > tol {
		t.Errorf("amplitude %.3f at %v Hz, want %.2f", math.Sqrt(p), freq, amp)
	}
}

// Downsampling low-passes: a 6 kHz tone in a 48 kHz file does not alias into the band.
func TestReadWAVAntiAlias(t *testing.T) {
	b := makeWAV(t, wavOptions{format: 1, channels: 1, rate: 48000, bits: 16, dataSize: -1}, 6000, time.Second)
	samples, err := ReadWAV(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var peak float64
	for f := 100.0; f < 3900; f += 50 {
		peak = max(peak, Goertzel(samples, f))
	}
	if peak > 0.001 { // -30 dB below the 0.25 input power, at least
		t.Errorf("alias power %v", peak)
	}
}

func TestReadWAVErrors(t *testing.T) {
	good := makeWAV(t, wavOptions{format: 1, channels: 1, rate: 8000, bits: 16, dataSize: -1}, 1000, 100*time.Millisecond)
	patch := func(off int, b ...byte) []byte {
		c := slices.Clone(good)
		copy(c[off:], b)
		return c
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotWAV},
		{"text", []byte("this is not a wave file at all"), ErrNotWAV},
		{"RIFF not WAVE", patch(8, 'A', 'V', 'I', ' '), ErrNotWAV},
		{"truncated data", good[:len(good)-100], ErrWAVTruncated},
		{"truncated header", good[:30], ErrWAVTruncated},
		{"no data chunk", good[:36], ErrWAVTruncated},
		{"mp3 in WAV", patch(20, 0x55, 0), ErrWAVUnsupported},
		{"12-bit", patch(34, 12, 0), ErrWAVUnsupported},
		{"zero channels", patch(22, 0, 0), ErrWAVUnsupported},
		{"huge fmt", patch(16, 0xff, 0xff, 0xff, 0x7f), ErrWAVUnsupported},
		{"huge skipped chunk", patch(12, 'J', 'U', 'N', 'K', 0xff, 0xff, 0xff, 0xff), ErrWAVTruncated},
		{"data before fmt", append([]byte("RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00"), 1, 2), ErrWAVUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadWAV(bytes.NewReader(tt.data))
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWAVWriterRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec.wav")
	w, err := CreateWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	tone := Tone(1000, time.Second, 0.5)
	for c := range slices.Chunk(tone, 333) {
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal("second close:", err)
	}
	if err := w.Write(tone); err == nil {
		t.Fatal("write after close")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 44+2*len(tone) || binary.LittleEndian.Uint32(b[4:]) != uint32(36+2*len(tone)) ||
		binary.LittleEndian.Uint32(b[40:]) != uint32(2*len(tone)) {
		t.Fatalf("header sizes wrong: file %d bytes", len(b))
	}
	got, err := ReadWAVFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, tone) {
		t.Fatal("samples differ after round trip")
	}
	if _, err := ReadWAVFile(filepath.Join(t.TempDir(), "missing.wav")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestWriteWAV(t *testing.T) {
	tone := Tone(440, 500*time.Millisecond, 0.25)
	var buf bytes.Buffer
	if err := WriteWAV(&buf, tone, 8000); err != nil {
		t.Fatal(err)
	}
	got, err := ReadWAV(&buf)
	if err != nil || !slices.Equal(got, tone) {
		t.Fatalf("round trip: %v", err)
	}
	// At 16 kHz the same samples read back as half as many, and the tone doubles.
	buf.Reset()
	if err := WriteWAV(&buf, tone, 16000); err != nil {
		t.Fatal(err)
	}
	got, err = ReadWAV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(tone)/2 {
		t.Errorf("%d samples", len(got))
	}
	checkTone(t, got, 880, 0.25)
	if err := WriteWAV(&buf, tone, 0); err == nil {
		t.Error("rate 0 accepted")
	}
}

// A file made by sox, when sox is installed: 44.1 kHz stereo with a LIST chunk.
func TestReadWAVSox(t *testing.T) {
	sox, err := exec.LookPath("sox")
	if err != nil {
		t.Skip("sox not on PATH")
	}
	for _, args := range [][]string{
		{"-r", "44100", "-c", "2", "-b", "16"},
		{"-r", "48000", "-c", "1", "-b", "24"},
		{"-r", "8000", "-c", "1", "-e", "u-law"},
		{"-r", "16000", "-c", "1", "-e", "a-law"},
	} {
		path := filepath.Join(t.TempDir(), "tone.wav")
		cmd := append(append([]string{"-n"}, args...), path, "synth", "1", "sine", "1000", "vol", "0.5")
		if out, err := exec.Command(sox, cmd...).CombinedOutput(); err != nil {
			t.Fatalf("sox %v: %v\n%s", cmd, err, out)
		}
		samples, err := ReadWAVFile(path)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if len(samples) < 7990 || len(samples) > 8000 {
			t.Errorf("%v: %d samples", args, len(samples))
		}
		checkTone(t, samples, 1000, 0.5)
	}
}

func FuzzReadWAV(f *testing.F) {
	f.Add(makeWAV(f, wavOptions{format: 1, channels: 2, rate: 44100, bits: 16, extraChunk: true, dataSize: -1}, 1000, 10*time.Millisecond))
	f.Add(makeWAV(f, wavOptions{format: 7, channels: 1, rate: 8000, bits: 8, dataSize: -1}, 1000, 10*time.Millisecond))
	f.Add(makeWAV(f, wavOptions{format: 0xFFFE, channels: 1, rate: 48000, bits: 24, dataSize: math.MaxUint32}, 1000, 5*time.Millisecond))
	f.Add(makeWAV(f, wavOptions{format: 3, channels: 1, rate: 11025, bits: 32, dataSize: 1 << 30}, 1000, 5*time.Millisecond))
	f.Fuzz(func(t *testing.T, data []byte) {
		samples, err := ReadWAV(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Output is bounded by the input: at most 8 kHz / 1 kHz (lowest rate) * one byte per sample.
		if len(samples) > 8*len(data) {
			t.Fatalf("%d samples from %d bytes", len(samples), len(data))
		}
	})
}
