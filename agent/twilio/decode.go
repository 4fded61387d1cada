package twilio

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/switchboard-voice/switchboard/agent"
)

// BotKind is the kind of a message from the bot.
type BotKind uint8

// Bot message kinds. BotUnknown is a well-formed message with an event the
// gateway does not act on (ignored, as Twilio ignores them).
const (
	BotUnknown    BotKind = iota
	BotMedia              // audio to play: Payload
	BotMark               // Name, echoed once the audio before it has played
	BotClear              // drop queued audio (barge-in)
	BotHangup             // end the call: Reason
	BotTransfer           // hand the caller over: Transfer
	BotSendDigits         // DTMF to the caller: Digits
	BotBridge             // warm transfer: connect caller and human
	BotCancel             // warm transfer: release the human
)

var botKindNames = [...]string{"unknown", "media", "mark", "clear", "hangup", "transfer", "sendDigits", "bridge", "cancel"}

func (k BotKind) String() string {
	if int(k) < len(botKindNames) {
		return botKindNames[k]
	}
	return fmt.Sprintf("BotKind(%d)", k)
}

// BotMessage is one decoded, validated message from the bot.
type BotMessage struct {
	Kind BotKind
	// Event is the message's event name (useful for BotUnknown).
	Event     string
	StreamSid string
	// Payload is µ-law audio (BotMedia). From Decoder.Decode it aliases the
	// decoder's buffer until the next Decode.
	Payload  []byte
	Name     string // BotMark
	Reason   string // BotHangup
	Digits   string // BotSendDigits, upper case
	Transfer agent.TransferRequest
}

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("twilio: malformed bot message")

// Bounds on bot input (the WebSocket read limit bounds the whole message).
const (
	maxMessageBytes = 1 << 20
	maxNameLen      = 256 // mark names, hangup reasons
	maxDigits       = 64
	maxTargetLen    = 512
	maxContextLen   = 1024
	maxHeaders      = 16
	maxHeaderLen    = 512
	maxEventLen     = 64
)

// wireIn is the bot message as JSON. The hot fields are raw so that decoding
// a media message reuses buffers instead of allocating strings.
type wireIn struct {
	Event     json.RawMessage `json:"event"`
	StreamSid json.RawMessage `json:"streamSid"`
	Media     struct {
		Payload json.RawMessage `json:"payload"`
	} `json:"media"`
	Mark       *struct{ Name *string }  `json:"mark"`
	Hangup     *struct{ Reason string } `json:"hangup"`
	SendDigits *struct{ Digits string } `json:"sendDigits"`
	Transfer   *struct {
		Mode    string            `json:"mode"`
		Target  string            `json:"target"`
		Headers map[string]string `json:"headers"`
		Context string            `json:"context"`
	} `json:"transfer"`
}

// Decoder decodes bot messages, reusing its buffers between calls. It is not
// safe for concurrent use.
type Decoder struct {
	w       wireIn
	payload []byte
	lastSid string
}

// DecodeBotMessage decodes and validates one bot message. The result owns
// its Payload.
func DecodeBotMessage(data []byte) (BotMessage, error) {
	var d Decoder
	return d.Decode(data)
}

// Decode decodes and validates one bot message. A media Payload aliases the
// decoder's buffer and is valid until the next call.
func (d *Decoder) Decode(data []byte) (BotMessage, error) {
	if len(data) > maxMessageBytes {
		return BotMessage{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(data))
	}
	if m, handled, err := d.decodeMediaFast(data); handled {
		return m, err
	}
	return d.decodeJSON(data)
}

// decodeJSON is Decode through encoding/json, for every kind of message.
func (d *Decoder) decodeJSON(data []byte) (BotMessage, error) {
	d.reset()
	if err := json.Unmarshal(data, &d.w); err != nil {
		return BotMessage{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var m BotMessage
	switch string(d.w.Event) {
	case `"media"`:
		m.Kind, m.Event = BotMedia, "media"
		p, err := d.decodePayload(d.w.Media.Payload)
		if err != nil {
			return BotMessage{}, err
		}
		m.Payload = p
	default:
		ev, err := rawString(d.w.Event, "event", maxEventLen)
		if err != nil {
			return BotMessage{}, err
		}
		if ev == "" {
			return BotMessage{}, fmt.Errorf("%w: no event", ErrMalformed)
		}
		m.Event = ev
		if err := d.decodeControl(&m); err != nil {
			return BotMessage{}, err
		}
	}
	sid, err := d.streamSid(d.w.StreamSid)
	if err != nil {
		return BotMessage{}, err
	}
	m.StreamSid = sid
	return m, nil
}

func (d *Decoder) reset() {
	ev, sid, payload := d.w.Event[:0], d.w.StreamSid[:0], d.w.Media.Payload[:0]
	d.w = wireIn{Event: ev, StreamSid: sid}
	d.w.Media.Payload = payload
}

func (d *Decoder) decodeControl(m *BotMessage) error {
	w := &d.w
	switch m.Event {
	case "mark":
		if w.Mark == nil || w.Mark.Name == nil || *w.Mark.Name == "" {
			return fmt.Errorf("%w: mark without name", ErrMalformed)
		}
		if len(*w.Mark.Name) > maxNameLen {
			return fmt.Errorf("%w: mark name over %d bytes", ErrMalformed, maxNameLen)
		}
		m.Kind, m.Name = BotMark, *w.Mark.Name
	case "clear":
		m.Kind = BotClear
	case "hangup":
		m.Kind = BotHangup
		if w.Hangup != nil {
			if len(w.Hangup.Reason) > maxNameLen || !printable(w.Hangup.Reason, true) {
				return fmt.Errorf("%w: hangup reason must be at most %d bytes without control characters", ErrMalformed, maxNameLen)
			}
			m.Reason = w.Hangup.Reason
		}
	case "sendDigits":
		if w.SendDigits == nil {
			return fmt.Errorf("%w: sendDigits without digits", ErrMalformed)
		}
		digits, err := validDigits(w.SendDigits.Digits)
		if err != nil {
			return err
		}
		m.Kind, m.Digits = BotSendDigits, digits
	case "transfer":
		if w.Transfer == nil {
			return fmt.Errorf("%w: transfer without details", ErrMalformed)
		}
		t := w.Transfer
		req := agent.TransferRequest{Mode: agent.TransferMode(t.Mode), Target: t.Target, Context: t.Context}
		if err := validTransfer(&req, t.Headers); err != nil {
			return err
		}
		m.Kind, m.Transfer = BotTransfer, req
	case "bridge":
		m.Kind = BotBridge
	case "cancel":
		m.Kind = BotCancel
	default:
		m.Kind = BotUnknown
	}
	return nil
}

// decodePayload base64-decodes a media payload into the decoder's buffer.
// Standard padding is expected; unpadded input is accepted too.
func (d *Decoder) decodePayload(raw json.RawMessage) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, fmt.Errorf("%w: media without a payload string", ErrMalformed)
	}
	src := raw[1 : len(raw)-1]
	if bytes.IndexByte(src, '\\') >= 0 { // JSON escapes (e.g. "\/"): unquote first
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
		}
		src = []byte(s)
	}
	if len(src) == 0 {
		return nil, fmt.Errorf("%w: empty media payload", ErrMalformed)
	}
	enc := base64.StdEncoding
	if len(src)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	if n := enc.DecodedLen(len(src)); cap(d.payload) < n {
		d.payload = make([]byte, n)
	}
	n, err := enc.Decode(d.payload[:cap(d.payload)], src)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty media payload", ErrMalformed)
	}
	return d.payload[:n], nil
}

// rawString unquotes a raw JSON string value of at most max bytes.
func rawString(raw json.RawMessage, field string, max int) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	var s string
	if inner, ok := simpleString(raw); ok {
		s = string(inner)
	} else if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %s is not a string", ErrMalformed, field)
	}
	if len(s) > max {
		return "", fmt.Errorf("%w: %s over %d bytes", ErrMalformed, field, max)
	}
	return s, nil
}

// simpleString returns the contents of a raw JSON string without escapes.
func simpleString(raw json.RawMessage) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	return inner, bytes.IndexByte(inner, '\\') < 0
}

// streamSid returns the message's streamSid ("" when absent or null),
// reusing the last one's string when it repeats (every message of a stream
// carries the same one).
func (d *Decoder) streamSid(raw []byte) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if inner, ok := simpleString(raw); ok && string(inner) == d.lastSid {
		return d.lastSid, nil
	}
	sid, err := rawString(raw, "streamSid", 64)
	if err == nil {
		d.lastSid = sid
	}
	return sid, err
}
