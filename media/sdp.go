package media

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
)

// Codec is an audio codec as negotiated in SDP.
type Codec struct {
	Name        string // "PCMU" or "PCMA"
	PayloadType uint8
	ClockRate   uint32
}

// Direction is an SDP media direction attribute (RFC 3264 section 5.1).
type Direction uint8

// Media directions. The zero value is SendRecv, the SDP default.
const (
	SendRecv Direction = iota
	SendOnly
	RecvOnly
	Inactive
)

// String returns the SDP attribute name ("sendrecv", "sendonly", "recvonly", "inactive").
func (d Direction) String() string {
	switch d {
	case SendRecv:
		return "sendrecv"
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	case Inactive:
		return "inactive"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// reverse returns the direction the other side of the stream takes: what we do when the
// far end says d.
func (d Direction) reverse() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	}
	return d
}

func parseDirection(s string) (Direction, bool) {
	switch s {
	case "sendrecv":
		return SendRecv, true
	case "sendonly":
		return SendOnly, true
	case "recvonly":
		return RecvOnly, true
	case "inactive":
		return Inactive, true
	}
	return SendRecv, false
}

// DefaultPTime is the packetisation time assumed when an SDP body has no a=ptime.
const DefaultPTime = 20 * time.Millisecond

// Description is what we need to know of a parsed SDP offer or answer: its audio stream.
type Description struct {
	Addr              netip.Addr    // connection address (media level wins over session level); 0.0.0.0 or :: means hold
	Port              int           // audio m= port; 0 = stream rejected
	Proto             string        // transport profile of the audio stream, e.g. "RTP/AVP" or "RTP/SAVP"
	Codecs            []Codec       // audio codecs we understand, in the offerer's order (unknown ones skipped)
	TelephoneEvent    uint8         // payload type of telephone-event/8000, valid when HasTelephoneEvent
	HasTelephoneEvent bool          //
	PTime             time.Duration // a=ptime; DefaultPTime if absent or unusable
	Direction         Direction     // media level overrides session level; default sendrecv
	SessionID         uint64        // o= sess-id
	SessionVersion    uint64        // o= sess-version
	// Crypto are the stream's a=crypto attributes with a suite we support, in offer order
	// (RFC 4568 SDES keys for SRTP).
	Crypto []Crypto

	offered []string  // every audio format of the chosen stream, as "NAME" or "NAME/rate", for error reasons
	streams []mstream // every m= line in order, to answer each one (RFC 3264 section 6)
	audio   int       // index in streams of the chosen audio stream, or -1
	// cryptoOffered names every a=crypto suite of the stream, usable or not, for error reasons.
	cryptoOffered []string
	// secure is the first RTP/SAVP(F) audio stream when the chosen one is plain RTP/AVP: an
	// offer of both lets an SRTP policy pick the secure one.
	secure *Description
}

// mstream is one m= line as offered.
type mstream struct {
	media   string
	proto   string
	formats []string
}

// NotAcceptableError says an offer or answer cannot be used; the SIP layer answers 488 Not
// Acceptable Here with Reason in a Warning header.
type NotAcceptableError struct {
	Reason string
}

func (e *NotAcceptableError) Error() string { return "media not acceptable: " + e.Reason }

func notAcceptable(format string, args ...any) error {
	return &NotAcceptableError{Reason: fmt.Sprintf(format, args...)}
}

// ErrNotSDP is returned (wrapped) by ParseDescription when the body is not an SDP session
// description at all.
var ErrNotSDP = errors.New("not an SDP body")

// maxSDPSize bounds the bodies we parse; real offers are well under 4 KiB.
const maxSDPSize = 64 << 10

// ParseDescription parses an SDP body tolerantly. Carriers send sloppy SDP (bare LF, mixed
// line endings, fields out of RFC order such as c= after t=, no s=, trailing spaces and blank
// lines), and pion/sdp enforces RFC 4566 order, so the body is normalised first: session-level
// lines are put in order, missing v=, s= and t= lines are supplied, lines we have no use for
// (i, u, e, p, b, z, k, r) and non-audio media sections are left out of what pion parses.
// A body that is not SDP yields an error wrapping ErrNotSDP; one without an audio stream
// yields a *NotAcceptableError.
func ParseDescription(body []byte) (*Description, error) {
	if len(body) > maxSDPSize {
		return nil, fmt.Errorf("parse SDP: body of %d bytes is too large: %w", len(body), ErrNotSDP)
	}
	norm, streams, err := normaliseSDP(body)
	if err != nil {
		return nil, fmt.Errorf("parse SDP: %w", err)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(norm); err != nil {
		return nil, fmt.Errorf("parse SDP: %w", err)
	}
	d := &Description{
		SessionID:      sd.Origin.SessionID,
		SessionVersion: sd.Origin.SessionVersion,
		PTime:          DefaultPTime,
		audio:          -1,
	}
	for i := range streams {
		d.streams = append(d.streams, streams[i].mstream)
	}
	sessionAddr := connAddr(sd.ConnectionInformation)
	sessionDir := SendRecv
	for _, a := range sd.Attributes {
		if dir, ok := parseDirection(strings.ToLower(a.Key)); ok {
			sessionDir = dir
		}
	}

	// Choose the audio stream: the first usable RTP/AVP one, else the first one not
	// rejected (an SRTP-only offer, say), else the first audio one so that Negotiate can say
	// why it is not acceptable.
	chosen, live := -1, -1
	for i, s := range streams {
		if s.media != "audio" || s.pion < 0 {
			continue
		}
		if chosen < 0 {
			chosen = i
		}
		if live < 0 && s.port != 0 {
			live = i
		}
		if s.port != 0 && isPlainRTP(s.proto) {
			chosen, live = i, i
			break
		}
	}
	if live >= 0 {
		chosen = live
	}
	if chosen < 0 {
		for i, s := range streams {
			if s.media == "audio" {
				chosen = i
				break
			}
		}
	}
	if chosen < 0 {
		return nil, fmt.Errorf("parse SDP: %w", notAcceptable("no audio stream in the offer"))
	}
	st := streams[chosen]
	d.audio = chosen
	d.Port = st.port
	d.Proto = st.proto
	d.Direction = sessionDir
	d.Addr = sessionAddr
	if st.pion < 0 {
		// An audio line pion cannot read (unknown profile token): we know its port and
		// profile, which is enough to reject it.
		return d, nil
	}
	sessionLevel := *d
	d.readMedia(sd.MediaDescriptions[st.pion])
	if isPlainRTP(st.proto) {
		for i, s := range streams {
			if i != chosen && s.media == "audio" && s.port != 0 && s.pion >= 0 && isSDES(s.proto) {
				alt := sessionLevel
				alt.audio, alt.Port, alt.Proto = i, s.port, s.proto
				alt.readMedia(sd.MediaDescriptions[s.pion])
				d.secure = &alt
				break
			}
		}
	}
	return d, nil
}

// readMedia takes the media-level lines of the chosen audio stream: address, direction,
// formats, ptime and crypto.
func (d *Description) readMedia(md *sdp.MediaDescription) {
	if a := connAddr(md.ConnectionInformation); a.IsValid() {
		d.Addr = a
	}
	rtpmaps := map[uint8]rtpmap{}
	for _, a := range md.Attributes {
		key := strings.ToLower(a.Key)
		if dir, ok := parseDirection(key); ok {
			d.Direction = dir
			continue
		}
		switch key {
		case "rtpmap":
			if pt, m, ok := parseRTPMap(a.Value); ok {
				if _, dup := rtpmaps[pt]; !dup {
					rtpmaps[pt] = m
				}
			}
		case "ptime":
			if p, ok := parsePTime(a.Value); ok {
				d.PTime = p
			}
		case "crypto":
			d.addCrypto(a.Value)
		}
	}
	for _, f := range md.MediaName.Formats {
		n, err := strconv.ParseUint(f, 10, 8)
		if err != nil || n > 127 {
			d.offered = append(d.offered, f)
			continue
		}
		pt := uint8(n)
		m, ok := rtpmaps[pt]
		if !ok {
			m, ok = staticPayloadTypes(pt)
		}
		if !ok {
			d.offered = append(d.offered, "PT "+f)
			continue
		}
		d.offered = append(d.offered, m.String())
		switch {
		case strings.EqualFold(m.name, "telephone-event"):
			if m.rate == 8000 && !d.HasTelephoneEvent {
				d.TelephoneEvent, d.HasTelephoneEvent = pt, true
			}
		case m.rate != 8000:
		case strings.EqualFold(m.name, "PCMU"):
			d.Codecs = append(d.Codecs, Codec{Name: "PCMU", PayloadType: pt, ClockRate: 8000})
		case strings.EqualFold(m.name, "PCMA"):
			d.Codecs = append(d.Codecs, Codec{Name: "PCMA", PayloadType: pt, ClockRate: 8000})
		}
	}
}

// holdAddr reports whether the connection address is the RFC 2543 hold address (0.0.0.0 or ::).
func (d *Description) holdAddr() bool { return d.Addr.IsValid() && d.Addr.IsUnspecified() }

func isPlainRTP(proto string) bool { return strings.EqualFold(proto, "RTP/AVP") }

func isSecureRTP(proto string) bool {
	p := strings.ToUpper(proto)
	return strings.Contains(p, "SAVP")
}

// isSDES reports whether proto carries SRTP keyed by a=crypto: RTP/SAVP, and RTP/SAVPF taken
// tolerantly (we send no feedback). UDP/TLS/RTP/SAVP(F) is DTLS-SRTP, which we do not do.
func isSDES(proto string) bool {
	return strings.EqualFold(proto, "RTP/SAVP") || strings.EqualFold(proto, "RTP/SAVPF")
}

func connAddr(ci *sdp.ConnectionInformation) netip.Addr {
	if ci == nil || ci.Address == nil {
		return netip.Addr{}
	}
	s := ci.Address.Address
	if i := strings.IndexByte(s, '/'); i >= 0 { // multicast TTL / range
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}

type rtpmap struct {
	name string
	rate uint32
}

func (m rtpmap) String() string {
	if m.rate == 8000 {
		return m.name
	}
	return m.name + "/" + strconv.FormatUint(uint64(m.rate), 10)
}

// parseRTPMap parses "96 telephone-event/8000[/channels]".
func parseRTPMap(v string) (uint8, rtpmap, bool) {
	ptStr, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return 0, rtpmap{}, false
	}
	pt, err := strconv.ParseUint(ptStr, 10, 8)
	if err != nil || pt > 127 {
		return 0, rtpmap{}, false
	}
	parts := strings.Split(strings.TrimSpace(rest), "/")
	if len(parts) < 2 || parts[0] == "" {
		return 0, rtpmap{}, false
	}
	rate, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return 0, rtpmap{}, false
	}
	return uint8(pt), rtpmap{name: parts[0], rate: uint32(rate)}, true
}

// staticPayloadTypes gives the RFC 3551 static audio payload types.
func staticPayloadTypes(pt uint8) (rtpmap, bool) {
	switch pt {
	case 0:
		return rtpmap{"PCMU", 8000}, true
	case 3:
		return rtpmap{"GSM", 8000}, true
	case 4:
		return rtpmap{"G723", 8000}, true
	case 5:
		return rtpmap{"DVI4", 8000}, true
	case 6:
		return rtpmap{"DVI4", 16000}, true
	case 7:
		return rtpmap{"LPC", 8000}, true
	case 8:
		return rtpmap{"PCMA", 8000}, true
	case 9:
		return rtpmap{"G722", 8000}, true
	case 10, 11:
		return rtpmap{"L16", 44100}, true
	case 12:
		return rtpmap{"QCELP", 8000}, true
	case 13:
		return rtpmap{"CN", 8000}, true
	case 14:
		return rtpmap{"MPA", 90000}, true
	case 15:
		return rtpmap{"G728", 8000}, true
	case 18:
		return rtpmap{"G729", 8000}, true
	}
	return rtpmap{}, false
}

func parsePTime(v string) (time.Duration, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 1 || f > 1000 {
		return 0, false
	}
	return time.Duration(f * float64(time.Millisecond)), true
}

// nstream is an m= line seen by the normaliser; pion is its index among the media sections
// handed to pion, or -1 when it was left out.
type nstream struct {
	mstream
	port int
	pion int
	line string // normalised m= value
}

// normaliseSDP rewrites body into the strict RFC 4566 shape pion/sdp accepts, and returns
// every m= line it saw.
func normaliseSDP(body []byte) (string, []nstream, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	var (
		v, o, s, c string
		times      []string
		sessAttrs  []string
		streams    []nstream
		sections   [][]string // lines of each media section handed to pion
		inMedia    bool
		keep       bool // current media section is handed to pion
		sawLine    bool
		mediaConn  bool
	)
	for len(body) > 0 {
		var line []byte
		if i := bytes.IndexAny(body, "\r\n"); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			continue // blank line or garbage: skip
		}
		if bytes.IndexByte(line, 0) >= 0 {
			continue
		}
		sawLine = true
		typ, val := line[0], string(line[2:])
		if typ == 'm' {
			inMedia = true
			mediaConn = false
			st, ok := parseMLine(val)
			if !ok {
				keep = false
				continue
			}
			keep = st.media == "audio" && pionProtoOK(st.proto)
			if keep {
				st.pion = len(sections)
				sections = append(sections, []string{"m=" + st.line})
			} else {
				st.pion = -1
			}
			streams = append(streams, st)
			continue
		}
		if inMedia {
			if !keep {
				continue
			}
			cur := &sections[len(sections)-1]
			switch typ {
			case 'c':
				if !mediaConn {
					mediaConn = true
					// c= goes right after m= (and i=, which we drop).
					*cur = append((*cur)[:1], append([]string{"c=" + val}, (*cur)[1:]...)...)
				}
			case 'a':
				*cur = append(*cur, "a="+val)
			}
			continue
		}
		switch typ {
		case 'v':
			if v == "" {
				v = val
			}
		case 'o':
			if o == "" {
				o = val
			}
		case 's':
			if s == "" {
				s = val
			}
		case 'c':
			if c == "" {
				c = val
			}
		case 't':
			times = append(times, val)
		case 'a':
			sessAttrs = append(sessAttrs, val)
		}
	}
	if !sawLine || (v == "" && o == "" && len(streams) == 0) {
		return "", nil, ErrNotSDP
	}
	if v == "" {
		v = "0"
	}
	if !originOK(o) {
		o = "- 0 0 IN IP4 0.0.0.0"
	}
	if s == "" {
		s = "-"
	}
	if len(times) == 0 {
		times = []string{"0 0"}
	}
	var b strings.Builder
	b.Grow(512)
	line := func(typ byte, val string) {
		b.WriteByte(typ)
		b.WriteByte('=')
		b.WriteString(val)
		b.WriteString("\r\n")
	}
	line('v', v)
	line('o', o)
	line('s', s)
	if c != "" {
		line('c', c)
	}
	for _, t := range times {
		line('t', t)
	}
	for _, a := range sessAttrs {
		line('a', a)
	}
	for _, sec := range sections {
		for _, l := range sec {
			b.WriteString(l)
			b.WriteString("\r\n")
		}
	}
	return b.String(), streams, nil
}

// parseMLine parses "audio 49170 RTP/AVP 0 8 101" (port may carry "/count").
func parseMLine(val string) (nstream, bool) {
	f := strings.Fields(val)
	if len(f) < 3 {
		return nstream{}, false
	}
	portStr, _, _ := strings.Cut(f[1], "/")
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nstream{}, false
	}
	st := nstream{
		mstream: mstream{media: strings.ToLower(f[0]), proto: strings.ToUpper(f[2]), formats: f[3:]},
		port:    port,
	}
	st.line = strings.Join(append([]string{st.media, f[1], st.proto}, st.formats...), " ")
	return st, true
}

// pionProtoOK reports whether pion/sdp accepts every token of an m= line's profile.
func pionProtoOK(proto string) bool {
	for p := range strings.SplitSeq(proto, "/") {
		switch p {
		case "UDP", "RTP", "AVP", "SAVP", "SAVPF", "TLS", "DTLS", "SCTP", "AVPF", "TCP",
			"MSRP", "BFCP", "UDT", "IX", "MRCPv2", "FEC":
		default:
			return false
		}
	}
	return true
}

// originOK checks an o= value well enough that pion will take it.
func originOK(o string) bool {
	f := strings.Fields(o)
	if len(f) < 4 || len(f) > 6 {
		return false
	}
	for _, n := range f[1:3] {
		if _, err := strconv.ParseUint(n, 10, 64); err != nil {
			return false
		}
	}
	if len(f) > 3 && f[3] != "IN" {
		return false
	}
	if len(f) > 4 && f[4] != "IP4" && f[4] != "IP6" {
		return false
	}
	return true
}
