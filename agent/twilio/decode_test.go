package twilio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/agent"
)

func TestDecodeBotMessage(t *testing.T) {
	ok := []struct {
		in   string
		want BotMessage
	}{
		{`{"event":"media","streamSid":"MZ1","media":{"payload":"/38AgA=="}}`,
			BotMessage{Kind: BotMedia, Event: "media", StreamSid: "MZ1", Payload: []byte{0xff, 0x7f, 0, 0x80}}},
		{`{"event":"media","media":{"payload":"/38AgA"}}`, // unpadded
			BotMessage{Kind: BotMedia, Event: "media", Payload: []byte{0xff, 0x7f, 0, 0x80}}},
		{`{"event":"media","media":{"payload":"\/38AgA=="}}`, // escaped slash
			BotMessage{Kind: BotMedia, Event: "media", Payload: []byte{0xff, 0x7f, 0, 0x80}}},
		{`{"media":{"payload":"AA=="},"event":"media","extra":[1,2]}`,
			BotMessage{Kind: BotMedia, Event: "media", Payload: []byte{0}}},
		{`{"event":"mark","streamSid":"MZ1","mark":{"name":"turn-3"}}`, BotMessage{Kind: BotMark, Event: "mark", StreamSid: "MZ1", Name: "turn-3"}},
		{`{"event":"clear","streamSid":"MZ1"}`, BotMessage{Kind: BotClear, Event: "clear", StreamSid: "MZ1"}},
		{`{"event":"hangup"}`, BotMessage{Kind: BotHangup, Event: "hangup"}},
		{`{"event":"hangup","hangup":{"reason":"done"}}`, BotMessage{Kind: BotHangup, Event: "hangup", Reason: "done"}},
		{`{"event":"sendDigits","sendDigits":{"digits":"0123456789*#ABCDabcd"}}`,
			BotMessage{Kind: BotSendDigits, Event: "sendDigits", Digits: "0123456789*#ABCDABCD"}},
		{`{"event":"transfer","transfer":{"target":"+15550100003"}}`,
			BotMessage{Kind: BotTransfer, Event: "transfer", Transfer: agent.TransferRequest{Mode: agent.TransferCold, Target: "+15550100003"}}},
		{`{"event":"transfer","transfer":{"mode":"warm","target":"sip:a@b.example","headers":{"X-A":"1 2"},"context":"VIP, angry"}}`,
			BotMessage{Kind: BotTransfer, Event: "transfer", Transfer: agent.TransferRequest{Mode: agent.TransferWarm,
				Target: "sip:a@b.example", Headers: map[string]string{"X-A": "1 2"}, Context: "VIP, angry"}}},
		{`{"event":"bridge"}`, BotMessage{Kind: BotBridge, Event: "bridge"}},
		{`{"event":"cancel"}`, BotMessage{Kind: BotCancel, Event: "cancel"}},
		{`{"event":"speech_started","anything":{"goes":true}}`, BotMessage{Kind: BotUnknown, Event: "speech_started"}},
		{`{"event":"connected","streamSid":null}`, BotMessage{Kind: BotUnknown, Event: "connected"}},
	}
	for _, tc := range ok {
		got, err := DecodeBotMessage([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
	bad := []string{
		``, `null`, `[]`, `"media"`, `{}`, `{"event":""}`, `{"event":5}`, `{"event":null}`, `{"event":"media"`,
		`{"event":"media"}`, `{"event":"media","media":{}}`, `{"event":"media","media":{"payload":""}}`,
		`{"event":"media","media":{"payload":"!!!!"}}`, `{"event":"media","media":{"payload":5}}`,
		`{"event":"media","media":{"payload":"AA=="},"streamSid":7}`,
		`{"event":"mark"}`, `{"event":"mark","mark":{}}`, `{"event":"mark","mark":{"name":""}}`,
		`{"event":"mark","mark":{"name":"` + strings.Repeat("x", maxNameLen+1) + `"}}`,
		`{"event":"hangup","hangup":{"reason":"a\r\nb"}}`,
		`{"event":"sendDigits"}`, `{"event":"sendDigits","sendDigits":{"digits":""}}`,
		`{"event":"sendDigits","sendDigits":{"digits":"12E"}}`, `{"event":"sendDigits","sendDigits":{"digits":"1 2"}}`,
		`{"event":"sendDigits","sendDigits":{"digits":"` + strings.Repeat("1", maxDigits+1) + `"}}`,
		`{"event":"transfer"}`, `{"event":"transfer","transfer":{}}`,
		`{"event":"transfer","transfer":{"mode":"lukewarm","target":"+1555"}}`,
		`{"event":"transfer","transfer":{"target":"sip:a@b\r\nX-Evil: 1"}}`,
		`{"event":"transfer","transfer":{"target":"sip:a b@c"}}`,
		`{"event":"transfer","transfer":{"target":"+1","headers":{"Bad Name":"x"}}}`,
		`{"event":"transfer","transfer":{"target":"+1","headers":{"X-A":"x\ny"}}}`,
		`{"event":"transfer","transfer":{"target":"+1","context":"a\u0000b"}}`,
	}
	for _, in := range bad {
		if m, err := DecodeBotMessage([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %+v, %v; want ErrMalformed", in, m, err)
		}
	}
	if _, err := DecodeBotMessage(bytes.Repeat([]byte(" "), maxMessageBytes+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized message: %v", err)
	}
}

// A reused Decoder must not carry state from one message to the next.
func TestDecoderReuse(t *testing.T) {
	var d Decoder
	msgs := []string{
		`{"event":"transfer","transfer":{"mode":"warm","target":"+1555","headers":{"X-A":"1"}}}`,
		`{"event":"media","streamSid":"MZ1","media":{"payload":"/38AgA=="}}`,
		`{"event":"mark","mark":{"name":"a"}}`,
		`{"event":"transfer","transfer":{"target":"+1556"}}`,
		`{"event":"media","media":{"payload":"AA=="}}`,
		`{"event":"mark"}`,
	}
	for _, in := range msgs {
		got, gotErr := d.Decode([]byte(in))
		want, wantErr := DecodeBotMessage([]byte(in))
		if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: reused decoder %+v %v, fresh %+v %v", in, got, gotErr, want, wantErr)
		}
	}
}

func FuzzDecodeBotMessage(f *testing.F) {
	f.Add([]byte(`{"event":"media","streamSid":"MZ1","media":{"payload":"/38AgA=="}}`))
	f.Add([]byte(`{"event":"transfer","transfer":{"mode":"warm","target":"sip:a@b","headers":{"X-A":"1"},"context":"c"}}`))
	f.Add([]byte(`{"event":"sendDigits","sendDigits":{"digits":"12#"}}`))
	f.Add([]byte(`{"event": "media", "streamSid": "MZ1", "media": {"track": "outbound", "payload": "/38AgA=="}}`))
	f.Add([]byte(`{"EVENT":"mark","event":"media","media":{"payload":"/38A"},"Media":{"Payload":"AAAA"}}`))
	f.Add([]byte(`{"event":"media","media":{"payload":"/38A"},"media":{"chunk":"2"},"streamSid":null}`))
	f.Add([]byte(`{"event":"media","media":null,"extra":[1,{"a":"}"}],"n":-1.5e3}`))
	var reused Decoder
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeBotMessage(data)
		// The same bytes through a decoder that has seen other messages.
		_, _ = reused.Decode([]byte(`{"event":"transfer","transfer":{"target":"+1555","headers":{"X-B":"2"}}}`))
		m2, err2 := reused.Decode(data)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(m, m2) {
			t.Fatalf("fresh %+v %v, reused %+v %v", m, err, m2, err2)
		}
		// The allocation-free media scan must agree with encoding/json.
		var slow Decoder
		m3, err3 := slow.decodeJSON(data)
		if (err == nil) != (err3 == nil) || !reflect.DeepEqual(m, m3) {
			t.Fatalf("fast %+v %v, encoding/json %+v %v", m, err, m3, err3)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		switch m.Kind {
		case BotMedia:
			if len(m.Payload) == 0 {
				t.Fatal("media without payload")
			}
		case BotMark:
			if m.Name == "" || len(m.Name) > maxNameLen {
				t.Fatalf("mark name %q", m.Name)
			}
		case BotSendDigits:
			if m.Digits == "" || strings.Trim(m.Digits, "0123456789*#ABCD") != "" {
				t.Fatalf("digits %q", m.Digits)
			}
		case BotTransfer:
			tr := m.Transfer
			if tr.Mode != agent.TransferCold && tr.Mode != agent.TransferWarm || tr.Target == "" ||
				strings.ContainsAny(tr.Target+tr.Context, "\r\n\x00") {
				t.Fatalf("transfer %+v", tr)
			}
			for k, v := range tr.Headers {
				if !isToken(k) || strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header %q: %q", k, v)
				}
			}
		case BotHangup:
			if strings.ContainsAny(m.Reason, "\r\n\x00") {
				t.Fatalf("reason %q", m.Reason)
			}
		}
		if m.Kind == BotMedia {
			// Whatever decoded must re-encode to an accepted message.
			again, err := DecodeBotMessage([]byte(`{"event":"media","media":{"payload":"` +
				base64.StdEncoding.EncodeToString(m.Payload) + `"}}`))
			if err != nil || !bytes.Equal(again.Payload, m.Payload) {
				t.Fatalf("re-encoded payload: %v", err)
			}
		}
	})
}
