package dialplan

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
)

func TestEchoRoundTripKeepsTheTone(t *testing.T) {
	gw := startGateway(t, map[string]agent.Agent{"echo": agent.Echo{}}, "echo", 0)
	c := newCaller(t)
	for _, codec := range []string{"PCMU", "PCMA"} {
		t.Run(codec, func(t *testing.T) {
			call := c.dial(t, gw.addr, []string{codec})
			if err := call.leg.PlayPCM(media.Tone(1000, 600*time.Millisecond, 0.5)); err != nil {
				t.Fatal(err)
			}
			eventually(t, 3*time.Second, "echoed audio", func() bool { return len(call.rec.heard()) >= 4000 })
			heard := call.rec.heard()
			if f := media.DominantFrequency(heard[800:4000], 300, 3400, 10); f < 975 || f > 1025 {
				t.Fatalf("echo dominant frequency = %.0f Hz, want 1000 Hz", f)
			}
			call.hangup()
			if lost := call.leg.Stats().RTP.PacketsLost; lost != 0 {
				t.Errorf("lost %d packets on loopback", lost)
			}
		})
	}
}

func TestManyCallsReleaseEverything(t *testing.T) {
	gw := startGateway(t, map[string]agent.Agent{"echo": agent.Echo{}}, "echo", 0)
	c := newCaller(t)
	// One call first, so lazily started stack goroutines count as baseline.
	c.dial(t, gw.addr, []string{"PCMU"}).hangup()
	eventually(t, 5*time.Second, "first call released", func() bool { return gw.exec.Active() == 0 })
	baseGoroutines := runtime.NumGoroutine()

	const calls, rounds = 20, 3
	for range rounds {
		var wg sync.WaitGroup
		active := make([]*activeCall, calls)
		for i := range calls {
			wg.Add(1)
			go func() { defer wg.Done(); active[i] = c.dial(t, gw.addr, []string{"PCMU"}) }()
		}
		wg.Wait()
		eventually(t, 5*time.Second, "all calls up", func() bool { return gw.exec.Active() == calls })
		if got := gw.pool.InUse(); got != calls {
			t.Fatalf("gateway ports in use = %d with %d calls up", got, calls)
		}
		time.Sleep(100 * time.Millisecond) // let media flow
		for _, a := range active {
			wg.Add(1)
			go func() { defer wg.Done(); a.hangup() }()
		}
		wg.Wait()
	}
	eventually(t, 5*time.Second, "calls released", func() bool { return gw.exec.Active() == 0 && gw.srv.ActiveCalls() == 0 })
	if got := gw.pool.InUse(); got != 0 {
		t.Fatalf("gateway ports in use after hang-up = %d", got)
	}
	if got := c.pool.InUse(); got != 0 {
		t.Fatalf("caller ports in use after hang-up = %d", got)
	}
	// sipgo keeps transaction timers for a while after each call; what must
	// not linger are per-call goroutines (reader, pacer, RTCP, agent).
	eventually(t, 40*time.Second, "goroutines back to baseline", func() bool {
		return runtime.NumGoroutine() <= baseGoroutines+2
	})
}

func TestSilentCallerIsHungUpAfterInactivity(t *testing.T) {
	gw := startGateway(t, map[string]agent.Agent{"echo": agent.Echo{}}, "echo", 300*time.Millisecond)
	call := newCaller(t).dial(t, gw.addr, []string{"PCMU"})
	eventually(t, time.Second, "media flowing", func() bool { return call.leg.Stats().RTP.PacketsReceived > 3 })
	call.stop() // the caller's pacer stops: no more RTP reaches the gateway
	select {
	case <-call.sip.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("gateway did not hang up a call without RTP")
	}
	eventually(t, 2*time.Second, "call released", func() bool { return gw.exec.Active() == 0 && gw.pool.InUse() == 0 })
}

func TestPromptAgentPlaysThenHangsUp(t *testing.T) {
	prompt := agent.Prompt{Samples: media.Tone(700, 300*time.Millisecond, 0.4)}
	gw := startGateway(t, map[string]agent.Agent{"hello": prompt}, "hello", 0)
	call := newCaller(t).dial(t, gw.addr, []string{"PCMA"})
	select {
	case <-call.sip.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("prompt agent did not hang up after its prompt")
	}
	heard := call.rec.heard()
	if len(heard) < 2000 {
		t.Fatalf("heard %d samples of a 2400-sample prompt", len(heard))
	}
	if f := media.DominantFrequency(heard, 300, 3400, 10); f < 680 || f > 720 {
		t.Fatalf("prompt heard at %.0f Hz, want 700", f)
	}
}
