package twilio

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
)

// builtinBotSession runs a built-in bot behind an HTTP server and connects
// the gateway's side of the protocol to it, with a fake call.
func builtinBotSession(t *testing.T, bot http.Handler) (*session, *fakeCall) {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		bot.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { wg.Wait(); srv.Close() })
	a, err := New(Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http")})
	if err != nil {
		t.Fatal(err)
	}
	a.closeGrace = 300 * time.Millisecond
	log, _ := testLogger(t)
	call := newFakeCall(log)
	sess, err := a.Start(context.Background(), call)
	if err != nil {
		t.Fatal(err)
	}
	s := sess.(*session)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Wait(ctx)
	})
	return s, call
}

// The echo bot plays audio back, sends a mark after every half second of it
// (which come back in order), answers digits with marks and * with clear
// first.
func TestEchoBotModeMarksAndClear(t *testing.T) {
	checkGoroutines(t)
	botLog, botBuf := testLogger(t)
	s, call := builtinBotSession(t, NewEchoBot(botLog))
	call.mu.Lock()
	call.onMark = s.OnMark // nothing queued: every mark is played at once
	call.mu.Unlock()
	frame := media.Tone(700, media.FrameDuration, 0.3)
	for i := 1; i <= 2*echoMarkEvery+5; i++ {
		s.OnAudio(frame)
		call.expect(t, "play:160")
		if i%echoMarkEvery == 0 {
			call.expect(t, "mark:echo-"+strconv.Itoa(i/echoMarkEvery))
		}
	}
	s.OnDTMF('4', 0)
	call.expect(t, "mark:dtmf-4")
	s.OnDTMF('*', 0)
	call.expect(t, "clear")
	call.expect(t, "mark:dtmf-*")
	s.OnDTMF('1', 0) // its mark comes back after the others: all were in order
	call.expect(t, "mark:dtmf-1")
	waitLog(t, botBuf, `msg="echo bot: mark played"`, "name=dtmf-1")
	for _, bad := range []string{"out of order", "malformed"} {
		if strings.Contains(botBuf.String(), bad) {
			t.Errorf("echo bot logged %q:\n%s", bad, botBuf)
		}
	}
	if !strings.Contains(botBuf.String(), `msg="echo bot: clear sent"`) {
		t.Errorf("echo bot did not log its clear:\n%s", botBuf)
	}
}

// waitLog waits for a line of buf holding every one of parts.
func waitLog(t *testing.T, buf *syncBuffer, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(buf.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no log line with %q:\n%s", parts, buf)
}

// The prompt bot says its prompt and a mark; caller speech or a digit while
// it speaks makes it clear (barge-in); 600 ms of quiet after that, or its
// idle time after a complete prompt, makes it say the prompt again; # makes
// it hang up.
func TestPromptBotMode(t *testing.T) {
	checkGoroutines(t)
	prompt := media.Tone(500, 100*time.Millisecond, 0.3)
	botLog, botBuf := testLogger(t)
	s, call := builtinBotSession(t, NewPromptBot(PromptBotConfig{Prompt: prompt, IdleReprompt: 200 * time.Millisecond, Log: botLog}))
	quiet := make([]int16, media.FrameSamples)
	speech := media.Tone(300, media.FrameDuration, 0.3)
	feed := func(f []int16, n int) {
		for range n {
			s.OnAudio(f)
			time.Sleep(time.Millisecond) // keep the bot's view in order with our control messages
		}
	}
	said := func(n string) {
		t.Helper()
		got := 0
		for got < len(prompt) {
			select {
			case ev := <-call.events:
				if strings.HasPrefix(ev, "play:") {
					got += atoiSuffix(ev)
				} else if ev != "mark:"+n {
					t.Fatalf("while the prompt was sent: %s", ev)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("prompt %s: %d of %d samples sent", n, got, len(prompt))
			}
		}
		call.expect(t, "mark:"+n)
	}
	said("prompt-1")

	// Speech barges in; the gateway answers the pending mark at the clear.
	feed(quiet, 5)
	feed(speech, promptSpeechFrames)
	call.expect(t, "clear")
	s.OnMark("prompt-1")
	waitLog(t, botBuf, `msg="prompt bot: clear sent"`, "cause=speech")
	// The caller talks on, then is quiet: the bot says it again.
	feed(speech, 10)
	feed(quiet, promptQuietFrames)
	said("prompt-2")

	// A digit barges in too.
	s.OnDTMF('3', 0)
	call.expect(t, "clear")
	s.OnMark("prompt-2")
	waitLog(t, botBuf, `msg="prompt bot: clear sent"`, "cause=dtmf", "digit=3")
	feed(quiet, promptQuietFrames)
	said("prompt-3")

	// Played to the end, then nothing from the caller: said again after
	// the idle time (200 ms = 10 frames).
	s.OnMark("prompt-3")
	waitLog(t, botBuf, `msg="prompt bot: prompt played"`, "prompt=3")
	feed(quiet, 10)
	said("prompt-4")
	s.OnMark("prompt-4")

	res := waitResult(s, context.Background())
	s.OnDTMF('#', 0)
	err := within(t, res, 3*time.Second)
	var he *agent.HangupError
	if !errors.As(err, &he) || he.Reason != "caller pressed #" {
		t.Fatalf("Wait = %v, want the bot's hangup", err)
	}
	if strings.Contains(botBuf.String(), "out of order") {
		t.Errorf("marks came back out of order:\n%s", botBuf)
	}
}

func atoiSuffix(ev string) int {
	n := 0
	for _, c := range ev[strings.IndexByte(ev, ':')+1:] {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestDefaultPromptPhrase(t *testing.T) {
	p := DefaultPromptPhrase()
	if len(p) != 2*media.SampleRate {
		t.Fatalf("%d samples, want 2 s", len(p))
	}
	for i, hz := range []float64{440, 554, 659, 880} {
		note := p[i*4000+400 : i*4000+2800]
		if f := media.DominantFrequency(note, 300, 1000, 2); f < hz-5 || f > hz+5 {
			t.Errorf("note %d at %.0f Hz, want %.0f", i, f, hz)
		}
	}
}
