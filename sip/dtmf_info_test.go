package sip

import (
	"errors"
	"testing"
	"time"
)

func TestParseDTMFInfo(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body string
		digit          rune
		dur            time.Duration
		err            bool
	}{
		{"relay", "application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5', 160 * time.Millisecond, false},
		{"relay bare LF and spaces", "Application/DTMF-Relay; charset=x", "Signal= #\nDuration= 250\n", '#', 250 * time.Millisecond, false},
		{"relay star as code", "application/dtmf-relay", "Signal=10\r\nDuration=100", '*', 100 * time.Millisecond, false},
		{"relay letter", "application/dtmf-relay", "signal=b\r\n", 'B', 0, false},
		{"plain", "application/dtmf", "7", '7', 0, false},
		{"plain hash code", "application/dtmf", "11\r\n", '#', 0, false},
		{"relay without signal", "application/dtmf-relay", "Duration=100", 0, 0, true},
		{"relay bad digit", "application/dtmf-relay", "Signal=X", 0, 0, true},
		{"relay bad duration", "application/dtmf-relay", "Signal=1\nDuration=-5", 0, 0, true},
		{"plain two digits", "application/dtmf", "12", 0, 0, true},
		{"other type", "application/sdp", "v=0", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, dur, err := ParseDTMFInfo(tc.ct, []byte(tc.body))
			if tc.err {
				if !errors.Is(err, ErrNotDTMF) {
					t.Fatalf("err = %v, want ErrNotDTMF", err)
				}
				return
			}
			if err != nil || d != tc.digit || dur != tc.dur {
				t.Fatalf("got %q %v %v, want %q %v", d, dur, err, tc.digit, tc.dur)
			}
		})
	}
}

func FuzzParseDTMFInfo(f *testing.F) {
	f.Add("application/dtmf-relay", []byte("Signal=5\r\nDuration=160\r\n"))
	f.Add("application/dtmf", []byte("#"))
	f.Add("application/dtmf-relay", []byte("Signal=11\nDuration=99999999999999999999"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		d, dur, err := ParseDTMFInfo(ct, body)
		if err != nil {
			return
		}
		if _, ok := dtmfDigit(string(d)); !ok || dur < 0 || dur > time.Minute {
			t.Fatalf("accepted digit %q duration %v", d, dur)
		}
	})
}
