package twilio

import (
	"encoding/base64"
	"log/slog"
	"testing"

	"github.com/switchboard-voice/switchboard/media"
)

// BenchmarkMediaFrame is the per-frame hot path: encode 20 ms of PCM to
// µ-law and render the `media` message (base64 included) into a reused
// buffer. It must not allocate.
func BenchmarkMediaFrame(b *testing.B) {
	frame := make([]int16, media.FrameSamples)
	for i := range frame {
		frame[i] = int16(i * 200)
	}
	sid := newStreamSid()
	ulaw := make([]byte, 0, media.FrameSamples)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame) * 2))
	for i := 0; b.Loop(); i++ {
		ulaw = encodeUlaw(ulaw, frame)
		buf = appendMedia(buf[:0], sid, uint64(i)+2, uint64(i)+1, int64(i)*20, ulaw)
	}
}

// BenchmarkOnAudio is what the RTP reader pays per frame: encode and hand
// the frame to the writer's queue (drained here in step, as by the writer).
func BenchmarkOnAudio(b *testing.B) {
	s := &session{free: make(chan *mediaFrame, queueFrames), queue: make(chan outItem, queueFrames+queueControls),
		log: slog.New(slog.DiscardHandler)}
	for range queueFrames {
		s.free <- &mediaFrame{ulaw: make([]byte, 0, 320)}
	}
	frame := make([]int16, media.FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		s.OnAudio(frame)
		s.free <- (<-s.queue).frame
	}
	if n := s.dropped.Load(); n != 0 {
		b.Fatalf("%d frames dropped", n)
	}
}

// BenchmarkDecodeMedia decodes a bot's 20 ms media message with a reused
// Decoder, as the session's reader does.
func BenchmarkDecodeMedia(b *testing.B) {
	payload := make([]byte, media.FrameSamples)
	for i := range payload {
		payload[i] = byte(i)
	}
	msg := []byte(`{"event":"media","streamSid":"` + newStreamSid() + `","media":{"payload":"` +
		base64.StdEncoding.EncodeToString(payload) + `"}}`)
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		m, err := d.Decode(msg)
		if err != nil || len(m.Payload) != len(payload) {
			b.Fatal(m, err)
		}
	}
}
