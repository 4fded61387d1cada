package media

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func addSDPSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "sdp", "*.sdp"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no SDP seeds: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseDescription(f *testing.F) {
	addSDPSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := ParseDescription(body)
		if err != nil {
			return
		}
		if d.Port < 0 || d.Port > 65535 {
			t.Fatalf("port %d", d.Port)
		}
		for _, c := range d.Codecs {
			if (c.Name != "PCMU" && c.Name != "PCMA") || c.ClockRate != 8000 || c.PayloadType > 127 {
				t.Fatalf("codec %+v", c)
			}
		}
		if d.PTime <= 0 {
			t.Fatalf("ptime %v", d.PTime)
		}
	})
}

func FuzzNegotiate(f *testing.F) {
	addSDPSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		offer, err := ParseDescription(body)
		if err != nil {
			return
		}
		for _, prefer := range []bool{false, true} {
			cfg := testAnswerConfig()
			cfg.PreferOurs = prefer
			n, answer, err := Negotiate(offer, cfg)
			if err != nil {
				continue
			}
			if !slices.Contains(offer.Codecs, n.Codec) {
				t.Fatalf("negotiated %+v, not offered in %+v", n.Codec, offer.Codecs)
			}
			back, err := ParseDescription(answer)
			if err != nil {
				t.Fatalf("answer does not parse back: %v\n%s", err, answer)
			}
			if len(back.Codecs) != 1 || back.Codecs[0] != n.Codec || back.Port != cfg.LocalPort {
				t.Fatalf("answer parses back as %+v, negotiated %+v\n%s", back, n, answer)
			}
			if back.HasTelephoneEvent != n.HasTelephoneEvent || back.TelephoneEvent != n.TelephoneEvent {
				t.Fatalf("answer telephone-event %v/%d, negotiated %v/%d", back.HasTelephoneEvent, back.TelephoneEvent, n.HasTelephoneEvent, n.TelephoneEvent)
			}
		}
	})
}
