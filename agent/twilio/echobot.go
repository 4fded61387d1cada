package twilio

import (
	"log/slog"
	"net/http"
	"strconv"
)

// echoMarkEvery is how many echoed media messages (20 ms each from the
// gateway) go between two of the echo bot's marks: one every half second.
const echoMarkEvery = 25

// NewEchoBot returns a WebSocket handler that speaks the bot's side of the
// protocol, for `switchboard agent serve --mode echo`, tests and load runs:
//
//   - every inbound media payload is played straight back;
//   - after every half second of echoed audio it sends a mark "echo-<n>",
//     so the gateway echoes a stream of marks in order as the audio plays;
//   - a `dtmf` is answered with a mark "dtmf-<digit>" after the audio
//     echoed so far; for `*` a `clear` goes first (barge-in: the queued
//     echo is dropped and the pending marks come back at once);
//   - marks coming back out of order are logged as a warning.
//
// log may be nil.
func NewEchoBot(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &echoBot{log: log}
}

type echoBot struct{ log *slog.Logger }

func (b *echoBot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := acceptBot(w, r, b.log, "echo bot: ")
	if p == nil {
		return
	}
	defer func() { _ = p.conn.CloseNow() }()
	media, marks := 0, 0
	for {
		m, err := p.read()
		if err != nil {
			p.ended(err, "media_messages", media, "marks", marks)
			return
		}
		switch m.Event {
		case "media":
			if m.Media == nil {
				continue
			}
			media++
			if p.send(&botOut{Event: "media", Media: &mediaInfo{Payload: m.Media.Payload}}) != nil {
				return
			}
			if media%echoMarkEvery == 0 {
				marks++
				if p.mark("echo-"+strconv.Itoa(marks)) != nil {
					return
				}
			}
		case "dtmf":
			if m.DTMF == nil {
				continue
			}
			if m.DTMF.Digit == "*" && p.clear("digit", "*") != nil {
				return
			}
			if p.mark("dtmf-"+m.DTMF.Digit) != nil {
				return
			}
		case "stop":
			p.log.Info("echo bot: stop", "stream_sid", p.streamSid, "media_messages", media)
		}
	}
}
