package dialplan

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/transfer"
)

type heard struct {
	digits []rune
	audio  int
}

func (h *heard) OnAudio([]int16)                { h.audio++ }
func (h *heard) OnDTMF(d rune, _ time.Duration) { h.digits = append(h.digits, d) }
func (h *heard) OnMark(string)                  {}
func (h *heard) OnEvent(agent.Event)            {}

func TestHumanSinkAcceptDigit(t *testing.T) {
	h := &heard{}
	s := &humanSink{Listener: h, accept: '1', decide: make(chan bool, 1)}
	s.OnDTMF('5', 0)
	s.OnAudio(make([]int16, 160))
	select {
	case <-s.decide:
		t.Fatal("a digit other than the accept digit decided the transfer")
	default:
	}
	s.OnDTMF('1', 0)
	select {
	case bridge := <-s.decide:
		if !bridge {
			t.Errorf("accept digit decided cancel")
		}
	default:
		t.Fatal("the accept digit did not bridge")
	}
	if string(h.digits) != "5" || h.audio != 1 {
		t.Errorf("agent heard digits %q and %d frames, want 5 and 1 (the accept digit is the gateway's)", string(h.digits), h.audio)
	}
	// Once bridged, the human no longer reaches the agent.
	s.off.Store(true)
	s.OnDTMF('7', 0)
	s.OnAudio(make([]int16, 160))
	if string(h.digits) != "5" || h.audio != 1 {
		t.Errorf("agent heard the human after the bridge: %q, %d frames", string(h.digits), h.audio)
	}
}

func TestCompleteTransferNeedsOne(t *testing.T) {
	rt := &callRuntime{}
	if err := rt.completeTransfer(true); err == nil {
		t.Error("bridge without a transfer in progress succeeded")
	}
	if !rt.xf.begin() {
		t.Fatal("begin refused on an idle call")
	}
	if rt.xf.begin() {
		t.Error("a second transfer began while one is in progress")
	}
	if err := rt.completeTransfer(false); err != nil {
		t.Errorf("cancel during a transfer: %v", err)
	}
	if err := rt.completeTransfer(true); err == nil {
		t.Error("a transfer was decided twice")
	}
	rt.xf.done()
	if !rt.xf.begin() {
		t.Error("begin refused after the last transfer ended")
	}
}

// updates records what the executor tells its observer.
type updates struct {
	mu    sync.Mutex
	snaps []CallSnapshot
}

func (u *updates) CallStarted(CallSnapshot)                  {}
func (u *updates) AgentStarted(string, time.Duration, error) {}
func (u *updates) AgentFailed(string, error)                 {}
func (u *updates) CallEnded(CallSnapshot, CDR)               {}
func (u *updates) CallUpdated(c CallSnapshot) {
	u.mu.Lock()
	u.snaps = append(u.snaps, c)
	u.mu.Unlock()
}

func (u *updates) last(t *testing.T) CallSnapshot {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.snaps) == 0 {
		t.Fatal("no CallUpdated")
	}
	return u.snaps[len(u.snaps)-1]
}

func (u *updates) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.snaps)
}

// TestTransferPublishesLegsAndState: every step of a warm transfer reaches
// the observer (the fleet registry) while it runs, with the call's state,
// the summary and the second leg; a failed attempt gives the caller back
// its state and drops the leg; a bridged one keeps it; nothing is
// published once the call is ending.
func TestTransferPublishesLegsAndState(t *testing.T) {
	const target = "sip:ann@127.0.0.1:5099"
	caller := LegSnapshot{CallID: "c1", Role: LegCaller}
	leg := func(id, state string) LegSnapshot {
		return LegSnapshot{CallID: id, Role: LegTransfer, Target: target, State: state}
	}
	steps := []struct {
		name      string
		do        func(rt *callRuntime)
		state     CallState
		transfer  string
		legs      []LegSnapshot
		published bool
	}{
		{"dialing", func(rt *callRuntime) {
			rt.transferStep("warm", target, LegDialing, &LegSnapshot{Role: LegTransfer, Target: target, State: LegDialing})
		}, StateTransferring, "warm " + target + ": dialing", []LegSnapshot{leg("", LegDialing)}, true},
		{"ringing", func(rt *callRuntime) {
			rt.progress("warm", target, true, nil)(transfer.Status{State: transfer.StateRinging, Code: 180})
		}, StateTransferring, "warm " + target + ": ringing", []LegSnapshot{leg("", LegRinging)}, true},
		{"trying is not a step", func(rt *callRuntime) {
			rt.progress("warm", target, true, nil)(transfer.Status{State: transfer.StateTrying, Code: 100})
		}, StateTransferring, "warm " + target + ": ringing", []LegSnapshot{leg("", LegRinging)}, false},
		{"briefing", func(rt *callRuntime) {
			rt.transferStep("warm", target, LegBriefing, &LegSnapshot{CallID: "h1", Role: LegTransfer, Target: target, State: LegBriefing})
		}, StateTransferring, "warm " + target + ": briefing", []LegSnapshot{leg("h1", LegBriefing)}, true},
		{"cancelled", func(rt *callRuntime) {
			rt.logTransfer("warm", target, "cancelled", 0, time.Now())
		}, StateTransferring, "warm " + target + ": cancelled", []LegSnapshot{leg("h1", LegBriefing)}, true},
		{"over: back to answered, leg dropped", func(rt *callRuntime) {
			rt.transferOver()
		}, StateAnswered, "warm " + target + ": cancelled", nil, true},
		{"second attempt answered", func(rt *callRuntime) {
			rt.xf.begin()
			rt.transferStep("warm", target, LegBriefing, &LegSnapshot{CallID: "h2", Role: LegTransfer, Target: target, State: LegBriefing})
		}, StateTransferring, "warm " + target + ": briefing", []LegSnapshot{leg("h2", LegBriefing)}, true},
		{"bridged", func(rt *callRuntime) {
			rt.publish(func(s *CallSnapshot, h *LegSnapshot) *LegSnapshot {
				s.State, h.State = StateBridged, LegBridged
				return h
			})
		}, StateBridged, "warm " + target + ": briefing", []LegSnapshot{leg("h2", LegBridged)}, true},
		{"over: a bridged call keeps its leg", func(rt *callRuntime) {
			rt.transferOver()
		}, StateBridged, "warm " + target + ": briefing", []LegSnapshot{leg("h2", LegBridged)}, true},
		{"the call ends", func(rt *callRuntime) {
			rt.live.update(func(s *CallSnapshot) { s.State = StateEnding })
		}, StateEnding, "warm " + target + ": briefing", []LegSnapshot{leg("h2", LegBridged)}, false},
		{"a late step after the end is not published", func(rt *callRuntime) {
			rt.transferOver()
			rt.logTransfer("warm", target, "late", 0, time.Now())
		}, StateEnding, "warm " + target + ": briefing", []LegSnapshot{leg("h2", LegBridged)}, false},
	}
	obs := &updates{}
	rt := &callRuntime{
		e:    &Executor{env: Env{Observer: obs}},
		rec:  &record{},
		live: &liveCall{snap: CallSnapshot{ID: "c1", State: StateAnswered}},
	}
	rt.xf.begin()
	for _, st := range steps {
		before := obs.count()
		st.do(rt)
		if published := obs.count() > before; published != st.published {
			t.Fatalf("%s: published %v, want %v", st.name, published, st.published)
		}
		got := rt.live.snapshot()
		if st.published {
			if pub := obs.last(t); !reflect.DeepEqual(pub, got) {
				t.Fatalf("%s: published %+v, but the call is %+v", st.name, pub, got)
			}
		}
		c := caller
		c.State = string(st.state)
		if st.state == StateTransferring {
			c.State = LegOnHold
		}
		want := append([]LegSnapshot{c}, st.legs...)
		if got.State != st.state || got.Transfer != st.transfer || !reflect.DeepEqual(got.Legs, want) {
			t.Fatalf("%s: call %s %q legs %+v; want %s %q legs %+v", st.name, got.State, got.Transfer, got.Legs, st.state, st.transfer, want)
		}
	}
	// Snapshots own their legs.
	s := rt.live.snapshot()
	s.Legs[1].State = "scribbled"
	if rt.live.snapshot().Legs[1].State != LegBridged {
		t.Error("a snapshot's legs alias the call's")
	}
}

// TestResolveRefusals: malformed requests wrap ErrBadTransfer, targets off
// the allowlist transfer.ErrNotAllowed, so the admin API and other
// instances can tell 400 from 403.
func TestResolveRefusals(t *testing.T) {
	allow, err := transfer.ParseAllowlist([]string{"@127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := transfer.New(transfer.Config{Allow: allow, Dialer: nopDialer{}})
	if err != nil {
		t.Fatal(err)
	}
	rt := &callRuntime{call: &sip.InboundCall{}}
	for _, tc := range []struct {
		name, target string
		headers      map[string]string
		want         error
	}{
		{"allowed", "sip:ann@127.0.0.1", map[string]string{"X-Ticket": "42"}, nil},
		{"not allowed", "sip:ann@192.0.2.1", nil, transfer.ErrNotAllowed},
		{"not a target", "ftp://x", nil, ErrBadTransfer},
		{"target with CRLF", "sip:ann@127.0.0.1\r\nX: y", nil, ErrBadTransfer},
		{"header value with CRLF", "sip:ann@127.0.0.1", map[string]string{"X-Ticket": "42\r\nInjected: 1"}, ErrBadTransfer},
		{"header name with a colon", "sip:ann@127.0.0.1", map[string]string{"X-A:": "1"}, ErrBadTransfer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rt.resolve(svc, tc.target, tc.headers)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("resolve(%q, %v) = %v, want %v", tc.target, tc.headers, err, tc.want)
			}
		})
	}
}

type nopDialer struct{}

func (nopDialer) Dial(context.Context, string, []byte, sip.DialOptions) (*sip.OutboundCall, error) {
	return nil, errors.New("no dialing in this test")
}
