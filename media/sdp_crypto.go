package media

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/switchboard-voice/switchboard/rtp"
)

// SDES key exchange: the a=crypto attribute of RFC 4568.
//
//	a=crypto:<tag> <suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>] [<session params>]

// Crypto is one a=crypto attribute with a suite we support. Its key is a secret: String and
// GoString leave it out, and parse errors never quote it.
type Crypto struct {
	Tag   uint32 // 1 to 9 digits; the answer repeats the tag of the line it accepts
	Suite rtp.SRTPSuite
	Key   rtp.SRTPKey // master key || master salt
	// Lifetime is the key's lifetime in packets, 0 when not given. We do not re-key, and a
	// call never comes close to the 2^48 packets these suites allow, so it is only checked.
	Lifetime uint64
	// MKI is the master key identifier the sender puts in every packet, as raw bytes (the
	// decimal value big-endian in the given length); "" without one.
	MKI string
}

// String shows the attribute without its key.
func (c Crypto) String() string {
	return fmt.Sprintf("%d %s inline:<redacted>", c.Tag, c.Suite)
}

// GoString keeps the key out of %#v.
func (c Crypto) GoString() string { return "media.Crypto{" + c.String() + "}" }

// Errors wrapped by ParseCrypto. An unsupported attribute is well-formed but asks for
// something we do not do (another suite, several keys, an unencrypted session); the offer may
// have another line we can use.
var (
	ErrBadCrypto         = errors.New("malformed a=crypto attribute")
	ErrUnsupportedCrypto = errors.New("unsupported a=crypto attribute")
)

// maxLifetime is the largest key lifetime the AES_CM_128_HMAC_SHA1 suites allow (RFC 4568
// 6.2.1): 2^48 SRTP packets.
const maxLifetime = 1 << 48

// ParseCrypto parses the value of an a=crypto attribute (what follows "a=crypto:").
func ParseCrypto(value string) (Crypto, error) {
	bad := func(format string, args ...any) (Crypto, error) {
		return Crypto{}, fmt.Errorf("%w: %s", ErrBadCrypto, fmt.Sprintf(format, args...))
	}
	unsupported := func(format string, args ...any) (Crypto, error) {
		return Crypto{}, fmt.Errorf("%w: %s", ErrUnsupportedCrypto, fmt.Sprintf(format, args...))
	}
	f := strings.Fields(value)
	if len(f) < 3 {
		return bad("want <tag> <suite> <key-params>")
	}
	if len(f[0]) > 9 || !allDigits(f[0]) {
		return bad("tag %s is not 1 to 9 digits", clip(f[0]))
	}
	tag, _ := strconv.ParseUint(f[0], 10, 32)
	suite, ok := rtp.ParseSRTPSuite(f[1])
	if !ok {
		return unsupported("suite %s", clip(f[1]))
	}
	c := Crypto{Tag: uint32(tag), Suite: suite}
	if strings.Contains(f[2], ";") {
		return unsupported("several keys in one attribute")
	}
	method, info, ok := strings.Cut(f[2], ":")
	if !ok || !strings.EqualFold(method, "inline") {
		return unsupported("key method %s (only inline)", clip(method))
	}
	parts := strings.Split(info, "|")
	if len(parts) > 3 {
		return bad("key has %d |-separated parts, at most 3", len(parts))
	}
	// 30 bytes are exactly 40 base64 characters, no padding; the length check also keeps
	// Decode within Key.
	key := parts[0]
	if len(key) != base64.StdEncoding.EncodedLen(rtp.SRTPKeyLen) {
		return bad("key is not %d bytes of base64", rtp.SRTPKeyLen)
	}
	n, err := base64.StdEncoding.Decode(c.Key[:], []byte(key))
	if err != nil || n != rtp.SRTPKeyLen {
		return bad("key is not %d bytes of base64", rtp.SRTPKeyLen)
	}
	if zeroKey(&c.Key) {
		return bad("all-zero key")
	}
	haveMKI := false
	for _, p := range parts[1:] {
		switch {
		case haveMKI:
			return bad("key lifetime after MKI")
		case strings.Contains(p, ":"):
			if c.MKI, err = parseMKI(p); err != nil {
				return Crypto{}, err
			}
			haveMKI = true
		case c.Lifetime != 0:
			return bad("two key lifetimes")
		default:
			if c.Lifetime, err = parseLifetime(p); err != nil {
				return Crypto{}, err
			}
		}
	}
	for _, p := range f[3:] {
		if err := checkSessionParam(p); err != nil {
			return Crypto{}, err
		}
	}
	return c, nil
}

// parseLifetime reads "2^31" or "1048576".
func parseLifetime(s string) (uint64, error) {
	var v uint64
	if exp, ok := strings.CutPrefix(s, "2^"); ok {
		e, err := strconv.ParseUint(exp, 10, 8)
		if err != nil || !allDigits(exp) || e > 48 {
			return 0, fmt.Errorf("%w: key lifetime %s", ErrBadCrypto, clip(s))
		}
		v = 1 << e
	} else {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || !allDigits(s) || n == 0 {
			return 0, fmt.Errorf("%w: key lifetime %s", ErrBadCrypto, clip(s))
		}
		v = n
	}
	if v > maxLifetime {
		return 0, fmt.Errorf("%w: key lifetime %s is over 2^48", ErrBadCrypto, clip(s))
	}
	return v, nil
}

// parseMKI reads "<value>:<length>": a decimal value sent as length bytes (1 to 128).
func parseMKI(s string) (string, error) {
	vs, ls, _ := strings.Cut(s, ":")
	v, err1 := strconv.ParseUint(vs, 10, 64)
	l, err2 := strconv.ParseUint(ls, 10, 8)
	if err1 != nil || err2 != nil || !allDigits(vs) || !allDigits(ls) || l < 1 || l > 128 {
		return "", fmt.Errorf("%w: MKI %s", ErrBadCrypto, clip(s))
	}
	if l < 8 && v>>(8*l) != 0 {
		return "", fmt.Errorf("%w: MKI value %d does not fit in %d bytes", ErrBadCrypto, v, l)
	}
	b := make([]byte, max(l, 8))
	binary.BigEndian.PutUint64(b[len(b)-8:], v)
	return string(b[len(b)-int(l):]), nil
}

// checkSessionParam accepts the session parameters that change nothing for us and refuses
// the rest: RFC 4568 6.3 makes an attribute with a parameter we do not understand invalid.
func checkSessionParam(p string) error {
	name, val, _ := strings.Cut(p, "=")
	switch {
	case strings.HasPrefix(p, "-"): // "may be ignored" (RFC 4568 6.3)
		return nil
	case name == "KDR" && val == "0":
		return nil
	case name == "FEC_ORDER" && val == "FEC_SRTP": // the default
		return nil
	case name == "WSH":
		if n, err := strconv.ParseUint(val, 10, 32); err != nil || n < 64 {
			return fmt.Errorf("%w: window size hint %s (at least 64)", ErrBadCrypto, clip(val))
		}
		return nil // a hint: our window is 64 packets
	}
	return fmt.Errorf("%w: session parameter %s", ErrUnsupportedCrypto, clip(p))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// clip keeps peer-supplied text in errors short and printable.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

// cryptoLine writes our a=crypto attribute: tag, suite, our key; no lifetime, no MKI.
func cryptoLine(tag uint32, suite rtp.SRTPSuite, key *rtp.SRTPKey) string {
	return fmt.Sprintf("a=crypto:%d %s inline:%s\r\n", tag, suite, base64.StdEncoding.EncodeToString(key[:]))
}

// NewSRTPKey returns a random master key and salt for a leg's SDES offers and answers.
func NewSRTPKey() rtp.SRTPKey {
	var k rtp.SRTPKey
	_, _ = rand.Read(k[:]) // never fails (crypto/rand, Go 1.24+)
	return k
}

func zeroKey(k *rtp.SRTPKey) bool { return *k == rtp.SRTPKey{} }
