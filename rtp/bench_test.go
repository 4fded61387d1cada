package rtp

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func BenchmarkWriteAudio(b *testing.B) {
	sink := newPeer(b) // never read: the kernel drops what does not fit
	s := openSession(b, Config{Remote: sink.addr()})
	payload := make([]byte, 160)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.WriteAudio(0, false, payload, 160); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadPath measures one datagram through the receive rules to the handler, without
// the socket.
func BenchmarkReadPath(b *testing.B) {
	s, err := newSession(Config{PayloadTypes: []uint8{0, 101}, Latch: true})
	if err != nil {
		b.Fatal(err)
	}
	datagram := pkt{seq: 1, ts: 160, ssrc: 42, payload: make([]byte, 160)}.bytes()
	src := newPeer(b).addr()
	var delivered int
	handle := func(p *rtp.Packet) { delivered += len(p.Payload) }
	seq := uint16(1)
	ts := uint32(160)
	now := time.Now() // advanced by hand: time.Now is slow on some VMs and is not what we measure
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		seq++
		ts += 160
		binary.BigEndian.PutUint16(datagram[2:], seq)
		binary.BigEndian.PutUint32(datagram[4:], ts)
		now = now.Add(20 * time.Millisecond)
		s.processDatagram(datagram, src, now, handle)
	}
	if delivered == 0 {
		b.Fatal("nothing delivered")
	}
}

// BenchmarkReadLoopback is the full path: socket send, ReadLoop, handler.
func BenchmarkReadLoopback(b *testing.B) {
	s := openSession(b, Config{})
	got := make(chan struct{}, 1024)
	running(b, s, func(*rtp.Packet) { got <- struct{}{} })
	far := newPeer(b)
	datagram := pkt{seq: 1, ssrc: 42, payload: make([]byte, 160)}.bytes()
	seq := uint16(1)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		seq++
		binary.BigEndian.PutUint16(datagram[2:], seq)
		far.send(localAddr(s), datagram)
		<-got
	}
}
