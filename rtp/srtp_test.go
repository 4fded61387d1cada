package rtp

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

func testKey(t testing.TB) SRTPKey {
	t.Helper()
	var k SRTPKey
	rand.Read(k[:])
	return k
}

func pionContext(t testing.TB, suite SRTPSuite, key SRTPKey, opts ...srtp.ContextOption) *srtp.Context {
	t.Helper()
	c, err := srtp.CreateContext(key[:16], key[16:], suite.profile(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rtpPacket(seq uint16, ssrc uint32, payload []byte) []byte {
	return pkt{seq: seq, ts: uint32(seq) * 160, ssrc: ssrc, payload: payload}.bytes()
}

// TestSRTPMatchesPion checks our transform against pion/srtp both ways, for both suites,
// across a sequence number wrap (the rollover counter), with CSRCs and an extension header
// (left in the clear), and with an MKI on what the far end sends.
func TestSRTPMatchesPion(t *testing.T) {
	tests := []struct {
		name  string
		suite SRTPSuite
		start uint16
		n     int
		mki   []byte
		shape func(*pionrtp.Packet)
	}{
		{name: "80", suite: AES_CM_128_HMAC_SHA1_80, start: 1, n: 20},
		{name: "32", suite: AES_CM_128_HMAC_SHA1_32, start: 1000, n: 20},
		{name: "80 rollover", suite: AES_CM_128_HMAC_SHA1_80, start: 65530, n: 20},
		{name: "32 rollover", suite: AES_CM_128_HMAC_SHA1_32, start: 65535, n: 5},
		{name: "mki", suite: AES_CM_128_HMAC_SHA1_80, start: 7, n: 5, mki: []byte{0, 0, 0, 1}},
		{name: "csrc and extension", suite: AES_CM_128_HMAC_SHA1_80, start: 9, n: 5, shape: func(p *pionrtp.Packet) {
			p.CSRC = []uint32{1, 2}
			if err := p.SetExtension(1, []byte{0xaa, 0xbb}); err != nil {
				panic(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := testKey(t)
			ours, err := newSRTPSender(tt.suite, key[:])
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := newSRTPReceiver(tt.suite, key[:], tt.mki)
			if err != nil {
				t.Fatal(err)
			}
			opts := []srtp.ContextOption{srtp.SRTPReplayProtection(64)}
			if tt.mki != nil {
				opts = append(opts, srtp.MasterKeyIndicator(tt.mki))
			}
			pionDec := pionContext(t, tt.suite, key, srtp.SRTPReplayProtection(64))
			pionEnc := pionContext(t, tt.suite, key, opts...)
			dst := make([]byte, 1600)
			plainOut := make([]byte, 1600)
			for i := range tt.n {
				seq := tt.start + uint16(i)
				p := pionrtp.Packet{Header: pionrtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(i) * 160, SSRC: 0xfeed}, Payload: bytes.Repeat([]byte{byte(i)}, 160)}
				if tt.shape != nil {
					tt.shape(&p)
				}
				plain, err := p.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				hdrLen := len(plain) - len(p.Payload)

				// Ours -> pion (only without MKI: we never send one).
				if tt.mki == nil {
					enc := ours.protect(dst, plain, hdrLen)
					if len(enc) != len(plain)+tt.suite.tagLen() {
						t.Fatalf("packet %d: %d bytes, want %d", i, len(enc), len(plain)+tt.suite.tagLen())
					}
					if bytes.Contains(enc, p.Payload) {
						t.Fatalf("packet %d: payload in the clear", i)
					}
					got, err := pionDec.DecryptRTP(nil, enc, nil)
					if err != nil {
						t.Fatalf("packet %d (seq %d): pion cannot decrypt ours: %v", i, seq, err)
					}
					if !bytes.Equal(got, plain) {
						t.Fatalf("packet %d: pion decrypted %x, want %x", i, got, plain)
					}
				}

				// Pion -> ours.
				enc, err := pionEnc.EncryptRTP(nil, plain, nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := theirs.unprotect(plainOut, enc)
				if err != nil {
					t.Fatalf("packet %d (seq %d): we cannot decrypt pion's: %v", i, seq, err)
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("packet %d: we decrypted %x, want %x", i, got, plain)
				}
			}
		})
	}
}

// TestSRTPUnprotectRejects covers what must be dropped, and that state does not move for it.
func TestSRTPUnprotectRejects(t *testing.T) {
	key := testKey(t)
	enc := pionContext(t, AES_CM_128_HMAC_SHA1_80, key)
	packet := func(seq uint16) []byte {
		b, err := enc.EncryptRTP(nil, rtpPacket(seq, 42, bytes.Repeat([]byte{1}, 160)), nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p100, p101, p102, p30 := packet(100), packet(101), packet(102), packet(30)
	flipped := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	other := testKey(t)
	wrongKey, err := pionContext(t, AES_CM_128_HMAC_SHA1_80, other).EncryptRTP(nil, rtpPacket(103, 42, []byte{1, 2, 3}), nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		in   []byte
		want error
	}{
		{"first", p100, nil},
		{"replay", p100, errSRTPReplay},
		{"payload bit flipped", flipped(p102, 20), errSRTPAuth},
		{"header bit flipped", flipped(p102, 5), errSRTPAuth},
		{"tag bit flipped", flipped(p102, len(p102)-1), errSRTPAuth},
		{"truncated", p102[:15], errSRTPAuth},
		{"not RTP sized", p102[:8], errSRTPAuth},
		{"wrong key", wrongKey, errSRTPAuth},
		{"after forgeries, the genuine one", p102, nil},
		{"reordered within window", p101, nil},
		{"reordered replay", p101, errSRTPReplay},
		{"older than the window", p30, errSRTPReplay},
	}
	r, err := newSRTPReceiver(AES_CM_128_HMAC_SHA1_80, key[:], nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 1600)
	for _, s := range steps {
		_, err := r.unprotect(dst, s.in)
		if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Fatalf("%s: error %v, want %v", s.name, err, s.want)
		}
	}
}

func TestSRTPStreamEstimate(t *testing.T) {
	tests := []struct {
		roc    uint32
		sl     uint16
		seq    uint16
		want   uint32
		wantOK bool
	}{
		{0, 100, 101, 0, true},
		{0, 100, 30000, 0, true},  // a jump ahead within the period
		{0, 100, 40000, 0, false}, // more than half a period back: before the stream began
		{0, 65530, 3, 1, true},    // wrapped
		{1, 3, 65530, 0, true},    // late packet from before the wrap
		{0, 3, 65530, 0, false},   // from before the stream began
		{5, 40000, 39999, 5, true},
	}
	for _, tt := range tests {
		st := srtpStream{used: true, roc: tt.roc, seq: tt.sl}
		got, ok := st.estimate(tt.seq)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("roc %d s_l %d seq %d: %d %v, want %d %v", tt.roc, tt.sl, tt.seq, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestSRTPKeysCheck(t *testing.T) {
	good := SRTPKeys{Suite: AES_CM_128_HMAC_SHA1_80, Local: testKey(t), Remote: testKey(t)}
	tests := []struct {
		name string
		edit func(*SRTPKeys)
		ok   bool
	}{
		{"good", func(*SRTPKeys) {}, true},
		{"off", func(k *SRTPKeys) { *k = SRTPKeys{} }, true},
		{"zero local key", func(k *SRTPKeys) { k.Local = SRTPKey{} }, false},
		{"zero remote key", func(k *SRTPKeys) { k.Remote = SRTPKey{} }, false},
		{"unknown suite", func(k *SRTPKeys) { k.Suite = 9 }, false},
		{"long MKI", func(k *SRTPKeys) { k.RemoteMKI = strings.Repeat("x", 129) }, false},
	}
	for _, tt := range tests {
		k := good
		tt.edit(&k)
		if err := k.check(); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	// Keys never reach logs or %v.
	for _, s := range []string{fmt.Sprint(good), fmt.Sprintf("%+v", good), fmt.Sprintf("%#v", good), fmt.Sprint(struct{ K SRTPKeys }{good})} {
		if strings.Contains(s, fmt.Sprint(good.Local[0])+" ") || strings.Contains(s, "Local") {
			t.Errorf("keys printed: %s", s)
		}
	}
}

// srtpPair is two sessions talking SRTP over loopback, with crossed keys.
func srtpPair(t *testing.T, suite SRTPSuite, rtcp time.Duration) (a, b *Session, ka, kb SRTPKeys) {
	t.Helper()
	pool, _ := testPool(t, 2, 0)
	a = openSession(t, Config{Pool: pool, Latch: true, RTCPInterval: rtcp})
	b = openSession(t, Config{Pool: pool, Latch: true, RTCPInterval: rtcp})
	a.SetRemote(localAddr(b))
	b.SetRemote(localAddr(a))
	keyA, keyB := testKey(t), testKey(t)
	ka = SRTPKeys{Suite: suite, Local: keyA, Remote: keyB}
	kb = SRTPKeys{Suite: suite, Local: keyB, Remote: keyA}
	if err := a.SetSRTP(ka); err != nil {
		t.Fatal(err)
	}
	if err := b.SetSRTP(kb); err != nil {
		t.Fatal(err)
	}
	return a, b, ka, kb
}

func TestSRTPSessionsTalk(t *testing.T) {
	for _, suite := range []SRTPSuite{AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32} {
		t.Run(suite.String(), func(t *testing.T) {
			a, b, ka, _ := srtpPair(t, suite, 30*time.Millisecond)
			var gotA, gotB received
			running(t, a, gotA.handle)
			running(t, b, gotB.handle)

			const n = 30
			payload := bytes.Repeat([]byte{0x55}, 160)
			for range n {
				if err := a.WriteAudio(0, false, payload, 160); err != nil {
					t.Fatal(err)
				}
				if err := b.WriteAudio(8, false, payload, 160); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 2*time.Second, "packets both ways", func() bool {
				return a.Stats().PacketsReceived == n && b.Stats().PacketsReceived == n
			})
			for _, p := range gotB.snapshot() {
				if !bytes.Equal(p.payload, payload) || p.ssrc != a.SSRC() {
					t.Fatalf("b received %+v", p)
				}
			}
			// SRTCP both ways: reports arrive and parse.
			waitFor(t, 2*time.Second, "SRTCP reports", func() bool {
				return a.Stats().RTCPReceived > 0 && b.Stats().RTCPReceived > 0
			})

			// A forger on another socket: a packet under a's key with one payload bit
			// flipped, plain RTP, and plain RTCP. All dropped and counted; nothing delivered.
			forger := newPeer(t)
			tx, err := newSRTPSender(suite, ka.Local[:])
			if err != nil {
				t.Fatal(err)
			}
			// Ahead of a's stream, so the replay window lets them through to the tag check.
			a.tx.mu.Lock()
			ahead := a.tx.pkt.SequenceNumber + 100
			a.tx.mu.Unlock()
			plain := rtpPacket(ahead, a.SSRC(), payload)
			forged := tx.protect(make([]byte, 1600), plain, 12)
			forged[30] ^= 0x01
			forger.send(localAddr(b), forged)
			forger.send(localAddr(b), plain)
			rtcpDst := netipAddrPortPlus(localAddr(b), 1) // RTCP is the RTP port + 1
			forger.send(rtcpDst, make([]byte, 32))        // not even RTCP: dropped by SRTCP
			sr := make([]byte, 64)
			srLen := putSR(sr, 7, senderInfo{}, nil)
			forger.send(rtcpDst, sr[:srLen]) // plain RTCP has no SRTCP trailer
			waitFor(t, 2*time.Second, "forgeries counted", func() bool {
				st := b.Stats()
				return st.SRTPAuthFailures == 2 && st.SRTCPDropped >= 2
			})
			// And a replay of a genuine packet from the past is a duplicate.
			forger.send(localAddr(b), tx.protect(make([]byte, 1600), rtpPacket(ahead-100-n, a.SSRC(), payload), 12))
			waitFor(t, 2*time.Second, "replay counted", func() bool { return b.Stats().Duplicates == 1 })
			st := b.Stats()
			if st.PacketsReceived != n || st.PacketsDropped != 2 {
				t.Fatalf("b stats after forgeries: %+v", st)
			}
			if got := len(gotB.snapshot()); got != n {
				t.Fatalf("b delivered %d packets, want %d", got, n)
			}
			if b.Remote() != localAddr(a) {
				t.Fatalf("b latched onto %v", b.Remote())
			}
			if st := a.Stats(); st.SRTPAuthFailures != 0 || st.SRTCPDropped != 0 {
				t.Fatalf("a stats: %+v", st)
			}
		})
	}
}

func netipAddrPortPlus(ap netip.AddrPort, d uint16) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr(), ap.Port()+d)
}

// TestSRTPRekeyAndOff: a re-INVITE can bring new keys or turn SRTP off mid-call.
func TestSRTPRekeyAndOff(t *testing.T) {
	a, b, _, _ := srtpPair(t, AES_CM_128_HMAC_SHA1_80, -1)
	var got received
	running(t, b, got.handle)
	send := func(k int) {
		t.Helper()
		for range k {
			if err := a.WriteAudio(0, false, []byte{1, 2, 3, 4}, 4); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(3)
	waitFor(t, 2*time.Second, "3 packets", func() bool { return b.Stats().PacketsReceived == 3 })

	// New keys on both sides.
	k1, k2 := testKey(t), testKey(t)
	if err := a.SetSRTP(SRTPKeys{Suite: AES_CM_128_HMAC_SHA1_32, Local: k1, Remote: k2}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetSRTP(SRTPKeys{Suite: AES_CM_128_HMAC_SHA1_32, Local: k2, Remote: k1}); err != nil {
		t.Fatal(err)
	}
	send(3)
	waitFor(t, 2*time.Second, "3 more packets", func() bool { return b.Stats().PacketsReceived == 6 })

	// Only a turns SRTP off: b drops what it cannot authenticate.
	if err := a.SetSRTP(SRTPKeys{}); err != nil {
		t.Fatal(err)
	}
	if a.SRTP() || !b.SRTP() {
		t.Fatal("SRTP() does not follow SetSRTP")
	}
	send(2)
	waitFor(t, 2*time.Second, "plain packets refused", func() bool { return b.Stats().SRTPAuthFailures == 2 })
	if err := b.SetSRTP(SRTPKeys{}); err != nil {
		t.Fatal(err)
	}
	send(2)
	waitFor(t, 2*time.Second, "plain packets taken", func() bool { return b.Stats().PacketsReceived == 8 })
	if err := a.SetSRTP(SRTPKeys{Suite: AES_CM_128_HMAC_SHA1_80}); err == nil {
		t.Fatal("zero keys accepted")
	}
}

// TestSRTPProcessDatagramSeesPlainRTP: the receive rules (sequence, held packet) work on the
// decrypted packet, including the copy made for a one-packet reorder.
func TestSRTPProcessDatagramSeesPlainRTP(t *testing.T) {
	s, err := newSession(Config{PayloadTypes: []uint8{0}})
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t)
	if err := s.SetSRTP(SRTPKeys{Suite: AES_CM_128_HMAC_SHA1_80, Local: testKey(t), Remote: key}); err != nil {
		t.Fatal(err)
	}
	enc := pionContext(t, AES_CM_128_HMAC_SHA1_80, key)
	src := newPeer(t).addr()
	var got received
	now := time.Now()
	for _, seq := range []uint16{10, 11, 13, 12, 14} {
		b, err := enc.EncryptRTP(nil, rtpPacket(seq, 5, []byte{byte(seq), 0xd5}), nil)
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(20 * time.Millisecond)
		s.processDatagram(b, src, now, got.handle)
	}
	pkts := got.snapshot()
	if fmt.Sprint(got.seqs()) != "[10 11 12 13 14]" {
		t.Fatalf("delivered %v", got.seqs())
	}
	for _, p := range pkts {
		if !bytes.Equal(p.payload, []byte{byte(p.seq), 0xd5}) {
			t.Fatalf("packet %d payload %x", p.seq, p.payload)
		}
	}
}

// TestSRTPSetKeepsUnchangedDirection: a re-INVITE repeating our key must not restart our
// packet index (that would reuse keystream); a new remote key starts a new receive context.
func TestSRTPSetKeepsUnchangedDirection(t *testing.T) {
	s, err := newSession(Config{PayloadTypes: []uint8{0}})
	if err != nil {
		t.Fatal(err)
	}
	k := SRTPKeys{Suite: AES_CM_128_HMAC_SHA1_80, Local: testKey(t), Remote: testKey(t)}
	if err := s.SetSRTP(k); err != nil {
		t.Fatal(err)
	}
	tx, rx, out, in := s.tx.srtp, s.rx.srtp, s.srtcp.out, s.srtcp.in
	if err := s.SetSRTP(k); err != nil {
		t.Fatal(err)
	}
	if s.tx.srtp != tx || s.rx.srtp != rx || s.srtcp.out != out || s.srtcp.in != in {
		t.Fatal("same keys replaced a context")
	}
	k.Remote = testKey(t)
	if err := s.SetSRTP(k); err != nil {
		t.Fatal(err)
	}
	if s.tx.srtp != tx || s.srtcp.out != out || s.rx.srtp == rx || s.srtcp.in == in {
		t.Fatal("a new remote key must replace the receive side only")
	}
	k.Suite = AES_CM_128_HMAC_SHA1_32
	if err := s.SetSRTP(k); err != nil {
		t.Fatal(err)
	}
	if s.tx.srtp == tx {
		t.Fatal("a new suite must replace the send side")
	}
	if err := s.SetSRTP(SRTPKeys{}); err != nil || s.tx.srtp != nil || s.rx.srtp != nil || s.srtcp.out != nil || s.srtcp.in != nil {
		t.Fatal("off leaves contexts behind")
	}
}
