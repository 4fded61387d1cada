package media

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/rtp"
)

// testKeyB64 is the base64 of the key bytes 1, 2, ..., 30.
var testKeyB64 = func() string {
	var k rtp.SRTPKey
	for i := range k {
		k[i] = byte(i + 1)
	}
	return base64.StdEncoding.EncodeToString(k[:])
}()

func TestParseCrypto(t *testing.T) {
	key := testKeyB64
	tests := []struct {
		name     string
		in       string
		err      error // nil, ErrBadCrypto or ErrUnsupportedCrypto
		tag      uint32
		suite    rtp.SRTPSuite
		lifetime uint64
		mki      string
	}{
		{name: "80", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key, tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80},
		{name: "32", in: "2 AES_CM_128_HMAC_SHA1_32 inline:" + key, tag: 2, suite: rtp.AES_CM_128_HMAC_SHA1_32},
		{name: "extra spaces", in: "  7   AES_CM_128_HMAC_SHA1_80\tinline:" + key + "  ", tag: 7, suite: rtp.AES_CM_128_HMAC_SHA1_80},
		{name: "nine-digit tag", in: "123456789 AES_CM_128_HMAC_SHA1_80 inline:" + key, tag: 123456789, suite: rtp.AES_CM_128_HMAC_SHA1_80},
		{name: "lifetime power", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^20", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80, lifetime: 1 << 20},
		{name: "lifetime decimal", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1048576", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80, lifetime: 1 << 20},
		{name: "lifetime 2^48", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^48", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80, lifetime: 1 << 48},
		{name: "MKI", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:4", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80, mki: "\x00\x00\x00\x01"},
		{name: "lifetime and MKI", in: "1 AES_CM_128_HMAC_SHA1_32 inline:" + key + "|2^31|258:2", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_32, lifetime: 1 << 31, mki: "\x01\x02"},
		{name: "long MKI", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:32", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80, mki: strings.Repeat("\x00", 31) + "\x01"},
		{name: "harmless session params", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " KDR=0 WSH=128 FEC_ORDER=FEC_SRTP -X_VENDOR=1", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80},
		{name: "INLINE in capitals", in: "1 AES_CM_128_HMAC_SHA1_80 INLINE:" + key, tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80},

		{name: "empty", in: "", err: ErrBadCrypto},
		{name: "no key", in: "1 AES_CM_128_HMAC_SHA1_80", err: ErrBadCrypto},
		{name: "tag not digits", in: "x AES_CM_128_HMAC_SHA1_80 inline:" + key, err: ErrBadCrypto},
		{name: "tag too long", in: "1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + key, err: ErrBadCrypto},
		{name: "bad base64", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + strings.Repeat("!", 40), err: ErrBadCrypto},
		{name: "key too short", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key[:36], err: ErrBadCrypto},
		{name: "key too long", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "AAAA", err: ErrBadCrypto},
		{name: "key padded short", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(make([]byte, 29)), err: ErrBadCrypto},
		{name: "all-zero key", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(make([]byte, 30)), err: ErrBadCrypto},
		{name: "lifetime zero", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|0", err: ErrBadCrypto},
		{name: "lifetime over 2^48", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^49", err: ErrBadCrypto},
		{name: "lifetime garbage", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^x", err: ErrBadCrypto},
		{name: "two lifetimes", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^20|2^21", err: ErrBadCrypto},
		{name: "lifetime after MKI", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:4|2^20", err: ErrBadCrypto},
		{name: "MKI length 0", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:0", err: ErrBadCrypto},
		{name: "MKI length 129", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:129", err: ErrBadCrypto},
		{name: "MKI value too big", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|256:1", err: ErrBadCrypto},
		{name: "MKI signed", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|+1:4", err: ErrBadCrypto},
		{name: "small window hint", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " WSH=32", err: ErrBadCrypto},

		{name: "unknown suite", in: "1 AES_256_CM_HMAC_SHA1_80 inline:" + key, err: ErrUnsupportedCrypto},
		{name: "GCM suite", in: "1 AEAD_AES_128_GCM inline:" + key, err: ErrUnsupportedCrypto},
		{name: "suite in lower case", in: "1 aes_cm_128_hmac_sha1_80 inline:" + key, err: ErrUnsupportedCrypto},
		{name: "several keys", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:1;inline:" + key + "|2:1", err: ErrUnsupportedCrypto},
		{name: "other key method", in: "1 AES_CM_128_HMAC_SHA1_80 uri:" + key, err: ErrUnsupportedCrypto},
		{name: "unencrypted SRTP", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " UNENCRYPTED_SRTP", err: ErrUnsupportedCrypto},
		{name: "unauthenticated SRTP", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " UNAUTHENTICATED_SRTP", err: ErrUnsupportedCrypto},
		{name: "key derivation rate", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " KDR=24", err: ErrUnsupportedCrypto},
		{name: "unknown session param", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " FOO=1", err: ErrUnsupportedCrypto},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCrypto(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
				if strings.Contains(err.Error(), key[:20]) {
					t.Fatalf("error quotes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Tag != tt.tag || c.Suite != tt.suite || c.Lifetime != tt.lifetime || c.MKI != tt.mki {
				t.Fatalf("parsed tag %d suite %s lifetime %d MKI %x", c.Tag, c.Suite, c.Lifetime, c.MKI)
			}
			if c.Key[0] != 1 || c.Key[29] != 30 {
				t.Fatalf("key decoded wrong")
			}
		})
	}
}

func TestCryptoNeverPrintsKey(t *testing.T) {
	c, err := ParseCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:" + testKeyB64)
	if err != nil {
		t.Fatal(err)
	}
	d := Description{Crypto: []Crypto{c}}
	cfg := AnswerConfig{SRTPKey: c.Key}
	n := Negotiated{SRTP: rtp.SRTPKeys{Suite: c.Suite, Local: c.Key, Remote: c.Key}}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%+v", d),
		fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%x", c.Key), fmt.Sprintf("%+v", n)} {
		if strings.Contains(s, testKeyB64[:8]) || strings.Contains(s, "[1 2 3") || strings.Contains(s, "0102030405") || strings.Contains(s, "0x1, 0x2") {
			t.Errorf("key printed: %s", s)
		}
	}
}

// TestCryptoLineRoundTrip: what we write, we (and so the far end) read back.
func TestCryptoLineRoundTrip(t *testing.T) {
	key := NewSRTPKey()
	if zeroKey(&key) || key == NewSRTPKey() {
		t.Fatal("NewSRTPKey is not random")
	}
	line := cryptoLine(3, rtp.AES_CM_128_HMAC_SHA1_32, &key)
	value, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r\n"), "a=crypto:")
	if !ok {
		t.Fatalf("line %q", line)
	}
	c, err := ParseCrypto(value)
	if err != nil {
		t.Fatal(err)
	}
	if c.Tag != 3 || c.Suite != rtp.AES_CM_128_HMAC_SHA1_32 || c.Key != key || c.MKI != "" || c.Lifetime != 0 {
		t.Fatalf("read back %v", c)
	}
}
