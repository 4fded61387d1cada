package rtp

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestTwoSessionsTalk(t *testing.T) {
	baseline := runtime.NumGoroutine()
	pool, _ := testPool(t, 2, 0)
	a := openSession(t, Config{Pool: pool, Latch: true})
	b := openSession(t, Config{Pool: pool, Latch: true})
	a.SetRemote(localAddr(b))
	b.SetRemote(localAddr(a))

	var gotA, gotB received
	doneA := running(t, a, gotA.handle)
	doneB := running(t, b, gotB.handle)

	const n = 50
	payload := bytes.Repeat([]byte{0xd5}, 160)
	tsA, tsB := a.Timestamp(), b.Timestamp()
	for i := range n {
		if err := a.WriteAudio(0, i == 0, payload, 160); err != nil {
			t.Fatal(err)
		}
		if err := b.WriteAudio(8, i == 0, payload, 160); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := a.Timestamp(), tsA+n*160; got != want {
		t.Fatalf("timestamp %d, want %d", got, want)
	}
	waitFor(t, 2*time.Second, "50 packets each way", func() bool {
		return a.Stats().PacketsReceived == n && b.Stats().PacketsReceived == n
	})

	pkts := gotB.snapshot()
	for i, p := range pkts {
		if p.seq != pkts[0].seq+uint16(i) || p.ts != tsA+uint32(i)*160 || p.pt != 0 || p.marker != (i == 0) || p.ssrc != a.SSRC() {
			t.Fatalf("packet %d: %+v", i, p)
		}
		if !bytes.Equal(p.payload, payload) {
			t.Fatalf("packet %d: payload differs", i)
		}
	}
	if p := gotA.snapshot()[0]; p.ts != tsB || p.pt != 8 {
		t.Fatalf("a received %+v", p)
	}
	for name, s := range map[string]*Session{"a": a, "b": b} {
		st := s.Stats()
		want := Stats{PacketsSent: n, OctetsSent: n * 160, PacketsReceived: n, OctetsReceived: n * 160, LastSSRC: st.LastSSRC, JitterMs: st.JitterMs}
		st.RTCPSent, st.RTCPReceived = 0, 0
		if st != want {
			t.Errorf("%s stats %+v, want %+v", name, st, want)
		}
	}

	a.Close()
	b.Close()
	if err := waitErr(t, doneA, 2*time.Second); err != nil {
		t.Fatalf("ReadLoop after Close: %v", err)
	}
	if err := waitErr(t, doneB, 2*time.Second); err != nil {
		t.Fatalf("ReadLoop after Close: %v", err)
	}
	if pool.InUse() != 0 {
		t.Fatalf("pool InUse = %d after Close", pool.InUse())
	}
	waitFor(t, 2*time.Second, "goroutines back to baseline", func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}

func TestReceiveRules(t *testing.T) {
	const ssrc, other = 0x1111, 0x2222
	p := func(seq uint16) pkt { return pkt{seq: seq, ts: uint32(seq) * 160, ssrc: ssrc} }
	tests := []struct {
		name    string
		in      []pkt
		raw     [][]byte // sent after in
		want    []uint16
		lost    uint64
		dropped uint64
		dups    uint64
		reord   uint64
		changes uint64
	}{
		{name: "in order", in: []pkt{p(1), p(2), p(3)}, want: []uint16{1, 2, 3}},
		{name: "swap recovered", in: []pkt{p(1), p(3), p(2), p(4)}, want: []uint16{1, 2, 3, 4}, reord: 1},
		{name: "single loss", in: []pkt{p(1), p(3), p(4)}, want: []uint16{1, 3, 4}, lost: 1},
		{name: "burst loss", in: []pkt{p(1), p(5), p(6)}, want: []uint16{1, 5, 6}, lost: 3},
		{name: "duplicate", in: []pkt{p(1), p(2), p(2), p(3)}, want: []uint16{1, 2, 3}, dups: 1},
		{name: "duplicate of held", in: []pkt{p(1), p(3), p(3), p(4)}, want: []uint16{1, 3, 4}, dups: 1, lost: 1},
		{name: "too late", in: []pkt{p(1), p(2), p(4), p(5), p(3)}, want: []uint16{1, 2, 4, 5}, reord: 1, dropped: 1},
		{name: "late then duplicate", in: []pkt{p(1), p(4), p(5), p(2), p(2)}, want: []uint16{1, 4, 5}, reord: 1, dropped: 1, dups: 1, lost: 1},
		{name: "wrap", in: []pkt{p(65534), p(65535), p(0), p(1)}, want: []uint16{65534, 65535, 0, 1}},
		{name: "swap across wrap", in: []pkt{p(65534), p(0), p(65535), p(1)}, want: []uint16{65534, 65535, 0, 1}, reord: 1},
		{name: "ssrc change", in: []pkt{p(1), p(2), {seq: 500, ssrc: other}, {seq: 501, ssrc: other}}, want: []uint16{1, 2, 500, 501}, changes: 1},
		{name: "ssrc change flushes held", in: []pkt{p(1), p(3), {seq: 500, ssrc: other}}, want: []uint16{1, 3, 500}, changes: 1, lost: 1},
		{name: "wrong payload type", in: []pkt{p(1), {seq: 2, ssrc: ssrc, pt: 9}, p(3), p(4)}, want: []uint16{1, 3, 4}, dropped: 1, lost: 1},
		{name: "oversize", in: []pkt{p(1), {seq: 2, ssrc: ssrc, payload: make([]byte, 1500)}, p(3)}, want: []uint16{1, 3}, dropped: 1, lost: 1},
		{name: "sender restart", in: []pkt{p(1), p(2), p(20000), p(20001), p(20002)}, want: []uint16{1, 2, 20001, 20002}, dropped: 1},
		{name: "single wild jump", in: []pkt{p(1), p(2), p(20000), p(3)}, want: []uint16{1, 2, 3}, dropped: 1},
		{name: "telephone event accepted", in: []pkt{p(1), {seq: 2, ssrc: ssrc, pt: 101, payload: []byte{1, 10, 0, 160}}}, want: []uint16{1, 2}},
		{
			name: "garbage", in: []pkt{p(1), p(2)},
			raw:     [][]byte{{0x40, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0x11, 0x11}, {0x80, 0}, {0x8f, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0x11, 0x11}},
			want:    []uint16{1, 2},
			dropped: 3,
		},
	}
	pool, _ := testPool(t, 2, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSession(t, Config{Pool: pool, PayloadTypes: []uint8{0, 101}})
			var got received
			running(t, s, got.handle)
			far := newPeer(t)
			for _, in := range tt.in {
				far.send(localAddr(s), in.bytes())
			}
			for _, raw := range tt.raw {
				far.send(localAddr(s), raw)
			}
			// A sentinel right after the highest sequence of the last source releases anything
			// held and tells us when everything before it has been processed.
			last := tt.in[len(tt.in)-1]
			top := last.seq
			for _, in := range tt.in {
				if in.ssrc == last.ssrc && int16(in.seq-top) > 0 && int16(in.seq-top) < 100 {
					top = in.seq
				}
			}
			sentinel := pkt{seq: top + 1, ssrc: last.ssrc, payload: []byte("end")}
			far.send(localAddr(s), sentinel.bytes())
			waitFor(t, 2*time.Second, "sentinel", func() bool {
				got := got.snapshot()
				return len(got) > 0 && string(got[len(got)-1].payload) == "end"
			})

			want := append(slices.Clone(tt.want), sentinel.seq)
			if seqs := got.seqs(); !slices.Equal(seqs, want) {
				t.Fatalf("delivered %v, want %v", seqs, want)
			}
			st := s.Stats()
			if st.PacketsLost != tt.lost || st.PacketsDropped != tt.dropped || st.Duplicates != tt.dups ||
				st.Reordered != tt.reord || st.SSRCChanges != tt.changes || st.PacketsReceived != uint64(len(want)) {
				t.Fatalf("stats %+v\nwant lost %d dropped %d dups %d reordered %d ssrc changes %d received %d",
					st, tt.lost, tt.dropped, tt.dups, tt.reord, tt.changes, len(want))
			}
			if st.LastSSRC != last.ssrc {
				t.Fatalf("LastSSRC %x, want %x", st.LastSSRC, last.ssrc)
			}
		})
	}
}

func TestLatching(t *testing.T) {
	sdp, nat := newPeer(t), newPeer(t)
	s := openSession(t, Config{Remote: sdp.addr(), Latch: true})
	var got received
	running(t, s, got.handle)

	// Before latching we send where SDP says.
	if err := s.WriteAudio(0, false, []byte{1}, 160); err != nil {
		t.Fatal(err)
	}
	sdp.recv(time.Second)

	// A payload type we did not negotiate is not valid media: no latching on it.
	nat.send(localAddr(s), pkt{seq: 1, ssrc: 1, pt: 9}.bytes())
	waitFor(t, time.Second, "wrong payload type dropped", func() bool { return s.Stats().PacketsDropped == 1 })
	if s.Remote() != sdp.addr() {
		t.Fatalf("latched on a dropped packet: remote %v", s.Remote())
	}

	// The far end's media really comes from behind a NAT: latch onto it.
	nat.send(localAddr(s), pkt{seq: 1, ssrc: 1}.bytes())
	waitFor(t, time.Second, "first packet", func() bool { return len(got.snapshot()) == 1 })
	if s.Remote() != nat.addr() {
		t.Fatalf("remote %v, want latched %v", s.Remote(), nat.addr())
	}
	if err := s.WriteAudio(0, false, []byte{2}, 160); err != nil {
		t.Fatal(err)
	}
	if b := nat.recv(time.Second); b[len(b)-1] != 2 {
		t.Fatalf("latched peer got %x", b)
	}

	// Another source is ignored (and counted) while latched.
	sdp.send(localAddr(s), pkt{seq: 2, ssrc: 1}.bytes())
	waitFor(t, time.Second, "drop from unlatched source", func() bool { return s.Stats().PacketsDropped == 2 })

	// A re-INVITE moves the far end: latch again on the next valid packet.
	s.SetRemote(sdp.addr())
	if s.Remote() != sdp.addr() {
		t.Fatalf("remote %v after SetRemote", s.Remote())
	}
	sdp.send(localAddr(s), pkt{seq: 2, ssrc: 1}.bytes()) // seq 2 from sdp was dropped before: no gap
	waitFor(t, time.Second, "packet from new remote", func() bool { return len(got.snapshot()) == 2 })
	nat.send(localAddr(s), pkt{seq: 3, ssrc: 1}.bytes())
	waitFor(t, time.Second, "old source dropped", func() bool { return s.Stats().PacketsDropped == 3 })
	if s.Remote() != sdp.addr() {
		t.Fatalf("remote %v, want %v", s.Remote(), sdp.addr())
	}
}

func TestWithoutLatchAnySourceIsAccepted(t *testing.T) {
	sdp, other := newPeer(t), newPeer(t)
	s := openSession(t, Config{Remote: sdp.addr()})
	var got received
	running(t, s, got.handle)
	other.send(localAddr(s), pkt{seq: 1, ssrc: 1}.bytes())
	sdp.send(localAddr(s), pkt{seq: 2, ssrc: 1}.bytes())
	waitFor(t, time.Second, "both packets", func() bool { return len(got.snapshot()) == 2 })
	if err := s.WriteAudio(0, false, []byte{7}, 160); err != nil {
		t.Fatal(err)
	}
	sdp.recv(time.Second)
	if _, ok := other.tryRecv(50 * time.Millisecond); ok {
		t.Fatal("sent to the packet source instead of the configured remote")
	}
}

func TestSetRemote(t *testing.T) {
	first, second := newPeer(t), newPeer(t)
	s := openSession(t, Config{})
	// Late offer: no remote, nothing is sent, but time moves on.
	ts := s.Timestamp()
	if err := s.WriteAudio(0, false, []byte{1}, 160); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.PacketsSent != 0 || s.Timestamp() != ts+160 {
		t.Fatalf("sent %d, timestamp %d; want 0 and %d", st.PacketsSent, s.Timestamp(), ts+160)
	}

	steps := []struct {
		remote netip.AddrPort
		to     *peer
	}{
		{first.addr(), first},
		{second.addr(), second},
		{netip.MustParseAddrPort("0.0.0.0:4000"), nil}, // c=0.0.0.0 hold
		{netip.AddrPort{}, nil},
		{first.addr(), first},
	}
	for i, st := range steps {
		s.SetRemote(st.remote)
		before := s.Stats().PacketsSent
		if err := s.WriteAudio(0, false, []byte{byte(i)}, 160); err != nil {
			t.Fatal(err)
		}
		if st.to == nil {
			if s.Remote().IsValid() || s.Stats().PacketsSent != before {
				t.Fatalf("step %d: sent while on hold (remote %v)", i, s.Remote())
			}
			continue
		}
		if b := st.to.recv(time.Second); b[len(b)-1] != byte(i) {
			t.Fatalf("step %d: got %x", i, b)
		}
	}
}

func TestWriteEventKeepsAudioTimestamp(t *testing.T) {
	far := newPeer(t)
	s := openSession(t, Config{Remote: far.addr()})
	start := s.Timestamp()
	es := NewEventSender(5, 60*time.Millisecond, 20*time.Millisecond, 8000, 10)
	buf := make([]byte, 4)
	for {
		n, marker, done := es.Next(buf)
		if err := s.WriteEvent(101, marker, start, buf[:n]); err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
	}
	if s.Timestamp() != start {
		t.Fatalf("WriteEvent moved the audio timestamp")
	}
	var prevSeq uint16
	for i := range 5 {
		var p rtp.Packet
		if err := p.Unmarshal(far.recv(time.Second)); err != nil {
			t.Fatal(err)
		}
		if p.Timestamp != start || p.PayloadType != 101 || p.Marker != (i == 0) || (i > 0 && p.SequenceNumber != prevSeq+1) {
			t.Fatalf("event packet %d: %v", i, p.Header)
		}
		prevSeq = p.SequenceNumber
	}
}

func TestInactivity(t *testing.T) {
	s := openSession(t, Config{InactivityTimeout: 100 * time.Millisecond})
	done := running(t, s, nil)
	if err := waitErr(t, done, 3*time.Second); !errors.Is(err, ErrInactive) {
		t.Fatalf("ReadLoop returned %v, want ErrInactive", err)
	}
}

func TestInactivityResetByPackets(t *testing.T) {
	far := newPeer(t)
	s := openSession(t, Config{InactivityTimeout: 150 * time.Millisecond})
	done := running(t, s, nil)
	// Keep the stream alive for several timeouts, then stop. Comfort noise (PT 13, not
	// negotiated) is dropped but still proves the peer alive.
	for i := range 20 {
		far.send(localAddr(s), pkt{seq: uint16(i), ssrc: 1, pt: uint8(13 * (i % 2))}.bytes())
		time.Sleep(20 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("ReadLoop ended while packets flowed: %v", err)
		default:
		}
	}
	if err := waitErr(t, done, 3*time.Second); !errors.Is(err, ErrInactive) {
		t.Fatalf("ReadLoop returned %v, want ErrInactive", err)
	}
}

func TestHoldSuspendsInactivity(t *testing.T) {
	s := openSession(t, Config{InactivityTimeout: 50 * time.Millisecond})
	s.SetHold(true)
	done := running(t, s, nil)
	select {
	case err := <-done:
		t.Fatalf("ReadLoop ended on hold: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	s.SetHold(false)
	if err := waitErr(t, done, 3*time.Second); !errors.Is(err, ErrInactive) {
		t.Fatalf("ReadLoop returned %v, want ErrInactive", err)
	}
}

func TestReadLoopEndsWithContext(t *testing.T) {
	baseline := runtime.NumGoroutine()
	s := openSession(t, Config{RTCPInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ReadLoop(ctx, nil) }()
	cancel()
	if err := waitErr(t, done, 2*time.Second); err != nil {
		t.Fatalf("ReadLoop returned %v after the context ended, want nil", err)
	}
	if err := s.ReadLoop(context.Background(), nil); err == nil {
		t.Fatal("second ReadLoop should fail")
	}
	s.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	waitFor(t, 2*time.Second, "goroutines back to baseline", func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}

func TestOpenRejectsBadConfig(t *testing.T) {
	pool, _ := testPool(t, 1, 0)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no pool", Config{PayloadTypes: []uint8{0}}},
		{"no payload types", Config{Pool: pool}},
		{"payload type above 127", Config{Pool: pool, PayloadTypes: []uint8{128}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Open(tt.cfg); err == nil {
				s.Close()
				t.Fatal("want error")
			}
		})
	}
	if pool.InUse() != 0 {
		t.Fatal("failed Open leaked a port pair")
	}
}
