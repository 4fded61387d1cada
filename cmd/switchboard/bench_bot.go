package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/coder/websocket"
)

// benchBot is the bench's in-process Twilio Media Streams echo bot. It does
// what agent/twilio's NewEchoBot does (every media payload straight back),
// but it also stamps each frame as it arrives and as its echo leaves, on the
// bench's clock, so inbound (RTP in → bot) and outbound (bot → RTP out) are
// measured apart. It is lean on purpose: it shares the CPU with the gateway
// and the callers, so media messages are handled without a JSON decode
// (the payload is found by its key) and with buffers reused per connection.
type benchBot struct {
	calls *benchRegistry
	clock *benchClock
	stats *benchStats
	log   *slog.Logger
	ctx   context.Context // ends every connection (the run is over)
}

var payloadKey = []byte(`"payload":"`)

func (b *benchBot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		b.log.Warn("bench bot: handshake failed", "error", err)
		return
	}
	defer func() { _ = conn.CloseNow() }()
	conn.SetReadLimit(1 << 20)
	b.stats.botConns.Add(1)
	ctx := b.ctx
	var (
		in        bytes.Buffer
		out       []byte
		streamSid string
		marker    [12]byte
	)
	for {
		typ, rd, err := conn.Reader(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure && ctx.Err() == nil {
				b.stats.botAbnormal.Add(1)
			}
			return
		}
		in.Reset()
		if _, err := in.ReadFrom(rd); err != nil {
			b.stats.botAbnormal.Add(1)
			return
		}
		at := b.clock.now()
		if typ != websocket.MessageText {
			continue
		}
		msg := in.Bytes()
		payload, isMedia := mediaPayload(msg)
		if !isMedia {
			var m struct {
				Event     string `json:"event"`
				StreamSid string `json:"streamSid"`
			}
			if json.Unmarshal(msg, &m) != nil {
				b.stats.botMalformed.Add(1)
				continue
			}
			if m.Event == "start" {
				streamSid = m.StreamSid
			}
			continue
		}
		b.stats.botMedia.Add(1)
		var media *benchMedia
		var frame uint32
		if len(payload) >= 16 {
			if n, err := base64.StdEncoding.Decode(marker[:], payload[:16]); err == nil && n == 12 {
				if call, f, ok := parseBenchFrame(marker[:]); ok {
					if media = b.calls.get(call); media != nil && !media.botRead(f, at) {
						media = nil // a duplicate: echo it, do not count it twice
					}
					frame = f
				}
			}
		}
		out = append(out[:0], `{"event":"media","streamSid":"`...)
		out = append(out, streamSid...)
		out = append(out, `","media":{"payload":"`...)
		out = append(out, payload...)
		out = append(out, `"}}`...)
		sent := b.clock.now()
		if err := conn.Write(ctx, websocket.MessageText, out); err != nil {
			return
		}
		if media != nil {
			media.botWrote(frame, sent)
		}
	}
}

// mediaPayload finds the base64 payload of a `media` message without
// decoding the JSON: the gateway writes `"event":"media"` and a payload
// that is plain base64 (no escapes).
func mediaPayload(msg []byte) ([]byte, bool) {
	if !bytes.Contains(msg, []byte(`"event":"media"`)) {
		return nil, false
	}
	i := bytes.Index(msg, payloadKey)
	if i < 0 {
		return nil, false
	}
	rest := msg[i+len(payloadKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

// benchRegistry maps call indexes to calls in progress, for the bot.
type benchRegistry struct{ calls []atomic.Pointer[benchMedia] }

func newBenchRegistry(n int) *benchRegistry {
	return &benchRegistry{calls: make([]atomic.Pointer[benchMedia], n)}
}

func (r *benchRegistry) get(i uint32) *benchMedia {
	if int(i) >= len(r.calls) {
		return nil
	}
	return r.calls[i].Load()
}

func (r *benchRegistry) set(i uint32, m *benchMedia) { r.calls[i].Store(m) }
