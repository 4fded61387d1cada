package main

import (
	"encoding/binary"
	"time"
)

// A bench frame is a 20 ms PCMU payload that names itself: 4 magic bytes,
// the call's index and the frame's number. Every byte is one that survives
// the gateway's µ-law → linear → µ-law round trip unchanged (not 0x7F,
// whose "negative zero" comes back as 0xFF), so the echo that comes back
// through the bot names the frame it answers and each sample is matched
// exactly rather than by arrival order.
const (
	benchPayload   = 160 // 20 ms of 8 kHz µ-law
	benchHeader    = 12  // RTP header without CSRCs or extension
	benchFrameTime = 20 * time.Millisecond
	benchMaxFrames = 1 << 18 // 18-bit frame numbers: 87 minutes per call
	benchMaxIndex  = 1 << 18 // 18-bit call indexes
)

var benchMagic = [4]byte{0x42, 0x45, 0x4E, 0x43}

// fillBenchPayload writes the constant part of a frame (magic and filler);
// markBenchFrame then stamps call and frame numbers per packet.
func fillBenchPayload(p []byte) {
	copy(p, benchMagic[:])
	for i := 10; i < len(p); i++ {
		p[i] = 0x10 + byte(i%64)
	}
}

// markBenchFrame stamps call index and frame number, six bits per byte with
// the top bit set: 0x80..0xBF, all round-trip safe.
func markBenchFrame(p []byte, call, frame uint32) {
	p[4], p[5], p[6] = 0x80|byte(call>>12&0x3F), 0x80|byte(call>>6&0x3F), 0x80|byte(call&0x3F)
	p[7], p[8], p[9] = 0x80|byte(frame>>12&0x3F), 0x80|byte(frame>>6&0x3F), 0x80|byte(frame&0x3F)
}

// parseBenchFrame reads call index and frame number from a payload prefix
// (at least 10 bytes); ok is false for anything that is not a bench frame
// (comfort silence, a stranger's packet).
func parseBenchFrame(p []byte) (call, frame uint32, ok bool) {
	if len(p) < 10 || [4]byte(p[:4]) != benchMagic {
		return 0, 0, false
	}
	for _, c := range p[4:10] {
		if c&0xC0 != 0x80 {
			return 0, 0, false
		}
	}
	call = uint32(p[4]&0x3F)<<12 | uint32(p[5]&0x3F)<<6 | uint32(p[6]&0x3F)
	frame = uint32(p[7]&0x3F)<<12 | uint32(p[8]&0x3F)<<6 | uint32(p[9]&0x3F)
	return call, frame, true
}

// writeRTPHeader fills a 12-byte RTP header for PCMU.
func writeRTPHeader(h []byte, marker bool, seq uint16, ts, ssrc uint32) {
	h[0] = 0x80 // V=2
	h[1] = 0    // PT 0 (PCMU)
	if marker {
		h[1] |= 0x80
	}
	binary.BigEndian.PutUint16(h[2:], seq)
	binary.BigEndian.PutUint32(h[4:], ts)
	binary.BigEndian.PutUint32(h[8:], ssrc)
}

// rtpPayload returns the payload of an RTP packet, skipping CSRCs and a
// header extension; ok is false for anything that is not RTP version 2.
func rtpPayload(pkt []byte) (pt uint8, payload []byte, ok bool) {
	if len(pkt) < benchHeader || pkt[0]>>6 != 2 {
		return 0, nil, false
	}
	off := benchHeader + 4*int(pkt[0]&0x0F)
	if pkt[0]&0x10 != 0 {
		if len(pkt) < off+4 {
			return 0, nil, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(pkt[off+2:]))
	}
	if len(pkt) < off {
		return 0, nil, false
	}
	end := len(pkt)
	if pkt[0]&0x20 != 0 && end > off { // padding
		end -= int(pkt[end-1])
		if end < off {
			return 0, nil, false
		}
	}
	return pkt[1] & 0x7F, pkt[off:end], true
}
