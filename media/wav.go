package media

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/zaf/g711"
)

// WAV errors, wrapped with detail by ReadWAV.
var (
	ErrNotWAV         = errors.New("not a RIFF/WAVE file")
	ErrWAVUnsupported = errors.New("unsupported WAV format")
	ErrWAVTruncated   = errors.New("truncated WAV file")
)

const (
	wavFormatPCM        = 1
	wavFormatFloat      = 3
	wavFormatALaw       = 6
	wavFormatMuLaw      = 7
	wavFormatExtensible = 0xFFFE

	// maxWAVChunk bounds the non-data chunks (fmt, LIST, ...) we read into memory or skip.
	maxWAVChunk = 1 << 20
	// wavReadChunk is how much data is read at a time: memory grows with the data actually
	// present, never with a size a header claims.
	wavReadChunk = 64 << 10
)

type wavFormat struct {
	format     uint16
	channels   int
	rate       int
	bits       int
	blockAlign int
}

// ReadWAVFile reads a WAV file; see ReadWAV.
func ReadWAVFile(path string) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read WAV: %w", err)
	}
	defer f.Close()
	s, err := ReadWAV(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ReadWAV reads a RIFF/WAVE file and returns its audio as 8 kHz mono linear PCM. It reads
// integer PCM of 8 (unsigned), 16, 24 or 32 bits, 32/64-bit float, and G.711 µ-law (format 7)
// and A-law (format 6), also inside WAVE_FORMAT_EXTENSIBLE; channels are mixed to mono and any
// sample rate is resampled to 8 kHz (low-pass filtered first when downsampling). Unknown
// chunks (LIST, fact, ...) are skipped, odd-sized chunks padded. A data chunk whose size is 0
// or 0xFFFFFFFF (a header never fixed up by a streaming writer) is read to the end of input.
func ReadWAV(r io.Reader) ([]int16, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read WAV: %w", ErrNotWAV)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return nil, fmt.Errorf("read WAV: %w", ErrNotWAV)
	}
	var fmtc *wavFormat
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("read WAV: no data chunk: %w", ErrWAVTruncated)
			}
			return nil, fmt.Errorf("read WAV: chunk header: %w", ErrWAVTruncated)
		}
		id := string(ch[0:4])
		size := binary.LittleEndian.Uint32(ch[4:8])
		switch id {
		case "fmt ":
			if size < 16 || size > maxWAVChunk {
				return nil, fmt.Errorf("read WAV: fmt chunk of %d bytes: %w", size, ErrWAVUnsupported)
			}
			buf := make([]byte, size+size&1)
			if _, err := io.ReadFull(r, buf); err != nil && !(errors.Is(err, io.ErrUnexpectedEOF) && size&1 == 1) {
				return nil, fmt.Errorf("read WAV: fmt chunk: %w", ErrWAVTruncated)
			}
			f, err := parseWAVFormat(buf[:size])
			if err != nil {
				return nil, fmt.Errorf("read WAV: %w", err)
			}
			fmtc = &f
		case "data":
			if fmtc == nil {
				return nil, fmt.Errorf("read WAV: data chunk before fmt chunk: %w", ErrWAVUnsupported)
			}
			return readWAVData(r, *fmtc, size)
		default:
			if _, err := io.CopyN(io.Discard, r, int64(size)+int64(size&1)); err != nil {
				return nil, fmt.Errorf("read WAV: %q chunk: %w", id, ErrWAVTruncated)
			}
		}
	}
}

func parseWAVFormat(b []byte) (wavFormat, error) {
	le := binary.LittleEndian
	f := wavFormat{
		format:     le.Uint16(b[0:2]),
		channels:   int(le.Uint16(b[2:4])),
		rate:       int(le.Uint32(b[4:8])),
		blockAlign: int(le.Uint16(b[12:14])),
		bits:       int(le.Uint16(b[14:16])),
	}
	if f.format == wavFormatExtensible {
		// cbSize(2) validBits(2) channelMask(4) subformat GUID(16): the GUID starts with the format.
		if len(b) < 40 {
			return f, fmt.Errorf("short WAVE_FORMAT_EXTENSIBLE fmt chunk: %w", ErrWAVUnsupported)
		}
		f.format = le.Uint16(b[24:26])
	}
	if f.channels < 1 || f.channels > 32 {
		return f, fmt.Errorf("%d channels: %w", f.channels, ErrWAVUnsupported)
	}
	if f.rate < 1000 || f.rate > 384000 {
		return f, fmt.Errorf("sample rate %d Hz: %w", f.rate, ErrWAVUnsupported)
	}
	switch f.format {
	case wavFormatPCM:
		if f.bits != 8 && f.bits != 16 && f.bits != 24 && f.bits != 32 {
			return f, fmt.Errorf("%d-bit PCM: %w", f.bits, ErrWAVUnsupported)
		}
	case wavFormatFloat:
		if f.bits != 32 && f.bits != 64 {
			return f, fmt.Errorf("%d-bit float: %w", f.bits, ErrWAVUnsupported)
		}
	case wavFormatALaw, wavFormatMuLaw:
		if f.bits != 8 {
			return f, fmt.Errorf("%d-bit G.711: %w", f.bits, ErrWAVUnsupported)
		}
	default:
		return f, fmt.Errorf("format tag %#x (only PCM, float, µ-law and A-law): %w", f.format, ErrWAVUnsupported)
	}
	// Block alignment as the samples need it; some writers leave blockAlign wrong.
	f.blockAlign = f.channels * f.bits / 8
	return f, nil
}

// readWAVData reads the data chunk, mixing to mono int16 as it goes, then resamples.
func readWAVData(r io.Reader, f wavFormat, size uint32) ([]int16, error) {
	toEOF := size == 0 || size == math.MaxUint32
	remaining := int64(size)
	bytesPerSample := f.bits / 8
	frames := make([]int16, 0, min(int(size)/f.blockAlign, wavReadChunk))
	buf := make([]byte, (wavReadChunk/f.blockAlign)*f.blockAlign)
	carry := 0 // bytes of an incomplete block carried to the next read
	for toEOF || remaining > 0 {
		want := len(buf) - carry
		if !toEOF {
			want = int(min(int64(want), remaining))
		}
		n, err := io.ReadFull(r, buf[carry:carry+want])
		remaining -= int64(n)
		n += carry
		whole := n - n%f.blockAlign
		for off := 0; off < whole; off += f.blockAlign {
			var sum int64
			for c := range f.channels {
				sum += int64(wavSample(f, buf[off+c*bytesPerSample:]))
			}
			frames = append(frames, int16(sum/int64(f.channels)))
		}
		carry = copy(buf, buf[whole:n])
		if err != nil {
			if toEOF && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				break
			}
			return nil, fmt.Errorf("read WAV: data chunk declares %d bytes, %d missing: %w", size, remaining, ErrWAVTruncated)
		}
	}
	return resampleTo8k(frames, f.rate), nil
}

// wavSample decodes one sample to int16.
func wavSample(f wavFormat, b []byte) int16 {
	le := binary.LittleEndian
	switch f.format {
	case wavFormatALaw:
		return g711.DecodeAlawFrame(b[0])
	case wavFormatMuLaw:
		return g711.DecodeUlawFrame(b[0])
	case wavFormatFloat:
		var v float64
		if f.bits == 32 {
			v = float64(math.Float32frombits(le.Uint32(b)))
		} else {
			v = math.Float64frombits(le.Uint64(b))
		}
		if v != v { // NaN
			return 0
		}
		return int16(max(-32768, min(32767, math.Round(v*32767))))
	}
	switch f.bits {
	case 8:
		return int16((int(b[0]) - 128) << 8)
	case 16:
		return int16(le.Uint16(b))
	case 24:
		return int16(uint16(b[1]) | uint16(b[2])<<8)
	default:
		return int16(le.Uint16(b[2:]))
	}
}

// resampleTo8k converts mono PCM at rate Hz to 8 kHz: linear interpolation, after a
// windowed-sinc low-pass at 3.6 kHz when downsampling.
func resampleTo8k(in []int16, rate int) []int16 {
	if rate == SampleRate || len(in) == 0 {
		return in
	}
	outLen := int(int64(len(in)) * SampleRate / int64(rate))
	out := make([]int16, outLen)
	step := float64(rate) / SampleRate
	var taps []float64
	if rate > SampleRate {
		taps = lowPass(3600/float64(rate), 2*int(math.Ceil(step))*8+1)
	}
	at := func(i int) float64 {
		if taps == nil {
			return float64(in[min(i, len(in)-1)])
		}
		half := len(taps) / 2
		var acc float64
		for k, h := range taps {
			j := i + k - half
			if j >= 0 && j < len(in) {
				acc += h * float64(in[j])
			}
		}
		return acc
	}
	for j := range out {
		x := float64(j) * step
		i := int(x)
		frac := x - float64(i)
		v := at(i)
		if frac > 0 && i+1 < len(in) {
			v += frac * (at(i+1) - v)
		}
		out[j] = int16(max(-32768, min(32767, math.Round(v))))
	}
	return out
}

// lowPass returns a Hamming-windowed sinc FIR with the cutoff as a fraction of the sample
// rate, normalised to unity gain at DC.
func lowPass(cutoff float64, n int) []float64 {
	taps := make([]float64, n)
	m := float64(n - 1)
	var sum float64
	for i := range taps {
		x := float64(i) - m/2
		v := 2 * cutoff
		if x != 0 {
			v = math.Sin(2*math.Pi*cutoff*x) / (math.Pi * x)
		}
		v *= 0.54 - 0.46*math.Cos(2*math.Pi*float64(i)/m)
		taps[i] = v
		sum += v
	}
	for i := range taps {
		taps[i] /= sum
	}
	return taps
}

// WAVWriter streams 8 kHz mono 16-bit PCM to a file and fixes up the header sizes on Close.
type WAVWriter struct {
	f    *os.File
	w    *bufio.Writer
	n    int64 // data bytes written
	buf  []byte
	err  error
	done bool
}

// maxWAVData is the largest data chunk a RIFF header can describe.
const maxWAVData = math.MaxUint32 - 36

// CreateWAV creates (or truncates) path and writes a WAV header for 8 kHz mono 16-bit PCM.
func CreateWAV(path string) (*WAVWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create WAV: %w", err)
	}
	w := &WAVWriter{f: f, w: bufio.NewWriterSize(f, 32<<10)}
	if _, err := w.w.Write(wavHeader(0, SampleRate)); err != nil {
		f.Close()
		return nil, fmt.Errorf("create WAV: %w", err)
	}
	return w, nil
}

// Write appends samples. It does not allocate once its buffer has grown to the chunk size.
func (w *WAVWriter) Write(samples []int16) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return errors.New("write WAV: writer closed")
	}
	if w.n+2*int64(len(samples)) > maxWAVData {
		w.err = fmt.Errorf("write WAV %s: recording exceeds the 4 GiB WAV limit", w.f.Name())
		return w.err
	}
	if cap(w.buf) < 2*len(samples) {
		w.buf = make([]byte, 2*len(samples))
	}
	b := w.buf[:2*len(samples)]
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("write WAV: %w", err)
		return w.err
	}
	w.n += int64(len(b))
	return nil
}

// Close flushes, writes the final sizes into the header and closes the file.
func (w *WAVWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	err := w.err
	if ferr := w.w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write WAV: %w", ferr)
	}
	if err == nil {
		if _, serr := w.f.WriteAt(wavHeader(uint32(w.n), SampleRate), 0); serr != nil {
			err = fmt.Errorf("write WAV header: %w", serr)
		}
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close WAV: %w", cerr)
	}
	return err
}

// WriteWAV writes samples as a complete mono 16-bit PCM WAV file at rate Hz.
func WriteWAV(w io.Writer, samples []int16, rate int) error {
	if rate <= 0 {
		return fmt.Errorf("write WAV: sample rate %d", rate)
	}
	if 2*int64(len(samples)) > maxWAVData {
		return errors.New("write WAV: samples exceed the 4 GiB WAV limit")
	}
	bw := bufio.NewWriter(w)
	if _, err := bw.Write(wavHeader(uint32(2*len(samples)), rate)); err != nil {
		return fmt.Errorf("write WAV: %w", err)
	}
	var b [2]byte
	for _, s := range samples {
		binary.LittleEndian.PutUint16(b[:], uint16(s))
		if _, err := bw.Write(b[:]); err != nil {
			return fmt.Errorf("write WAV: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write WAV: %w", err)
	}
	return nil
}

// wavHeader is the 44-byte header of a mono 16-bit PCM file with dataSize bytes of samples.
func wavHeader(dataSize uint32, rate int) []byte {
	h := make([]byte, 44)
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], 36+dataSize)
	copy(h[8:], "WAVEfmt ")
	le.PutUint32(h[16:], 16)
	le.PutUint16(h[20:], wavFormatPCM)
	le.PutUint16(h[22:], 1)
	le.PutUint32(h[24:], uint32(rate))
	le.PutUint32(h[28:], uint32(rate*2))
	le.PutUint16(h[32:], 2)
	le.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	le.PutUint32(h[40:], dataSize)
	return h
}
