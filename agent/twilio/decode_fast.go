package twilio

import (
	"bytes"
	"encoding/json"
)

// The bot sends fifty media messages a second per call, and encoding/json
// allocates on every one of them. scanMedia picks the three fields a media
// message needs out of already validated JSON without allocating; anything
// it is not sure of (escaped keys, keys that differ from ours only in case,
// which encoding/json would match, a media value that is not an object)
// makes it give up, and the message takes the encoding/json path.

// mediaFields are the raw values of a media message's fields, as
// json.RawMessage would hold them. The last of duplicated keys wins, as in
// encoding/json.
type mediaFields struct {
	event, streamSid, payload []byte
}

var wireKeys = [...]string{"event", "streamSid", "media", "mark", "hangup", "sendDigits", "transfer"}

// scanMedia reports ok only when data (valid JSON) is an object it could
// read exactly as encoding/json would.
func scanMedia(data []byte) (f mediaFields, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return f, false
	}
	i++
	for {
		i = skipSpace(data, i)
		if data[i] == '}' {
			return f, true
		}
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		key, next, plain := scanKey(data, i)
		if !plain {
			return f, false
		}
		i = skipSpace(data, next)
		i = skipSpace(data, i+1) // the colon
		end := skipValue(data, i)
		switch string(key) {
		case "event":
			f.event = data[i:end]
		case "streamSid":
			f.streamSid = data[i:end]
		case "media":
			payload, found, fine := scanPayload(data[i:end])
			if !fine {
				return f, false
			}
			if found {
				f.payload = payload
			}
		default:
			if foldsToWireKey(key) {
				return f, false
			}
		}
		i = end
	}
}

// scanPayload finds "payload" in a media object.
func scanPayload(obj []byte) (payload []byte, found, ok bool) {
	if obj[0] != '{' {
		return nil, false, false // null, or a type error encoding/json reports
	}
	i := 1
	for {
		i = skipSpace(obj, i)
		if obj[i] == '}' {
			return payload, found, true
		}
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		key, next, plain := scanKey(obj, i)
		if !plain {
			return nil, false, false
		}
		i = skipSpace(obj, next)
		i = skipSpace(obj, i+1)
		end := skipValue(obj, i)
		switch {
		case string(key) == "payload":
			payload, found = obj[i:end], true
		case bytes.EqualFold(key, []byte("payload")):
			return nil, false, false
		}
		i = end
	}
}

func foldsToWireKey(key []byte) bool {
	for _, k := range wireKeys {
		if bytes.EqualFold(key, []byte(k)) {
			return true
		}
	}
	return false
}

// scanKey reads the object key starting at data[i] (a quote); plain is false
// when the key has escapes.
func scanKey(data []byte, i int) (key []byte, next int, plain bool) {
	end := skipString(data, i)
	key = data[i+1 : end-1]
	return key, end, bytes.IndexByte(key, '\\') < 0
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string starting at data[i].
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the value starting at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return i
	}
}

// decodeMediaFast is Decode for a media message; handled is false when the
// message must take the encoding/json path.
func (d *Decoder) decodeMediaFast(data []byte) (m BotMessage, handled bool, err error) {
	if !json.Valid(data) {
		return m, false, nil
	}
	f, ok := scanMedia(data)
	if !ok || string(f.event) != `"media"` {
		return m, false, nil
	}
	m.Kind, m.Event = BotMedia, "media"
	if m.Payload, err = d.decodePayload(f.payload); err != nil {
		return BotMessage{}, true, err
	}
	if m.StreamSid, err = d.streamSid(f.streamSid); err != nil {
		return BotMessage{}, true, err
	}
	return m, true, nil
}
