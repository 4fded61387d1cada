package media

import (
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-voice/switchboard/rtp"
)

// SRTPPolicy says whether a call's media is encrypted with SDES-SRTP (RFC 4568 keys, RFC 3711
// packets). Each trunk has one; calls from elsewhere use the gateway default.
//
//   - SRTPOff (the default): plain RTP/AVP. An offer with only RTP/SAVP is refused with 488;
//     a=crypto lines on an RTP/AVP offer are ignored.
//   - SRTPOptional: encryption when the far end can, plain RTP when it cannot (what carriers
//     such as SignalWire mean by "used if possible"). Answering, we take an RTP/SAVP offer, an
//     RTP/AVP one with a=crypto (best-effort SRTP, as FreeSWITCH and Asterisk send it) and a
//     plain one. Offering, we send RTP/AVP with a=crypto lines: a far end that supports SDES
//     answers with a key and both sides encrypt; one that does not ignores the attribute and
//     answers plain RTP, where an RTP/SAVP offer would be refused outright.
//   - SRTPRequired: never plain RTP. We offer RTP/SAVP; an offer or answer without a usable
//     a=crypto is refused (488). An RTP/AVP offer with a usable a=crypto is answered with SRTP:
//     the media is encrypted either way.
type SRTPPolicy uint8

// SRTP policies.
const (
	SRTPOff SRTPPolicy = iota
	SRTPOptional
	SRTPRequired
)

// ParseSRTPPolicy reads a configuration value: "off" (or empty), "optional" or "required".
func ParseSRTPPolicy(s string) (SRTPPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "off":
		return SRTPOff, nil
	case "optional":
		return SRTPOptional, nil
	case "required":
		return SRTPRequired, nil
	}
	return SRTPOff, fmt.Errorf("srtp policy %q is not off, optional or required", s)
}

// String returns the configuration value.
func (p SRTPPolicy) String() string {
	switch p {
	case SRTPOff:
		return "off"
	case SRTPOptional:
		return "optional"
	case SRTPRequired:
		return "required"
	}
	return fmt.Sprintf("SRTPPolicy(%d)", uint8(p))
}

// The tags of the a=crypto lines we offer, one per suite, strongest first.
const (
	offerTag80 = 1
	offerTag32 = 2
)

const supportedSuites = "AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32"

// addCrypto records an a=crypto attribute of the stream: usable ones in Crypto, every suite
// for error reasons. Malformed and unsupported lines are skipped; another may do.
func (d *Description) addCrypto(value string) {
	suite := "?"
	if f := strings.Fields(value); len(f) > 1 {
		suite = f[1]
	}
	c, err := ParseCrypto(value)
	switch {
	case err == nil:
		d.Crypto = append(d.Crypto, c)
	case errors.Is(err, ErrBadCrypto):
		suite += " (malformed)"
	default:
		suite += " (unsupported)"
	}
	if len(d.cryptoOffered) < 8 {
		d.cryptoOffered = append(d.cryptoOffered, clipSuite(suite))
	}
}

func clipSuite(s string) string {
	if len(s) > 48 {
		return s[:48] + "..."
	}
	return s
}

// noCryptoReason explains why a stream that needed a key has none we can use.
func noCryptoReason(d *Description, what string) string {
	if len(d.cryptoOffered) == 0 {
		return fmt.Sprintf("no a=crypto in the %s %s stream; we support %s", d.Proto, what, supportedSuites)
	}
	return fmt.Sprintf("no usable a=crypto in the %s %s stream (%s); we support %s", d.Proto, what,
		strings.Join(d.cryptoOffered, ", "), supportedSuites)
}

// answerStream applies the policy to an offer: the stream to answer and the a=crypto line to
// accept (nil for plain RTP), or a *NotAcceptableError.
func (cfg *AnswerConfig) answerStream(offer *Description) (*Description, *Crypto, error) {
	if cfg.SRTP == SRTPOff {
		if isSecureRTP(offer.Proto) {
			return nil, nil, notAcceptable("SRTP-only offer (%s) with no RTP/AVP alternative; srtp is off for this call", offer.Proto)
		}
		return offer, nil, nil
	}
	// An RTP/SAVP alternative first, then the chosen stream: the first a=crypto we support.
	for _, d := range []*Description{offer.secure, offer} {
		if d != nil && (isSDES(d.Proto) || isPlainRTP(d.Proto)) && len(d.Crypto) > 0 {
			return d, &d.Crypto[0], nil
		}
	}
	switch {
	case isSDES(offer.Proto):
		return nil, nil, notAcceptable("%s", noCryptoReason(offer, "offer"))
	case isSecureRTP(offer.Proto):
		return nil, nil, notAcceptable("unsupported audio transport %s in the offer (DTLS-SRTP); we support RTP/AVP and RTP/SAVP with a=crypto", offer.Proto)
	case cfg.SRTP == SRTPRequired && (isPlainRTP(offer.Proto) || offer.Proto == ""):
		return nil, nil, notAcceptable("plain RTP offered but srtp is required for this call")
	}
	return offer, nil, nil
}

// answerKeys are the session keys once we accept c: ours from cfg (a fresh one when cfg has
// none), theirs from c.
func (cfg *AnswerConfig) answerKeys(c *Crypto) rtp.SRTPKeys {
	if c == nil {
		return rtp.SRTPKeys{}
	}
	return rtp.SRTPKeys{Suite: c.Suite, Local: cfg.localKey(), Remote: c.Key, RemoteMKI: c.MKI}
}

// localKey is our master key and salt. Callers that offer set SRTPKey so that the answer's
// keys match the offer; an answerer without one gets a fresh key per call to Negotiate.
func (cfg *AnswerConfig) localKey() rtp.SRTPKey {
	if zeroKey(&cfg.SRTPKey) {
		cfg.SRTPKey = NewSRTPKey()
	}
	return cfg.SRTPKey
}

// offersSRTP reports whether BuildOffer puts a=crypto lines in our offer.
func (cfg *AnswerConfig) offersSRTP() bool {
	return cfg.SRTP != SRTPOff && !zeroKey(&cfg.SRTPKey)
}

// offerCrypto writes the a=crypto lines of our offer.
func (cfg *AnswerConfig) offerCrypto(b *strings.Builder) {
	b.WriteString(cryptoLine(offerTag80, rtp.AES_CM_128_HMAC_SHA1_80, &cfg.SRTPKey))
	b.WriteString(cryptoLine(offerTag32, rtp.AES_CM_128_HMAC_SHA1_32, &cfg.SRTPKey))
}

// applySRTP checks an answer to our offer against the policy and returns the keys.
func (cfg *AnswerConfig) applySRTP(answer *Description) (rtp.SRTPKeys, error) {
	if !cfg.offersSRTP() {
		if isSecureRTP(answer.Proto) {
			return rtp.SRTPKeys{}, notAcceptable("%s answer to our RTP/AVP offer", answer.Proto)
		}
		return rtp.SRTPKeys{}, nil
	}
	for i := range answer.Crypto {
		c := &answer.Crypto[i]
		if (c.Tag == offerTag80 && c.Suite == rtp.AES_CM_128_HMAC_SHA1_80) ||
			(c.Tag == offerTag32 && c.Suite == rtp.AES_CM_128_HMAC_SHA1_32) {
			if !isSDES(answer.Proto) && !isPlainRTP(answer.Proto) {
				break
			}
			return rtp.SRTPKeys{Suite: c.Suite, Local: cfg.SRTPKey, Remote: c.Key, RemoteMKI: c.MKI}, nil
		}
	}
	switch {
	case isSecureRTP(answer.Proto):
		return rtp.SRTPKeys{}, notAcceptable("%s", noCryptoReason(answer, "answer"))
	case cfg.SRTP == SRTPRequired:
		return rtp.SRTPKeys{}, notAcceptable("plain RTP answered but srtp is required for this call")
	}
	return rtp.SRTPKeys{}, nil
}

// answerProto is the profile of our answer's audio line: the offer's own for SRTP (RFC 3264
// wants it unchanged), RTP/AVP otherwise.
func answerProto(d *Description, c *Crypto) string {
	switch {
	case c == nil || isPlainRTP(d.Proto):
		return "RTP/AVP"
	case strings.EqualFold(d.Proto, "RTP/SAVPF"):
		return "RTP/SAVPF"
	}
	return "RTP/SAVP"
}
