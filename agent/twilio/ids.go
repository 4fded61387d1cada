package twilio

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
)

// Id prefixes, as Twilio uses them.
const (
	prefixCall    = "CA"
	prefixStream  = "MZ"
	prefixAccount = "AC"
)

// defaultAccountSeed is hashed into the account sid used when none is
// configured, so every gateway without configuration agrees on it.
const defaultAccountSeed = "switchboard-voice/switchboard"

// CallSid is the Twilio-style sid of the call with this SIP Call-ID: "CA" and
// the hex md5 of the Call-ID. It is deterministic, so the REST API can find a
// call from the sid a bot received in `start`.
func CallSid(sipCallID string) string {
	return hashSid(prefixCall, sipCallID)
}

// DefaultAccountSid is the account sid used when Config.AccountSid is empty.
func DefaultAccountSid() string {
	return hashSid(prefixAccount, defaultAccountSeed)
}

func hashSid(prefix, s string) string {
	sum := md5.Sum([]byte(s))
	return prefix + hex.EncodeToString(sum[:])
}

// newStreamSid returns "MZ" and 32 random hex digits.
func newStreamSid() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return prefixStream + hex.EncodeToString(b[:])
}

// validSid reports whether s is prefix followed by 32 hex digits.
func validSid(s, prefix string) bool {
	if len(s) != len(prefix)+32 || s[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
