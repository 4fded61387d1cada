package media

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/rtp"
)

// AnswerConfig is our side of an offer/answer exchange.
type AnswerConfig struct {
	// Codecs is our list of acceptable codecs by name, e.g. ["PCMU", "PCMA"] (the default
	// when empty). Unknown names are ignored.
	Codecs []string
	// PreferOurs picks the first codec of Codecs that the offerer offered; otherwise the
	// first codec in the offerer's order that is in Codecs wins (RFC 3264 section 6.1).
	PreferOurs bool
	// PTimes are the packetisation times we accept; an offered ptime outside it is answered
	// with 20 ms. Default: 10, 20, 30 and 40 ms.
	PTimes []time.Duration
	// LocalAddr and LocalPort are where we receive RTP (c=, o= and m=audio).
	LocalAddr netip.Addr
	LocalPort int
	// SessionID and SessionVersion fill o=. Keep the id for the dialog and increment the
	// version for every new offer or answer that changes (RFC 3264 section 8).
	SessionID      uint64
	SessionVersion uint64
	// Username fills o=; "switchboard" when empty.
	Username string
	// SRTP is the call's media encryption policy (see SRTPPolicy).
	SRTP SRTPPolicy
	// SRTPKey is our SDES master key and salt (NewSRTPKey). Keep one per call so that
	// re-INVITE answers repeat it; BuildOffer offers SRTP only when it is set. Negotiate
	// draws a fresh one when it is not.
	SRTPKey rtp.SRTPKey
}

// Negotiated is the outcome of offer/answer for a leg's audio stream.
type Negotiated struct {
	Codec             Codec
	TelephoneEvent    uint8
	HasTelephoneEvent bool
	PTime             time.Duration
	// Remote is where to send RTP; the zero value when the far end gave the hold address.
	Remote netip.AddrPort
	// LocalDirection is what we do: sendrecv; recvonly when the far end is sendonly;
	// sendonly when it is recvonly; inactive.
	LocalDirection Direction
	// Hold is true when the far end put us on hold: sendonly, inactive, or c=0.0.0.0.
	Hold bool
	// SRTP holds the keys when the media is encrypted; its zero value is plain RTP.
	SRTP rtp.SRTPKeys
}

var defaultCodecs = []string{"PCMU", "PCMA"}

func (cfg *AnswerConfig) codecs() []string {
	if len(cfg.Codecs) == 0 {
		return defaultCodecs
	}
	return cfg.Codecs
}

func (cfg *AnswerConfig) ptimeOK(p time.Duration) bool {
	if len(cfg.PTimes) == 0 {
		return p == 10*time.Millisecond || p == 20*time.Millisecond ||
			p == 30*time.Millisecond || p == 40*time.Millisecond
	}
	return slices.Contains(cfg.PTimes, p)
}

func (cfg *AnswerConfig) username() string {
	if cfg.Username == "" || strings.ContainsAny(cfg.Username, " \t\r\n") {
		return "switchboard"
	}
	return cfg.Username
}

func (cfg *AnswerConfig) accepts(name string) bool {
	return slices.ContainsFunc(cfg.codecs(), func(c string) bool { return strings.EqualFold(c, name) })
}

// chooseCodec picks the codec to use from the far end's list.
func (cfg *AnswerConfig) chooseCodec(offered []Codec) (Codec, bool) {
	if cfg.PreferOurs {
		for _, ours := range cfg.codecs() {
			for _, c := range offered {
				if strings.EqualFold(c.Name, ours) {
					return c, true
				}
			}
		}
		return Codec{}, false
	}
	for _, c := range offered {
		if cfg.accepts(c.Name) {
			return c, true
		}
	}
	return Codec{}, false
}

// checkStream returns a *NotAcceptableError when the description's audio stream is unusable.
func checkStream(d *Description, what string) error {
	if d.audio < 0 && d.Port == 0 && d.Proto == "" && len(d.Codecs) == 0 {
		return notAcceptable("no audio stream in the %s", what)
	}
	// SRTP profiles were checked against the policy (answerStream, applySRTP) before.
	if d.Proto != "" && !isPlainRTP(d.Proto) && !isSDES(d.Proto) {
		return notAcceptable("unsupported audio transport %s in the %s; we support RTP/AVP and RTP/SAVP", d.Proto, what)
	}
	if d.Port == 0 {
		return notAcceptable("audio stream rejected in the %s (port 0)", what)
	}
	if !d.Addr.IsValid() {
		return notAcceptable("no usable connection address (c=) for audio in the %s", what)
	}
	return nil
}

func noCodecReason(d *Description, cfg *AnswerConfig, what string) error {
	offered := d.offered
	if len(offered) == 0 {
		for _, c := range d.Codecs {
			offered = append(offered, c.Name)
		}
	}
	list := "nothing"
	if len(offered) > 0 {
		list = strings.Join(offered, ", ")
	}
	return notAcceptable("no common audio codec: %s %s; we accept %s", what, list, strings.Join(cfg.codecs(), ", "))
}

// Negotiate answers an offer (RFC 3264). It returns the negotiated stream and the answer SDP,
// or a *NotAcceptableError (for a 488) when no audio stream can be used. Hold offers are
// answered as Asterisk does: sendonly with recvonly, inactive with inactive, and the RFC 2543
// hold address (c=0.0.0.0) with inactive; a sendrecv offer resumes. For a re-INVITE, pass the
// dialog's SessionID and an incremented SessionVersion.
func Negotiate(offer *Description, cfg AnswerConfig) (Negotiated, []byte, error) {
	if offer == nil {
		return Negotiated{}, nil, errors.New("negotiate: nil offer")
	}
	offer, crypto, err := cfg.answerStream(offer)
	if err != nil {
		return Negotiated{}, nil, fmt.Errorf("negotiate: %w", err)
	}
	if err := checkStream(offer, "offer"); err != nil {
		return Negotiated{}, nil, fmt.Errorf("negotiate: %w", err)
	}
	codec, ok := cfg.chooseCodec(offer.Codecs)
	if !ok {
		return Negotiated{}, nil, fmt.Errorf("negotiate: %w", noCodecReason(offer, &cfg, "offered"))
	}
	if !cfg.LocalAddr.IsValid() {
		return Negotiated{}, nil, errors.New("negotiate: no local address configured")
	}
	if cfg.LocalPort <= 0 || cfg.LocalPort > 65535 {
		return Negotiated{}, nil, fmt.Errorf("negotiate: local port %d out of range", cfg.LocalPort)
	}
	n := negotiated(offer, codec)
	if offer.holdAddr() {
		n.LocalDirection = Inactive
	}
	n.PTime = DefaultPTime
	if cfg.ptimeOK(offer.PTime) {
		n.PTime = offer.PTime
	}
	n.SRTP = cfg.answerKeys(crypto)
	return n, buildAnswer(offer, &cfg, n, crypto), nil
}

func negotiated(d *Description, codec Codec) Negotiated {
	n := Negotiated{
		Codec:             codec,
		TelephoneEvent:    d.TelephoneEvent,
		HasTelephoneEvent: d.HasTelephoneEvent,
		PTime:             d.PTime,
		LocalDirection:    d.Direction.reverse(),
		Hold:              d.Direction == SendOnly || d.Direction == Inactive || d.holdAddr(),
	}
	if n.PTime <= 0 {
		n.PTime = DefaultPTime
	}
	if !d.holdAddr() {
		n.Remote = netip.AddrPortFrom(d.Addr, uint16(d.Port))
	}
	return n
}

// ApplyAnswer matches an answer to the offer we sent (BuildOffer with cfg): the answerer's
// codec (the first of its list that we offered), its telephone-event payload type, ptime,
// address and direction.
func ApplyAnswer(answer *Description, cfg AnswerConfig) (Negotiated, error) {
	if answer == nil {
		return Negotiated{}, errors.New("apply answer: nil answer")
	}
	keys, err := cfg.applySRTP(answer)
	if err != nil {
		return Negotiated{}, fmt.Errorf("apply answer: %w", err)
	}
	if err := checkStream(answer, "answer"); err != nil {
		return Negotiated{}, fmt.Errorf("apply answer: %w", err)
	}
	var codec Codec
	var ok bool
	for _, c := range answer.Codecs {
		if cfg.accepts(c.Name) {
			codec, ok = c, true
			break
		}
	}
	if !ok {
		return Negotiated{}, fmt.Errorf("apply answer: %w", noCodecReason(answer, &cfg, "answered"))
	}
	n := negotiated(answer, codec)
	n.SRTP = keys
	return n, nil
}

// staticPT is the RFC 3551 payload type of the codecs we offer.
func staticPT(name string) (uint8, string, bool) {
	switch strings.ToUpper(name) {
	case "PCMU":
		return 0, "PCMU", true
	case "PCMA":
		return 8, "PCMA", true
	}
	return 0, "", false
}

// BuildOffer builds an offer of our codecs (static payload types 0 and 8, in cfg.Codecs order)
// and telephone-event at telephoneEventPT (101 usually; 0 or a static payload type leaves it
// out), with a=ptime:20 and sendrecv. An invalid LocalAddr is written as 0.0.0.0. With an
// SRTP policy and cfg.SRTPKey set, it adds a=crypto lines for both suites (tags 1 and 2), on
// RTP/SAVP when SRTP is required and on RTP/AVP when it is optional.
func BuildOffer(cfg AnswerConfig, telephoneEventPT uint8) []byte {
	var pts []uint8
	var maps []string
	for _, name := range cfg.codecs() {
		pt, canon, ok := staticPT(name)
		if !ok || slices.Contains(pts, pt) {
			continue
		}
		pts = append(pts, pt)
		maps = append(maps, fmt.Sprintf("a=rtpmap:%d %s/8000", pt, canon))
	}
	if len(pts) == 0 {
		pts = []uint8{0, 8}
		maps = []string{"a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000"}
	}
	if telephoneEventPT >= 96 && telephoneEventPT <= 127 {
		pts = append(pts, telephoneEventPT)
		maps = append(maps,
			fmt.Sprintf("a=rtpmap:%d telephone-event/8000", telephoneEventPT),
			fmt.Sprintf("a=fmtp:%d 0-16", telephoneEventPT))
	}
	var b strings.Builder
	writeSessionHeader(&b, &cfg)
	proto := " RTP/AVP"
	if cfg.offersSRTP() && cfg.SRTP == SRTPRequired {
		proto = " RTP/SAVP"
	}
	b.WriteString("m=audio ")
	b.WriteString(strconv.Itoa(cfg.LocalPort))
	b.WriteString(proto)
	for _, pt := range pts {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(int(pt)))
	}
	b.WriteString("\r\n")
	for _, m := range maps {
		b.WriteString(m)
		b.WriteString("\r\n")
	}
	if cfg.offersSRTP() {
		cfg.offerCrypto(&b)
	}
	b.WriteString("a=ptime:20\r\na=sendrecv\r\n")
	return []byte(b.String())
}

func writeSessionHeader(b *strings.Builder, cfg *AnswerConfig) {
	addr := cfg.LocalAddr.Unmap()
	if !addr.IsValid() || addr.Zone() != "" {
		addr = netip.IPv4Unspecified()
	}
	family := "IP4"
	if addr.Is6() {
		family = "IP6"
	}
	fmt.Fprintf(b, "v=0\r\no=%s %d %d IN %s %s\r\ns=%s\r\nc=IN %s %s\r\nt=0 0\r\n",
		cfg.username(), cfg.SessionID, cfg.SessionVersion, family, addr, cfg.username(), family, addr)
}

// buildAnswer writes the answer: one m= line per offered one (RFC 3264 section 6), the chosen
// audio stream with our port, the others rejected with port 0. With SRTP, the audio line
// keeps the offer's profile and carries our key under the accepted line's tag and suite.
func buildAnswer(offer *Description, cfg *AnswerConfig, n Negotiated, crypto *Crypto) []byte {
	var b strings.Builder
	b.Grow(320)
	writeSessionHeader(&b, cfg)
	writeAudio := func() {
		fmt.Fprintf(&b, "m=audio %d %s %d", cfg.LocalPort, answerProto(offer, crypto), n.Codec.PayloadType)
		if n.HasTelephoneEvent {
			fmt.Fprintf(&b, " %d", n.TelephoneEvent)
		}
		fmt.Fprintf(&b, "\r\na=rtpmap:%d %s/%d\r\n", n.Codec.PayloadType, n.Codec.Name, n.Codec.ClockRate)
		if n.HasTelephoneEvent {
			fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", n.TelephoneEvent, n.TelephoneEvent)
		}
		if crypto != nil {
			b.WriteString(cryptoLine(crypto.Tag, crypto.Suite, &cfg.SRTPKey))
		}
		fmt.Fprintf(&b, "a=ptime:%d\r\na=%s\r\n", n.PTime/time.Millisecond, n.LocalDirection)
	}
	if offer.audio < 0 || offer.audio >= len(offer.streams) {
		writeAudio()
		return []byte(b.String())
	}
	for i, s := range offer.streams {
		if i == offer.audio {
			writeAudio()
			continue
		}
		format := "0"
		if len(s.formats) > 0 {
			format = s.formats[0]
		}
		fmt.Fprintf(&b, "m=%s 0 %s %s\r\n", s.media, s.proto, format)
	}
	return []byte(b.String())
}
