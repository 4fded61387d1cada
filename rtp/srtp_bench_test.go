package rtp

import (
	"bytes"
	"testing"

	pionrtp "github.com/pion/rtp"
)

// BenchmarkSRTPSendReceive is one 20 ms PCMU packet through the whole SRTP send path
// (marshal, protect) and receive path (unprotect, receive rules, handler), without sockets.
// It must report 0 allocs/op.
func BenchmarkSRTPSendReceive(b *testing.B) {
	for _, suite := range []SRTPSuite{AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32} {
		b.Run(suite.String(), func(b *testing.B) {
			tx, err := newSession(Config{PayloadTypes: []uint8{0}})
			if err != nil {
				b.Fatal(err)
			}
			rx, err := newSession(Config{PayloadTypes: []uint8{0}})
			if err != nil {
				b.Fatal(err)
			}
			ka, kb := testKey(b), testKey(b)
			if err := tx.SetSRTP(SRTPKeys{Suite: suite, Local: ka, Remote: kb}); err != nil {
				b.Fatal(err)
			}
			if err := rx.SetSRTP(SRTPKeys{Suite: suite, Local: kb, Remote: ka}); err != nil {
				b.Fatal(err)
			}
			src := newPeer(b).addr()
			tx.SetRemote(src) // a destination so send marshals; no socket, so nothing is written
			payload := bytes.Repeat([]byte{0xd5}, 160)
			var delivered int
			handle := func(p *pionrtp.Packet) { delivered += len(p.Payload) }
			b.ReportAllocs()
			for b.Loop() {
				if err := tx.WriteAudio(0, false, payload, 160); err != nil {
					b.Fatal(err)
				}
				rx.processDatagram(tx.tx.sbuf[:12+160+suite.tagLen()], src, rx.epoch, handle)
			}
			if st := rx.Stats(); st.SRTPAuthFailures != 0 || delivered == 0 {
				b.Fatalf("delivered %d bytes, stats %+v", delivered, st)
			}
		})
	}
}

// BenchmarkSRTPPionReference measures pion/srtp v3.0.10 on the same packet, for comparison:
// it allocates per packet, which is why the RTP path has its own transform.
func BenchmarkSRTPPionReference(b *testing.B) {
	key := testKey(b)
	enc := pionContext(b, AES_CM_128_HMAC_SHA1_80, key)
	dec := pionContext(b, AES_CM_128_HMAC_SHA1_80, key)
	p := pionrtp.Packet{Header: pionrtp.Header{Version: 2, SSRC: 5}, Payload: make([]byte, 160)}
	plain := make([]byte, 1500)
	cbuf := make([]byte, 1600)
	dbuf := make([]byte, 1600)
	var h pionrtp.Header
	b.ReportAllocs()
	for b.Loop() {
		p.SequenceNumber++
		n, err := p.MarshalTo(plain)
		if err != nil {
			b.Fatal(err)
		}
		c, err := enc.EncryptRTP(cbuf[:0], plain[:n], &h)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dec.DecryptRTP(dbuf[:0], c, &h); err != nil {
			b.Fatal(err)
		}
	}
}
