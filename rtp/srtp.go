package rtp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pion/srtp/v3"
)

// SDES-SRTP (RFC 4568 keys, RFC 3711 transforms) for one session.
//
// SRTP packets go through our own AES-CM/HMAC-SHA1 transform (srtp_transform.go) rather than
// pion/srtp's Context: pion v3.0.10 allocates five times per packet pair (HMAC Sum into a nil
// slice, an escaping ROC buffer, the replay detector's closure), and the media path must not
// allocate. pion/srtp stays the reference: the tests check both transforms against each other
// in both directions, and SRTCP (one packet every few seconds) uses pion directly.

// SRTPSuite is an SDES crypto suite (RFC 4568 section 6.2).
type SRTPSuite uint8

// The suites we support. The zero value means plain RTP.
const (
	SRTPNone SRTPSuite = iota
	AES_CM_128_HMAC_SHA1_80
	AES_CM_128_HMAC_SHA1_32
)

// SRTPKeyLen is the length of an SDES key: the 16-byte master key followed by the 14-byte
// master salt, as RFC 4568 carries them in one inline: value.
const SRTPKeyLen = 30

// SRTPKey is an SDES master key followed by its master salt. It is a secret: every way of
// printing or logging it shows "<redacted>", so a struct holding one is safe to print.
type SRTPKey [SRTPKeyLen]byte

// String redacts the key (fmt uses it for %v, %s, %x and %q alike).
func (SRTPKey) String() string { return "<redacted>" }

// GoString redacts the key for %#v.
func (SRTPKey) GoString() string { return "<redacted>" }

// LogValue redacts the key in slog.
func (SRTPKey) LogValue() slog.Value { return slog.StringValue("<redacted>") }

const (
	srtpMasterKeyLen  = 16
	srtpMasterSaltLen = 14
	// srtpMaxTrailer bounds what SRTP adds to a packet: the 10-byte tag (no MKI on what we
	// send). SRTCP adds the 4-byte index as well.
	srtpMaxTrailer  = 10
	srtcpMaxTrailer = 4 + 10
	// srtpReplayWindow is the RFC 3711 minimum replay window (packets).
	srtpReplayWindow = 64
)

// String returns the RFC 4568 suite name.
func (s SRTPSuite) String() string {
	switch s {
	case SRTPNone:
		return "none"
	case AES_CM_128_HMAC_SHA1_80:
		return "AES_CM_128_HMAC_SHA1_80"
	case AES_CM_128_HMAC_SHA1_32:
		return "AES_CM_128_HMAC_SHA1_32"
	}
	return fmt.Sprintf("SRTPSuite(%d)", uint8(s))
}

// ParseSRTPSuite maps an RFC 4568 suite name to a supported suite. Names are case-sensitive
// in the RFC grammar.
func ParseSRTPSuite(name string) (SRTPSuite, bool) {
	switch name {
	case "AES_CM_128_HMAC_SHA1_80":
		return AES_CM_128_HMAC_SHA1_80, true
	case "AES_CM_128_HMAC_SHA1_32":
		return AES_CM_128_HMAC_SHA1_32, true
	}
	return SRTPNone, false
}

// tagLen is the SRTP authentication tag length; SRTCP always uses 10 bytes (RFC 4568 6.2.2).
func (s SRTPSuite) tagLen() int {
	if s == AES_CM_128_HMAC_SHA1_32 {
		return 4
	}
	return 10
}

func (s SRTPSuite) profile() srtp.ProtectionProfile {
	if s == AES_CM_128_HMAC_SHA1_32 {
		return srtp.ProtectionProfileAes128CmHmacSha1_32
	}
	return srtp.ProtectionProfileAes128CmHmacSha1_80
}

// SRTPKeys are one session's SDES keys. Local encrypts what we send, Remote authenticates and
// decrypts what we receive. The zero value (Suite SRTPNone) is plain RTP. Keys are secrets:
// String and LogValue show the suite only.
type SRTPKeys struct {
	Suite  SRTPSuite
	Local  SRTPKey
	Remote SRTPKey
	// RemoteMKI is the master key identifier the far end puts in each packet (RFC 4568
	// "|MKI:len"), as raw bytes; empty when it uses none. A string keeps SRTPKeys comparable.
	RemoteMKI string
}

// Enabled reports whether SRTP is on.
func (k SRTPKeys) Enabled() bool { return k.Suite != SRTPNone }

// String shows the suite, never the keys.
func (k SRTPKeys) String() string { return k.Suite.String() }

// LogValue keeps keys out of logs.
func (k SRTPKeys) LogValue() slog.Value { return slog.StringValue(k.Suite.String()) }

// GoString keeps keys out of %#v.
func (k SRTPKeys) GoString() string { return "rtp.SRTPKeys{Suite: " + k.Suite.String() + "}" }

func (k SRTPKeys) check() error {
	switch k.Suite {
	case SRTPNone:
		return nil
	case AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32:
	default:
		return fmt.Errorf("rtp: srtp: unsupported suite %d", k.Suite)
	}
	if len(k.RemoteMKI) > 128 {
		return fmt.Errorf("rtp: srtp: MKI of %d bytes (at most 128)", len(k.RemoteMKI))
	}
	var zero SRTPKey
	if subtle.ConstantTimeCompare(k.Local[:], zero[:]) == 1 || subtle.ConstantTimeCompare(k.Remote[:], zero[:]) == 1 {
		return errors.New("rtp: srtp: all-zero master key")
	}
	return nil
}

// srtcpState is the SRTCP side of a session: pion contexts, used from the RTCP goroutine
// only but swapped by SetSRTP, hence the mutex.
type srtcpState struct {
	mu      sync.Mutex
	out, in *srtp.Context // nil: plain RTCP
	outBuf  [rtcpOutSize + srtcpMaxTrailer]byte
	inBuf   [readBufferSize]byte
}

// SetSRTP turns SRTP and SRTCP on with keys, changes the keys (a re-INVITE brought new ones),
// or turns them off (the zero value). It may be called before or during ReadLoop. Each
// direction keeps its cryptographic context while its key stays the same: a re-INVITE that
// repeats our key must not restart our packet index, or keystream would be reused. A
// direction whose key changes starts a new context, as RFC 3711 wants.
func (s *Session) SetSRTP(k SRTPKeys) error {
	if err := k.check(); err != nil {
		return err
	}
	s.srtpMu.Lock() // one SetSRTP at a time: the comparison with the old keys must hold
	defer s.srtpMu.Unlock()
	old := s.srtpKeys
	sameOut := k.Enabled() && old.Suite == k.Suite && old.Local == k.Local
	sameIn := k.Enabled() && old.Suite == k.Suite && old.Remote == k.Remote && old.RemoteMKI == k.RemoteMKI
	var (
		tx      *srtpSender
		rx      *srtpReceiver
		out, in *srtp.Context
		err     error
	)
	if k.Enabled() && !sameOut {
		if tx, err = newSRTPSender(k.Suite, k.Local[:]); err != nil {
			return err
		}
		if out, err = srtp.CreateContext(k.Local[:srtpMasterKeyLen], k.Local[srtpMasterKeyLen:], k.Suite.profile()); err != nil {
			return fmt.Errorf("rtp: srtcp context: %w", err)
		}
	}
	if k.Enabled() && !sameIn {
		if rx, err = newSRTPReceiver(k.Suite, k.Remote[:], []byte(k.RemoteMKI)); err != nil {
			return err
		}
		opts := []srtp.ContextOption{srtp.SRTCPReplayProtection(srtpReplayWindow)}
		if k.RemoteMKI != "" {
			opts = append(opts, srtp.MasterKeyIndicator([]byte(k.RemoteMKI)))
		}
		if in, err = srtp.CreateContext(k.Remote[:srtpMasterKeyLen], k.Remote[srtpMasterKeyLen:], k.Suite.profile(), opts...); err != nil {
			return fmt.Errorf("rtp: srtcp context: %w", err)
		}
	}
	if !sameOut {
		s.tx.mu.Lock()
		s.tx.srtp = tx
		s.tx.mu.Unlock()
		s.srtcp.mu.Lock()
		s.srtcp.out = out
		s.srtcp.mu.Unlock()
	}
	if !sameIn {
		s.rx.mu.Lock()
		s.rx.srtp = rx
		s.rx.mu.Unlock()
		s.srtcp.mu.Lock()
		s.srtcp.in = in
		s.srtcp.mu.Unlock()
	}
	s.srtpKeys = k
	return nil
}

// SRTP reports whether packets are encrypted.
func (s *Session) SRTP() bool {
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	return s.tx.srtp != nil
}

// protectRTCP encrypts an outgoing compound RTCP packet when SRTCP is on; otherwise it
// returns b. Called from the RTCP goroutine.
func (s *Session) protectRTCP(b []byte) ([]byte, error) {
	s.srtcp.mu.Lock()
	defer s.srtcp.mu.Unlock()
	if s.srtcp.out == nil {
		return b, nil
	}
	out, err := s.srtcp.out.EncryptRTCP(s.srtcp.outBuf[:0], b, nil)
	if err != nil {
		return nil, fmt.Errorf("rtp: srtcp: %w", err)
	}
	return out, nil
}

// unprotectRTCP authenticates and decrypts an incoming SRTCP packet when SRTCP is on. A
// packet that fails (bad tag, unknown MKI, too short, replayed) is counted and dropped.
func (s *Session) unprotectRTCP(b []byte) ([]byte, bool) {
	s.srtcp.mu.Lock()
	defer s.srtcp.mu.Unlock()
	if s.srtcp.in == nil {
		return b, true
	}
	out, err := s.srtcp.in.DecryptRTCP(s.srtcp.inBuf[:0], b, nil)
	if err != nil {
		s.srtcpDropped.Add(1)
		return nil, false
	}
	return out, true
}
