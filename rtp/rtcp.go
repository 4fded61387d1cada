package rtp

import (
	"encoding/binary"
	"time"
)

// A compact RTCP encoder/decoder for what one voice leg needs: SR or RR with at most one
// report block, SDES CNAME, and the SR timing (LSR) of the far end. Written here rather than
// pulling in pion/rtcp: it is a few dozen lines and stays allocation-free.

const (
	rtcpSR   = 200
	rtcpRR   = 201
	rtcpSDES = 202

	sdesCNAME = 1

	// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
	ntpEpochOffset = 2208988800
)

// reportBlock is RFC 3550 6.4.1's reception report about one source.
type reportBlock struct {
	ssrc         uint32
	fractionLost uint8
	cumulative   int64 // clamped to 24 bits signed when written
	highestSeq   uint32
	jitter       uint32
	lsr          uint32
	dlsr         uint32
}

// senderInfo is the sender part of an SR.
type senderInfo struct {
	ntp     uint64
	rtpTS   uint32
	packets uint32
	octets  uint32
}

// ntpTime converts wallclock time to the 64-bit NTP format.
func ntpTime(t time.Time) uint64 {
	sec := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return sec<<32 | frac
}

// putHeader writes an RTCP common header; words is the packet length in 32-bit words.
func putHeader(b []byte, count uint8, pt uint8, words int) {
	b[0] = 2<<6 | count&0x1f
	b[1] = pt
	binary.BigEndian.PutUint16(b[2:], uint16(words-1))
}

func putReportBlock(b []byte, rb *reportBlock) {
	binary.BigEndian.PutUint32(b[0:], rb.ssrc)
	lost := min(max(rb.cumulative, -0x800000), 0x7fffff)
	binary.BigEndian.PutUint32(b[4:], uint32(rb.fractionLost)<<24|uint32(lost)&0xffffff)
	binary.BigEndian.PutUint32(b[8:], rb.highestSeq)
	binary.BigEndian.PutUint32(b[12:], rb.jitter)
	binary.BigEndian.PutUint32(b[16:], rb.lsr)
	binary.BigEndian.PutUint32(b[20:], rb.dlsr)
}

// putSR writes a sender report (with rb when not nil) and returns its length. b needs 52 bytes.
func putSR(b []byte, ssrc uint32, si senderInfo, rb *reportBlock) int {
	n := 28
	count := uint8(0)
	if rb != nil {
		putReportBlock(b[28:], rb)
		n += 24
		count = 1
	}
	putHeader(b, count, rtcpSR, n/4)
	binary.BigEndian.PutUint32(b[4:], ssrc)
	binary.BigEndian.PutUint64(b[8:], si.ntp)
	binary.BigEndian.PutUint32(b[16:], si.rtpTS)
	binary.BigEndian.PutUint32(b[20:], si.packets)
	binary.BigEndian.PutUint32(b[24:], si.octets)
	return n
}

// putRR writes a receiver report (with rb when not nil) and returns its length. b needs 32 bytes.
func putRR(b []byte, ssrc uint32, rb *reportBlock) int {
	n := 8
	count := uint8(0)
	if rb != nil {
		putReportBlock(b[8:], rb)
		n += 24
		count = 1
	}
	putHeader(b, count, rtcpRR, n/4)
	binary.BigEndian.PutUint32(b[4:], ssrc)
	return n
}

// putSDES writes an SDES packet with one CNAME chunk and returns its length. b needs
// 12+len(cname) bytes rounded up to a word; cname is at most 255 bytes.
func putSDES(b []byte, ssrc uint32, cname string) int {
	// header(4) ssrc(4) type(1) len(1) text, then at least one zero byte ending the item
	// list, padded to a 32-bit boundary.
	n := (8 + 2 + len(cname) + 1 + 3) &^ 3
	putHeader(b, 1, rtcpSDES, n/4)
	binary.BigEndian.PutUint32(b[4:], ssrc)
	b[8] = sdesCNAME
	b[9] = uint8(len(cname))
	copy(b[10:], cname)
	clear(b[10+len(cname) : n])
	return n
}

// senderReportInfo is what an incoming SR tells us.
type senderReportInfo struct {
	ssrc uint32
	lsr  uint32 // middle 32 bits of its NTP timestamp
}

// parseRTCP walks a compound packet leniently: it stops at the first malformed packet and
// returns what it found before. valid says the first packet looked like RTCP at all.
func parseRTCP(b []byte) (sr senderReportInfo, haveSR bool, valid bool) {
	for len(b) >= 4 {
		if b[0]>>6 != 2 {
			break
		}
		size := (int(binary.BigEndian.Uint16(b[2:])) + 1) * 4
		if size > len(b) {
			break
		}
		valid = true
		if b[1] == rtcpSR && size >= 28 {
			sr = senderReportInfo{
				ssrc: binary.BigEndian.Uint32(b[4:]),
				lsr:  uint32(binary.BigEndian.Uint64(b[8:]) >> 16),
			}
			haveSR = true
		}
		b = b[size:]
	}
	return sr, haveSR, valid
}
