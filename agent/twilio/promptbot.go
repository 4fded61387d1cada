package twilio

import (
	"encoding/base64"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// PromptBotConfig configures NewPromptBot.
type PromptBotConfig struct {
	// Prompt is what the bot says, as 8 kHz linear PCM (media.ReadWAVFile);
	// nil means the built-in phrase (DefaultPromptPhrase).
	Prompt []int16
	// SpeechRMS is the level (RMS of a 20 ms frame, full scale 32767) above
	// which caller audio counts as speech. Default 1000, about -30 dBFS:
	// well above line noise, well below a talking caller.
	SpeechRMS float64
	// IdleReprompt is how long the bot waits, after its prompt has played,
	// for the caller to say or press something before it says the prompt
	// again. Default 10s: it also keeps the bot well inside the gateway's
	// silence timeout.
	IdleReprompt time.Duration
	// Log may be nil.
	Log *slog.Logger
}

// How the prompt bot hears the caller, in 20 ms frames of caller audio.
const (
	promptSpeechFrames = 3  // this many loud frames in a row are speech (not a click)
	promptQuietFrames  = 30 // 600 ms without speech ends the caller's turn
	promptChunk        = 200 * time.Millisecond
)

// NewPromptBot returns a WebSocket handler for `switchboard agent serve
// --mode prompt`: a bot that talks and can be interrupted, the smallest
// conversation there is.
//
//   - On `start` it sends its prompt as media (in 200 ms messages, all at
//     once, as a TTS engine streams faster than real time), then a mark
//     "prompt-<n>".
//   - Barge-in: caller speech (SpeechRMS for 60 ms) or a DTMF digit while
//     the prompt is still playing makes it send `clear`, which silences the
//     caller's side within a frame and answers the pending mark.
//   - Once the caller has been quiet for 600 ms after speaking or pressing
//     a key, it says the prompt again; after IdleReprompt of silence
//     following a complete prompt, too.
//   - DTMF `#` makes it send `hangup` (reason "caller pressed #"): the
//     gateway ends the call with a BYE.
func NewPromptBot(cfg PromptBotConfig) http.Handler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Prompt == nil {
		cfg.Prompt = DefaultPromptPhrase()
	}
	if cfg.SpeechRMS <= 0 {
		cfg.SpeechRMS = 1000
	}
	if cfg.IdleReprompt <= 0 {
		cfg.IdleReprompt = 10 * time.Second
	}
	ulaw := make([]byte, len(cfg.Prompt))
	media.Encode(media.PCMU, ulaw, cfg.Prompt)
	return &promptBot{cfg: cfg, ulaw: ulaw}
}

// DefaultPromptPhrase is the prompt bot's built-in phrase: four rising
// notes (440, 554, 659 and 880 Hz, 400 ms each with 100 ms pauses, 2 s in
// all) at a third of full scale, with 5 ms fades so that no note clicks.
func DefaultPromptPhrase() []int16 {
	const fade = 40 // samples
	var out []int16
	for _, hz := range []float64{440, 554, 659, 880} {
		note := media.Tone(hz, 400*time.Millisecond, 0.33)
		for i := range fade {
			g := float64(i) / fade
			note[i] = int16(float64(note[i]) * g)
			note[len(note)-1-i] = int16(float64(note[len(note)-1-i]) * g)
		}
		out = append(out, note...)
		out = append(out, make([]int16, media.SampleRate/10)...)
	}
	return out
}

type promptBot struct {
	cfg  PromptBotConfig
	ulaw []byte // the prompt, µ-law
}

// promptState is where the conversation stands.
type promptState int

const (
	promptSpeaking  promptState = iota // the prompt is queued; its mark is not back
	promptWaiting                      // the prompt has played; waiting for the caller
	promptListening                    // the caller has the turn (barge-in, speech, a key)
)

func (b *promptBot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := acceptBot(w, r, b.cfg.Log, "prompt bot: ")
	if p == nil {
		return
	}
	defer func() { _ = p.conn.CloseNow() }()
	var (
		state               promptState
		prompts             int    // prompts said
		current             string // the mark after the current prompt
		loudRun, quietRun   int    // frames in a row above / below the speech level
		idle                int    // frames since the prompt played, while waiting
		hungUp              bool
		pcm                 = make([]int16, media.FrameSamples)
		idleFrames          = int(b.cfg.IdleReprompt / media.FrameDuration)
		chunk               = int(promptChunk * media.SampleRate / time.Second)
		say, bargeIn        func() error
		bargeInCause, digit string
	)
	say = func() error {
		prompts++
		for off := 0; off < len(b.ulaw); off += chunk {
			if err := p.media(b.ulaw[off:min(off+chunk, len(b.ulaw))]); err != nil {
				return err
			}
		}
		current = "prompt-" + strconv.Itoa(prompts)
		if err := p.mark(current); err != nil {
			return err
		}
		state, idle = promptSpeaking, 0
		p.log.Info("prompt bot: prompt sent", "prompt", prompts, "ms", len(b.ulaw)*1000/media.SampleRate)
		return nil
	}
	bargeIn = func() error {
		state, quietRun = promptListening, 0
		return p.clear("cause", bargeInCause, "digit", digit, "prompt", prompts)
	}
	for {
		m, err := p.read()
		if err != nil {
			p.ended(err, "prompts", prompts)
			return
		}
		if hungUp {
			continue // the gateway sends stop and closes
		}
		switch m.Event {
		case "start":
			err = say()
		case "media":
			if m.Media == nil {
				continue
			}
			if rms := frameRMS(pcm, m.Media.Payload); rms > b.cfg.SpeechRMS {
				loudRun, quietRun = loudRun+1, 0
			} else {
				loudRun, quietRun = 0, quietRun+1
			}
			speech := loudRun >= promptSpeechFrames
			switch state {
			case promptSpeaking:
				if speech {
					bargeInCause, digit = "speech", ""
					err = bargeIn()
				}
			case promptWaiting:
				if idle++; speech {
					state, quietRun = promptListening, 0
				} else if idle >= idleFrames {
					err = say()
				}
			case promptListening:
				if quietRun >= promptQuietFrames {
					err = say()
				}
			}
		case "dtmf":
			if m.DTMF == nil {
				continue
			}
			if m.DTMF.Digit == "#" {
				hungUp = true
				err = p.hangup("caller pressed #")
				break
			}
			if state == promptSpeaking {
				bargeInCause, digit = "dtmf", m.DTMF.Digit
				err = bargeIn()
			} else {
				state, quietRun = promptListening, 0
			}
		case "mark":
			if m.Mark != nil && m.Mark.Name == current && state == promptSpeaking {
				state, idle = promptWaiting, 0
				p.log.Info("prompt bot: prompt played", "prompt", prompts)
			}
		case "stop":
			p.log.Info("prompt bot: stop", "stream_sid", p.streamSid, "prompts", prompts)
		}
		if err != nil {
			return
		}
	}
}

// frameRMS decodes a base64 µ-law payload into pcm's storage and returns
// its RMS level; 0 for a payload it cannot read.
func frameRMS(pcm []int16, payload string) float64 {
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil || len(raw) == 0 {
		return 0
	}
	if cap(pcm) < len(raw) {
		pcm = make([]int16, len(raw))
	}
	pcm = pcm[:len(raw)]
	media.Decode(media.PCMU, pcm, raw)
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	return math.Sqrt(sum / float64(len(pcm)))
}
