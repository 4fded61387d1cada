package harness

import (
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"
)

// RecvPacket is one RTP packet the caller received, with its arrival time:
// the kernel's receive timestamp where the platform offers one (Linux), so
// that a test goroutine scheduled late does not shift it.
type RecvPacket struct {
	At      time.Time
	Seq     uint16
	TS      uint32
	PT      uint8
	Payload []byte
}

// RTPRecorder keeps every RTP packet arriving on a socket.
type RTPRecorder struct {
	mu      sync.Mutex
	packets []RecvPacket
	done    chan struct{}
}

// RecordRTP reads RTP from conn in a goroutine until conn is closed (the
// RawCall's socket is closed at test cleanup) and keeps every packet. The
// goroutine has ended when t's cleanups have run.
func RecordRTP(t testing.TB, conn *net.UDPConn) *RTPRecorder {
	t.Helper()
	kernelTime := enableRxTimestamps(conn)
	r := &RTPRecorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 2048)
		oob := make([]byte, 128)
		for {
			_ = conn.SetReadDeadline(time.Time{})
			n, oobn, _, _, err := conn.ReadMsgUDP(buf, oob)
			now := time.Now()
			if err != nil {
				return
			}
			if kernelTime {
				if at, ok := rxTimestamp(oob[:oobn]); ok {
					now = at
				}
			}
			if n < 12 || buf[0]>>6 != 2 {
				continue
			}
			p := RecvPacket{At: now, PT: buf[1] & 0x7F, Seq: binary.BigEndian.Uint16(buf[2:]),
				TS: binary.BigEndian.Uint32(buf[4:]), Payload: append([]byte(nil), buf[12:n]...)}
			r.mu.Lock()
			r.packets = append(r.packets, p)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-r.done
	})
	return r
}

// Packets returns the packets received so far, in arrival order.
func (r *RTPRecorder) Packets() []RecvPacket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RecvPacket(nil), r.packets...)
}

// WaitFor polls until match holds for the packets so far, or fails the test
// after timeout.
func (r *RTPRecorder) WaitFor(t testing.TB, timeout time.Duration, what string, match func([]RecvPacket) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !match(r.Packets()) {
		if time.Now().After(deadline) {
			t.Fatalf("harness: RTP: %s not seen within %v (%d packets)", what, timeout, len(r.Packets()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
