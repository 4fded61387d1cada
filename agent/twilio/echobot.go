package twilio

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/coder/websocket"
)

// NewEchoBot returns a WebSocket handler that speaks the bot's side of the
// protocol, for `switchboard agent serve`, tests and load runs: it plays
// every inbound media payload straight back, and answers a `dtmf` with a
// mark named "dtmf-<digit>" sent after the audio echoed so far, so the
// gateway echoes the mark once that audio has played. log may be nil.
func NewEchoBot(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &echoBot{log: log}
}

type echoBot struct{ log *slog.Logger }

// echoOut is what the echo bot sends.
type echoOut struct {
	Event     string     `json:"event"`
	StreamSid string     `json:"streamSid"`
	Media     *mediaInfo `json:"media,omitempty"`
	Mark      *markInfo  `json:"mark,omitempty"`
}

func (b *echoBot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		b.log.Warn("echo bot: websocket handshake failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	defer func() { _ = conn.CloseNow() }()
	conn.SetReadLimit(maxMessageBytes)
	log := b.log.With("remote", r.RemoteAddr)
	ctx := context.WithoutCancel(r.Context())
	var streamSid string
	media := 0
	send := func(m *echoOut) bool {
		data, err := json.Marshal(m)
		if err == nil {
			err = conn.Write(ctx, websocket.MessageText, data)
		}
		if err != nil {
			log.Warn("echo bot: write failed", "error", err)
			return false
		}
		return true
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			if st := websocket.CloseStatus(err); st == websocket.StatusNormalClosure || st == websocket.StatusGoingAway {
				log.Debug("echo bot: closed", "media_messages", media)
			} else {
				log.Info("echo bot: connection ended", "error", err, "media_messages", media)
			}
			return
		}
		var m outMessage
		if err := json.Unmarshal(data, &m); err != nil {
			log.Warn("echo bot: malformed message", "error", err)
			continue
		}
		switch m.Event {
		case "connected":
			log.Info("echo bot: connected", "protocol", m.Protocol, "version", m.Version)
		case "start":
			streamSid = m.StreamSid
			if m.Start != nil {
				log.Info("echo bot: start", "stream_sid", streamSid, "call_sid", m.Start.CallSid,
					"from", m.Start.CustomParameters["from_number"], "to", m.Start.CustomParameters["to_number"])
			}
		case "media":
			media++
			if m.Media != nil && !send(&echoOut{Event: "media", StreamSid: streamSid, Media: &mediaInfo{Payload: m.Media.Payload}}) {
				return
			}
		case "dtmf":
			if m.DTMF != nil && !send(&echoOut{Event: "mark", StreamSid: streamSid, Mark: &markInfo{Name: "dtmf-" + m.DTMF.Digit}}) {
				return
			}
		case "mark":
			if m.Mark != nil {
				log.Debug("echo bot: mark played", "name", m.Mark.Name)
			}
		case "stop":
			log.Info("echo bot: stop", "stream_sid", streamSid, "media_messages", media)
		default:
			log.Debug("echo bot: event", "event", m.Event)
		}
	}
}
