package media

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/rtp"
)

// TestLegSRTP: two legs with crossed SDES keys carry a tone; a re-INVITE that re-keys one
// direction (Leg.Update) keeps the audio flowing.
func TestLegSRTP(t *testing.T) {
	pool := testPool(t, 33400)
	pts := []uint8{0, 101}
	a, err := OpenLeg(LegConfig{Pool: pool}, pts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenLeg(LegConfig{Pool: pool}, pts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); a.Close(); b.Close() })
	addr := func(l *Leg) netip.AddrPort { return netip.AddrPortFrom(loopback, uint16(l.LocalPort())) }
	kA, kB := NewSRTPKey(), NewSRTPKey()
	negA := negotiatedFor(addr(b), pcmu, 20*time.Millisecond)
	negA.SRTP = rtp.SRTPKeys{Suite: rtp.AES_CM_128_HMAC_SHA1_80, Local: kA, Remote: kB}
	negB := negotiatedFor(addr(a), pcmu, 20*time.Millisecond)
	negB.SRTP = rtp.SRTPKeys{Suite: rtp.AES_CM_128_HMAC_SHA1_80, Local: kB, Remote: kA}
	sa, sb := &sinkLog{}, &sinkLog{}
	if err := a.Start(ctx, negA, sa); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, negB, sb); err != nil {
		t.Fatal(err)
	}
	if err := a.PlayPCM(Tone(1000, 2*time.Second, 0.5)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "encrypted audio at the far end", func() bool {
		f, _, _ := sb.snapshot()
		return f >= 20
	})
	sb.mu.Lock()
	got := DominantFrequency(sb.audio, 300, 3400, 10)
	sb.mu.Unlock()
	if got < 975 || got > 1025 {
		t.Fatalf("far end hears %.0f Hz, want 1000", got)
	}
	if st := b.Stats().RTP; st.SRTPAuthFailures != 0 || st.PacketsDropped != 0 {
		t.Fatalf("b stats %+v", st)
	}

	// A re-INVITE re-keys a -> b. b takes the new key first: a's packets under the old key
	// now fail authentication there, which shows Update reached b's session...
	kA2 := NewSRTPKey()
	negA.SRTP.Local, negB.SRTP.Remote = kA2, kA2
	b.Update(negB)
	eventually(t, 3*time.Second, "old-key packets refused", func() bool { return b.Stats().RTP.SRTPAuthFailures >= 3 })
	// ...and once a sends under the new key, audio flows again.
	a.Update(negA)
	before, _, _ := sb.snapshot()
	eventually(t, 3*time.Second, "audio under the new key", func() bool {
		f, _, _ := sb.snapshot()
		return f >= before+20
	})
}
