package media

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/rtp"
)

// FuzzParseCrypto feeds a=crypto values from the far end to the parser. Seeds are in
// testdata/fuzz/FuzzParseCrypto. Whatever it accepts must be within the RFC 4568 limits and
// read back the same when we write it; whatever it refuses, it refuses with one of its two
// errors.
func FuzzParseCrypto(f *testing.F) {
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:" + testKeyB64)
	f.Fuzz(func(t *testing.T, value string) {
		c, err := ParseCrypto(value)
		if err != nil {
			if !errors.Is(err, ErrBadCrypto) && !errors.Is(err, ErrUnsupportedCrypto) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if c.Tag > 999999999 || (c.Suite != rtp.AES_CM_128_HMAC_SHA1_80 && c.Suite != rtp.AES_CM_128_HMAC_SHA1_32) || zeroKey(&c.Key) || len(c.MKI) > 128 || c.Lifetime > maxLifetime {
			t.Fatalf("out of range: tag %d suite %v MKI %d bytes lifetime %d", c.Tag, c.Suite, len(c.MKI), c.Lifetime)
		}
		line := strings.TrimSuffix(strings.TrimPrefix(cryptoLine(c.Tag, c.Suite, &c.Key), "a=crypto:"), "\r\n")
		back, err := ParseCrypto(line)
		if err != nil || back.Tag != c.Tag || back.Suite != c.Suite || back.Key != c.Key {
			t.Fatalf("%q does not read back: %v", line, err)
		}
	})
}
