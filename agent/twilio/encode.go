package twilio

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
)

// Gateway -> bot messages. Numbers that Twilio sends as strings
// (sequenceNumber, chunk, timestamp) are strings here too.
type outMessage struct {
	Event          string          `json:"event"`
	SequenceNumber string          `json:"sequenceNumber,omitempty"`
	StreamSid      string          `json:"streamSid,omitempty"`
	Protocol       string          `json:"protocol,omitempty"`
	Version        string          `json:"version,omitempty"`
	Start          *startInfo      `json:"start,omitempty"`
	Media          *mediaInfo      `json:"media,omitempty"`
	DTMF           *dtmfInfo       `json:"dtmf,omitempty"`
	Mark           *markInfo       `json:"mark,omitempty"`
	Stop           *stopInfo       `json:"stop,omitempty"`
	TransferStatus *transferStatus `json:"transferStatus,omitempty"`
}

type startInfo struct {
	AccountSid       string            `json:"accountSid"`
	StreamSid        string            `json:"streamSid"`
	CallSid          string            `json:"callSid"`
	Tracks           []string          `json:"tracks"`
	CustomParameters map[string]string `json:"customParameters"`
	MediaFormat      mediaFormat       `json:"mediaFormat"`
}

type mediaFormat struct {
	Encoding   string `json:"encoding"`
	SampleRate int    `json:"sampleRate"`
	Channels   int    `json:"channels"`
}

type mediaInfo struct {
	Track     string `json:"track,omitempty"`
	Chunk     string `json:"chunk,omitempty"`
	Timestamp string `json:"timestamp,omitempty"`
	Payload   string `json:"payload"`
}

type dtmfInfo struct {
	Track    string `json:"track"`
	Digit    string `json:"digit"`
	Duration string `json:"duration,omitempty"` // ms; a Switchboard extension
}

type markInfo struct {
	Name string `json:"name"`
}

type stopInfo struct {
	AccountSid string `json:"accountSid"`
	CallSid    string `json:"callSid"`
}

type transferStatus struct {
	Mode   string `json:"mode"`
	Target string `json:"target"`
	State  string `json:"state"`
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Protocol constants of the `connected` and `start` messages.
const (
	protocolName    = "Call"
	protocolVersion = "1.0.0"
	encodingUlaw    = "audio/x-mulaw"
	trackInbound    = "inbound"
	trackDTMF       = "inbound_track"
)

// mediaFrame is one queued frame of caller audio, µ-law encoded, with its
// arrival time in ms since the stream started. Frames are recycled.
type mediaFrame struct {
	ulaw []byte
	ts   int64
}

// controlKind names a control message for the writer.
type controlKind uint8

const (
	ctlDTMF controlKind = iota + 1
	ctlMark
	ctlHold
	ctlResume
	ctlTransfer
)

// control is a non-audio message waiting for the writer, which numbers it.
type control struct {
	kind     controlKind
	digit    rune
	duration time.Duration
	name     string
	transfer agent.TransferStatus
}

// appendMedia appends a `media` message to b without allocating when b has
// room: the per-frame hot path.
func appendMedia(b []byte, streamSid string, seq, chunk uint64, ts int64, ulaw []byte) []byte {
	b = append(b, `{"event":"media","sequenceNumber":"`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `","media":{"track":"inbound","chunk":"`...)
	b = strconv.AppendUint(b, chunk, 10)
	b = append(b, `","timestamp":"`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `","payload":"`...)
	b = base64.StdEncoding.AppendEncode(b, ulaw)
	b = append(b, `"},"streamSid":"`...)
	b = append(b, streamSid...)
	return append(b, `"}`...)
}

// encodeUlaw encodes a PCM frame into dst's storage, growing it only for a
// frame longer than any before.
func encodeUlaw(dst []byte, pcm []int16) []byte {
	if cap(dst) < len(pcm) {
		dst = make([]byte, len(pcm))
	}
	dst = dst[:len(pcm)]
	media.Encode(media.PCMU, dst, pcm)
	return dst
}

func seqString(seq uint64) string { return strconv.FormatUint(seq, 10) }

// marshalControl renders a control message with its sequence number.
func (s *session) marshalControl(seq uint64, c *control) ([]byte, error) {
	m := outMessage{SequenceNumber: seqString(seq), StreamSid: s.streamSid}
	switch c.kind {
	case ctlDTMF:
		m.Event = "dtmf"
		m.DTMF = &dtmfInfo{Track: trackDTMF, Digit: string(c.digit)}
		if c.duration > 0 {
			m.DTMF.Duration = strconv.FormatInt(c.duration.Milliseconds(), 10)
		}
	case ctlMark:
		m.Event = "mark"
		m.Mark = &markInfo{Name: c.name}
	case ctlHold:
		m.Event = string(agent.EventHold)
	case ctlResume:
		m.Event = string(agent.EventResume)
	case ctlTransfer:
		m.Event = string(agent.EventTransfer)
		t := c.transfer
		m.TransferStatus = &transferStatus{Mode: string(t.Mode), Target: t.Target,
			State: string(t.State), Code: t.Code, Reason: t.Reason}
	}
	return json.Marshal(&m)
}

// stopMessage renders the `stop` message.
func (s *session) stopMessage(seq uint64) ([]byte, error) {
	return json.Marshal(&outMessage{Event: "stop", SequenceNumber: seqString(seq), StreamSid: s.streamSid,
		Stop: &stopInfo{AccountSid: s.accountSid, CallSid: s.callSid}})
}

// connectedMessage and startMessage open the stream.
func connectedMessage() ([]byte, error) {
	return json.Marshal(&outMessage{Event: "connected", Protocol: protocolName, Version: protocolVersion})
}

func (s *session) startMessage(params map[string]string) ([]byte, error) {
	return json.Marshal(&outMessage{Event: "start", SequenceNumber: "1", StreamSid: s.streamSid,
		Start: &startInfo{
			AccountSid: s.accountSid, StreamSid: s.streamSid, CallSid: s.callSid,
			Tracks: []string{trackInbound}, CustomParameters: params,
			MediaFormat: mediaFormat{Encoding: encodingUlaw, SampleRate: media.SampleRate, Channels: 1},
		}})
}
