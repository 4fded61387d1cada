package harness

import (
	"encoding/binary"
	"testing"
)

// SendDTMF sends one RFC 4733 event (code 0-9, 10 for *, 11 for #) on
// payload type 101, as a phone does: a start packet, one update and three
// end packets, all with the event's timestamp. The audio timestamp moves on
// by the event's duration.
func (c *RawCall) SendDTMF(t testing.TB, code byte) {
	t.Helper()
	ts := c.TS
	for i, d := range []uint16{160, 320, 480, 480, 480} {
		payload := make([]byte, 4)
		payload[0] = code
		payload[1] = 10 // volume -10 dBm0
		if i >= 2 {
			payload[1] |= 0x80 // E: end of event
		}
		binary.BigEndian.PutUint16(payload[2:], d)
		c.WriteRTP(t, 101, c.Seq, ts, c.SSRC, payload)
		c.Seq++
	}
	c.TS += 480
}
