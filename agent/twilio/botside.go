package twilio

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// This file is the bot's side of the protocol, shared by the built-in bots
// (`switchboard agent serve`): reading what the gateway sends, sending
// media, marks, clear and hangup, and checking that marks come back in the
// order they were sent.

// botOut is what a built-in bot sends.
type botOut struct {
	Event     string     `json:"event"`
	StreamSid string     `json:"streamSid,omitempty"`
	Media     *mediaInfo `json:"media,omitempty"`
	Mark      *markInfo  `json:"mark,omitempty"`
	Hangup    *hangupOut `json:"hangup,omitempty"`
}

type hangupOut struct {
	Reason string `json:"reason,omitempty"`
}

// botPeer is one stream as a built-in bot sees it. It is used from the
// connection's single goroutine.
type botPeer struct {
	conn      *websocket.Conn
	ctx       context.Context
	log       *slog.Logger
	prefix    string // "echo bot: ", for log messages tests look for
	streamSid string
	pending   []string // marks sent and not yet echoed, oldest first
}

// errStreamEnded is returned by botPeer.read when the gateway closed the
// stream normally.
var errStreamEnded = errors.New("stream ended")

// acceptBot upgrades r and returns the peer; nil when the handshake failed
// (logged).
func acceptBot(w http.ResponseWriter, r *http.Request, log *slog.Logger, prefix string) *botPeer {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		log.Warn(prefix+"websocket handshake failed", "remote", r.RemoteAddr, "error", err)
		return nil
	}
	conn.SetReadLimit(maxMessageBytes)
	// The gateway ends the stream; the request's context ends with the
	// server, which must not cut a call short.
	return &botPeer{conn: conn, ctx: context.WithoutCancel(r.Context()),
		log: log.With("remote", r.RemoteAddr), prefix: prefix}
}

// read returns the gateway's next message. Reading ends with errStreamEnded
// on a normal close, or the connection's error.
func (p *botPeer) read() (outMessage, error) {
	for {
		_, data, err := p.conn.Read(p.ctx)
		if err != nil {
			if st := websocket.CloseStatus(err); st == websocket.StatusNormalClosure || st == websocket.StatusGoingAway {
				return outMessage{}, errStreamEnded
			}
			return outMessage{}, err
		}
		var m outMessage
		if err := json.Unmarshal(data, &m); err != nil {
			p.log.Warn(p.prefix+"malformed message", "error", err)
			continue
		}
		switch m.Event {
		case "connected":
			p.log.Info(p.prefix+"connected", "protocol", m.Protocol, "version", m.Version)
		case "start":
			p.streamSid = m.StreamSid
			if m.Start != nil {
				p.log.Info(p.prefix+"start", "stream_sid", p.streamSid, "call_sid", m.Start.CallSid,
					"from", m.Start.CustomParameters["from_number"], "to", m.Start.CustomParameters["to_number"])
			}
		case "mark":
			if m.Mark != nil {
				p.markEchoed(m.Mark.Name)
			}
		}
		return m, nil
	}
}

func (p *botPeer) send(m *botOut) error {
	m.StreamSid = p.streamSid
	data, err := json.Marshal(m)
	if err == nil {
		err = p.conn.Write(p.ctx, websocket.MessageText, data)
	}
	if err != nil {
		p.log.Warn(p.prefix+"write failed", "event", m.Event, "error", err)
	}
	return err
}

// media sends µ-law audio.
func (p *botPeer) media(ulaw []byte) error {
	return p.send(&botOut{Event: "media", Media: &mediaInfo{Payload: base64.StdEncoding.EncodeToString(ulaw)}})
}

// mark sends a mark and remembers it, to check the order it comes back in.
func (p *botPeer) mark(name string) error {
	p.pending = append(p.pending, name)
	return p.send(&botOut{Event: "mark", Mark: &markInfo{Name: name}})
}

// clear sends `clear` and logs when it went, to the microsecond, so that a
// test can tell the gateway's audio sent before it from audio sent after.
func (p *botPeer) clear(attrs ...any) error {
	at := time.Now()
	if err := p.send(&botOut{Event: "clear"}); err != nil {
		return err
	}
	p.log.Info(p.prefix+"clear sent", append(attrs, "sent_unix_us", at.UnixMicro(), "pending_marks", len(p.pending))...)
	return nil
}

// hangup asks the gateway to end the call.
func (p *botPeer) hangup(reason string) error {
	if err := p.send(&botOut{Event: "hangup", Hangup: &hangupOut{Reason: reason}}); err != nil {
		return err
	}
	p.log.Info(p.prefix+"hangup sent", "reason", reason)
	return nil
}

// markEchoed checks a mark the gateway sent back against the oldest one
// pending: the protocol echoes marks in the order they were sent.
func (p *botPeer) markEchoed(name string) {
	if len(p.pending) == 0 || p.pending[0] != name {
		want := ""
		if len(p.pending) > 0 {
			want = p.pending[0]
		}
		p.log.Warn(p.prefix+"mark out of order", "name", name, "want", want)
		for i, n := range p.pending { // resynchronise past it
			if n == name {
				p.pending = p.pending[i+1:]
				break
			}
		}
		return
	}
	p.pending = p.pending[1:]
	p.log.Debug(p.prefix+"mark played", "name", name)
}

// ended logs how the stream ended.
func (p *botPeer) ended(err error, attrs ...any) {
	if errors.Is(err, errStreamEnded) {
		p.log.Debug(p.prefix+"closed", attrs...)
		return
	}
	p.log.Info(p.prefix+"connection ended", append(attrs, "error", err)...)
}
