package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

func TestBuiltinBotModes(t *testing.T) {
	wav := filepath.Join(t.TempDir(), "hello.wav")
	f, err := os.Create(wav)
	if err != nil {
		t.Fatal(err)
	}
	if err := media.WriteWAV(f, media.Tone(440, 200*time.Millisecond, 0.3), media.SampleRate); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode, prompt, wantErr string
	}{
		{"echo", "", ""},
		{"prompt", "", ""},
		{"prompt", wav, ""},
		{"prompt", wav + ".missing", "--prompt"},
		{"echo", wav, "--prompt needs --mode prompt"},
		{"chat", "", `--mode "chat": want echo or prompt`},
	} {
		h, err := builtinBot(tc.mode, tc.prompt, nil)
		switch {
		case tc.wantErr == "" && (err != nil || h == nil):
			t.Errorf("builtinBot(%q, %q) = %v, %v", tc.mode, tc.prompt, h, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("builtinBot(%q, %q) error %v, want ...%s...", tc.mode, tc.prompt, err, tc.wantErr)
		}
	}
}
