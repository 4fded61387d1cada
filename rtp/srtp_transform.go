package rtp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what RFC 3711 specifies
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// The RFC 3711 default transforms for SRTP packets: AES in counter mode (4.1.1), HMAC-SHA1
// authentication (4.2.1) truncated to 80 or 32 bits, key derivation with a key derivation rate
// of zero (4.3), the rollover counter estimate of Appendix A and a 64-packet replay window
// (3.3.2). Every buffer is preallocated: protect and unprotect do not allocate.

// Key derivation labels (RFC 3711 4.3.2).
const (
	labelSRTPEncryption = 0x00
	labelSRTPAuth       = 0x01
	labelSRTPSalt       = 0x02
	srtpAuthKeyLen      = 20
)

var (
	errSRTPAuth   = errors.New("rtp: srtp authentication failed")
	errSRTPReplay = errors.New("rtp: srtp replayed or too old")
)

// srtpCrypto holds one direction's session keys and scratch space.
type srtpCrypto struct {
	block  cipher.Block // session encryption key
	salt   [srtpMasterSaltLen]byte
	mac    hash.Hash // HMAC-SHA1 under the session authentication key
	tagLen int

	iv  [aes.BlockSize]byte
	ks  [aes.BlockSize]byte
	sum [sha1.Size]byte
	roc [4]byte
}

func newSRTPCrypto(suite SRTPSuite, master []byte) (*srtpCrypto, error) {
	if len(master) != SRTPKeyLen {
		return nil, fmt.Errorf("rtp: srtp: master key and salt are %d bytes, want %d", len(master), SRTPKeyLen)
	}
	mk, err := aes.NewCipher(master[:srtpMasterKeyLen])
	if err != nil {
		return nil, fmt.Errorf("rtp: srtp: %w", err)
	}
	salt := master[srtpMasterKeyLen:]
	var encKey [srtpMasterKeyLen]byte
	var authKey [srtpAuthKeyLen]byte
	c := &srtpCrypto{tagLen: suite.tagLen()}
	deriveSessionKey(mk, salt, labelSRTPEncryption, encKey[:])
	deriveSessionKey(mk, salt, labelSRTPAuth, authKey[:])
	deriveSessionKey(mk, salt, labelSRTPSalt, c.salt[:])
	if c.block, err = aes.NewCipher(encKey[:]); err != nil {
		return nil, fmt.Errorf("rtp: srtp: %w", err)
	}
	c.mac = hmac.New(sha1.New, authKey[:])
	clear(encKey[:])
	clear(authKey[:])
	return c, nil
}

// deriveSessionKey is the AES-CM PRF of RFC 3711 4.3.1 with r = 0: the keystream under the
// master key from IV = (master salt XOR label in the key_id's top byte) * 2^16.
func deriveSessionKey(master cipher.Block, masterSalt []byte, label byte, out []byte) {
	var iv, ks [aes.BlockSize]byte
	copy(iv[:], masterSalt)
	iv[7] ^= label // key_id = label || r(48 bits), right-aligned in the 112-bit salt
	for i := 0; i < len(out); i += aes.BlockSize {
		binary.BigEndian.PutUint16(iv[14:], uint16(i/aes.BlockSize))
		master.Encrypt(ks[:], iv[:])
		copy(out[i:], ks[:])
	}
	clear(ks[:])
}

// xorKeystream encrypts or decrypts src into dst (they may be the same) with the AES-CM
// keystream of packet index for ssrc: IV = salt*2^16 XOR ssrc*2^64 XOR index*2^16.
func (c *srtpCrypto) xorKeystream(dst, src []byte, ssrc uint32, index uint64) {
	iv := &c.iv
	copy(iv[:], c.salt[:])
	iv[14], iv[15] = 0, 0
	var w [8]byte
	binary.BigEndian.PutUint32(w[:4], ssrc)
	subtle.XORBytes(iv[4:8], iv[4:8], w[:4])
	binary.BigEndian.PutUint64(w[:], index<<16) // 48-bit index in bytes 8..13
	subtle.XORBytes(iv[8:14], iv[8:14], w[:6])
	for j := uint16(0); len(src) > 0; j++ {
		binary.BigEndian.PutUint16(iv[14:], j)
		c.block.Encrypt(c.ks[:], iv[:])
		n := subtle.XORBytes(dst, src, c.ks[:])
		dst, src = dst[n:], src[n:]
	}
}

// tag is the truncated HMAC-SHA1 of the authenticated portion and the rollover counter. The
// result aliases scratch space: use it before the next call.
func (c *srtpCrypto) tag(authenticated []byte, roc uint32) []byte {
	c.mac.Reset()
	c.mac.Write(authenticated)
	binary.BigEndian.PutUint32(c.roc[:], roc)
	c.mac.Write(c.roc[:])
	return c.mac.Sum(c.sum[:0])[:c.tagLen]
}

// srtpSender protects the packets we send. Our sequence numbers only ever go up by one, so
// the rollover counter grows when they wrap.
type srtpSender struct {
	crypto  *srtpCrypto
	roc     uint32
	lastSeq uint16
	started bool
}

func newSRTPSender(suite SRTPSuite, master []byte) (*srtpSender, error) {
	c, err := newSRTPCrypto(suite, master)
	if err != nil {
		return nil, err
	}
	return &srtpSender{crypto: c}, nil
}

// protect writes the SRTP form of the RTP packet pkt, whose header is hdrLen bytes long, into
// dst, which must hold len(pkt)+srtpMaxTrailer bytes and not overlap pkt.
func (s *srtpSender) protect(dst, pkt []byte, hdrLen int) []byte {
	seq := binary.BigEndian.Uint16(pkt[2:])
	ssrc := binary.BigEndian.Uint32(pkt[8:])
	if s.started && seq < s.lastSeq && s.lastSeq-seq > 1<<15 {
		s.roc++
	}
	s.started, s.lastSeq = true, seq
	copy(dst, pkt[:hdrLen])
	s.crypto.xorKeystream(dst[hdrLen:len(pkt)], pkt[hdrLen:], ssrc, uint64(s.roc)<<16|uint64(seq))
	n := len(pkt)
	n += copy(dst[n:], s.crypto.tag(dst[:n], s.roc))
	return dst[:n]
}

// srtpReceiver authenticates and decrypts what we receive. It keeps index state for a few
// sources: a far end that switches streams and back keeps its replay protection.
type srtpReceiver struct {
	crypto  *srtpCrypto
	mki     []byte
	streams [4]srtpStream
	next    int // slot to reuse when all are taken
}

// srtpStream is one source's highest authenticated index and replay window.
type srtpStream struct {
	used   bool
	ssrc   uint32
	roc    uint32
	seq    uint16 // s_l: highest sequence number authenticated
	window uint64 // bit d: index highest-d was received
}

func newSRTPReceiver(suite SRTPSuite, master, mki []byte) (*srtpReceiver, error) {
	c, err := newSRTPCrypto(suite, master)
	if err != nil {
		return nil, err
	}
	return &srtpReceiver{crypto: c, mki: mki}, nil
}

// unprotect checks pkt's tag and replay state and writes the plain RTP packet into dst, which
// must hold len(pkt) bytes. It returns errSRTPAuth or errSRTPReplay for packets to drop.
// State changes only for packets that authenticate, so forgeries cannot move the window.
func (r *srtpReceiver) unprotect(dst, pkt []byte) ([]byte, error) {
	hdrLen, ok := rtpHeaderLen(pkt)
	trailer := len(r.mki) + r.crypto.tagLen
	if !ok || len(pkt) < hdrLen+trailer || len(dst) < len(pkt) {
		return nil, errSRTPAuth
	}
	seq := binary.BigEndian.Uint16(pkt[2:])
	ssrc := binary.BigEndian.Uint32(pkt[8:])
	st := r.stream(ssrc)
	var roc uint32
	if st != nil {
		if roc, ok = st.estimate(seq); !ok || st.replayed(uint64(roc)<<16|uint64(seq)) {
			return nil, errSRTPReplay
		}
	}
	end := len(pkt) - trailer
	if len(r.mki) > 0 && subtle.ConstantTimeCompare(pkt[end:end+len(r.mki)], r.mki) != 1 {
		return nil, errSRTPAuth
	}
	if subtle.ConstantTimeCompare(r.crypto.tag(pkt[:end], roc), pkt[len(pkt)-r.crypto.tagLen:]) != 1 {
		return nil, errSRTPAuth
	}
	copy(dst, pkt[:hdrLen])
	r.crypto.xorKeystream(dst[hdrLen:end], pkt[hdrLen:end], ssrc, uint64(roc)<<16|uint64(seq))
	if st == nil {
		st = r.add(ssrc, seq)
	}
	st.accept(roc, seq)
	return dst[:end], nil
}

func (r *srtpReceiver) stream(ssrc uint32) *srtpStream {
	for i := range r.streams {
		if st := &r.streams[i]; st.used && st.ssrc == ssrc {
			return st
		}
	}
	return nil
}

func (r *srtpReceiver) add(ssrc uint32, seq uint16) *srtpStream {
	slot := -1
	for i := range r.streams {
		if !r.streams[i].used {
			slot = i
			break
		}
	}
	if slot < 0 {
		slot = r.next
		r.next = (r.next + 1) % len(r.streams)
	}
	// The first packet sets s_l with a rollover counter of zero (RFC 3711 3.3.1).
	r.streams[slot] = srtpStream{used: true, ssrc: ssrc, seq: seq}
	return &r.streams[slot]
}

// estimate guesses the packet's rollover counter from s_l (RFC 3711 Appendix A). ok is false
// for a packet from before the stream's first rollover period, which cannot be valid.
func (st *srtpStream) estimate(seq uint16) (uint32, bool) {
	sl, s := int(st.seq), int(seq)
	switch {
	case sl < 1<<15 && s-sl > 1<<15:
		if st.roc == 0 {
			return 0, false
		}
		return st.roc - 1, true
	case sl >= 1<<15 && sl-(1<<15) > s:
		return st.roc + 1, true
	}
	return st.roc, true
}

func (st *srtpStream) highest() uint64 { return uint64(st.roc)<<16 | uint64(st.seq) }

func (st *srtpStream) replayed(index uint64) bool {
	h := st.highest()
	if index > h {
		return false
	}
	d := h - index
	return d >= srtpReplayWindow || st.window&(1<<d) != 0
}

func (st *srtpStream) accept(roc uint32, seq uint16) {
	index, h := uint64(roc)<<16|uint64(seq), st.highest()
	switch {
	case index > h:
		if d := index - h; d >= srtpReplayWindow {
			st.window = 1
		} else {
			st.window = st.window<<d | 1
		}
		st.roc, st.seq = roc, seq
	default:
		st.window |= 1 << (h - index)
	}
}

// rtpHeaderLen is the length of the RTP header at the start of b: fixed part, CSRCs and
// header extension, which SRTP leaves in the clear.
func rtpHeaderLen(b []byte) (int, bool) {
	if len(b) < 12 {
		return 0, false
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return 0, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	if n > len(b) {
		return 0, false
	}
	return n, true
}
