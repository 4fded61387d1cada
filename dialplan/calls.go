package dialplan

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
)

// ErrNoCall is returned for a call id this executor is not running.
var ErrNoCall = errors.New("dialplan: no such call")

// CallState is where a live call stands.
type CallState string

// Call states, as the registry and admin API show them.
const (
	StateRinging      CallState = "ringing"
	StateAnswered     CallState = "answered"
	StateTransferring CallState = "transferring"
	StateBridged      CallState = "bridged"
	StateEnding       CallState = "ending"
)

// Leg roles: the inbound call, and the second leg a transfer dials.
const (
	LegCaller   = "caller"
	LegTransfer = "transfer"
)

// Leg states besides the call's own (ringing, answered, bridged, ending).
const (
	LegDialing  = "dialing"  // the INVITE is out, no ringing yet
	LegRinging  = "ringing"  // 180/183 from the transfer target
	LegBriefing = "briefing" // the target answered; the agent talks to them
	LegOnHold   = "on_hold"  // the caller hears hold audio during a transfer
	LegBridged  = "bridged"
)

// LegSnapshot is one SIP leg of a call.
type LegSnapshot struct {
	CallID string // the leg's SIP Call-ID; empty while a transfer leg is dialled
	Role   string // LegCaller or LegTransfer
	Target string // LegTransfer: the target as requested
	State  string
}

// CallSnapshot is a live call as others see it.
type CallSnapshot struct {
	ID, Trunk, From, To string
	State               CallState
	Rule, Agent         string
	// Transfer is the transfer in progress or the last one, as "mode
	// target: step", e.g. "warm sip:ann@pbx: briefing" or "cold +1555...:
	// failed".
	Transfer string
	// Legs are the call's SIP legs, the caller's first, then a transfer's
	// second leg while it is dialled, briefed or bridged. Snapshots own
	// their slice.
	Legs    []LegSnapshot
	Started time.Time
}

// liveCall is the executor's handle on one call in progress.
type liveCall struct {
	// pub orders a transfer goroutine's publications before the call's
	// end: publish holds it from its update to its CallUpdated, and update
	// (the executor's, the last of which sets StateEnding before
	// CallEnded) waits for it. Without it a late CallUpdated could put
	// the call back into the registry after CallEnded removed it.
	pub  sync.Mutex
	mu   sync.Mutex
	snap CallSnapshot // Legs unused: view builds them
	// human is a transfer's second leg while there is one.
	human *LegSnapshot
	// end stops the call's plan; the executor hangs up with the cause's reason.
	end context.CancelCauseFunc
	// transfer starts a transfer on the call's current agent connection.
	transfer func(agent.TransferRequest) error
}

func (l *liveCall) snapshot() CallSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.viewLocked()
}

func (l *liveCall) update(f func(*CallSnapshot)) CallSnapshot {
	l.pub.Lock()
	defer l.pub.Unlock()
	s, _ := l.updateLegs(func(s *CallSnapshot, human *LegSnapshot) *LegSnapshot {
		f(s)
		return human
	}, false)
	return s
}

// publish is update for the goroutines of transfers: f also gets a copy of
// the second leg (nil when there is none) and returns the one to keep (nil
// for none), and tell gets the result, in order with the executor's own
// updates. Once the call is ending, publish changes and tells nothing.
func (l *liveCall) publish(f func(s *CallSnapshot, human *LegSnapshot) *LegSnapshot, tell func(CallSnapshot)) {
	l.pub.Lock()
	defer l.pub.Unlock()
	if s, ok := l.updateLegs(f, true); ok {
		tell(s)
	}
}

// updateLegs applies f; with unlessEnding it leaves an ending call alone
// and reports false.
func (l *liveCall) updateLegs(f func(s *CallSnapshot, human *LegSnapshot) *LegSnapshot, unlessEnding bool) (CallSnapshot, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if unlessEnding && l.snap.State == StateEnding {
		return CallSnapshot{}, false
	}
	var cur *LegSnapshot
	if l.human != nil {
		h := *l.human
		cur = &h
	}
	if h := f(&l.snap, cur); h != nil {
		c := *h
		l.human = &c
	} else {
		l.human = nil
	}
	return l.viewLocked(), true
}

// viewLocked is the snapshot others get, with the legs filled in.
func (l *liveCall) viewLocked() CallSnapshot {
	s := l.snap
	s.Legs = make([]LegSnapshot, 1, 2)
	s.Legs[0] = LegSnapshot{CallID: s.ID, Role: LegCaller, State: callerLegState(s.State)}
	if l.human != nil {
		s.Legs = append(s.Legs, *l.human)
	}
	return s
}

// callerLegState is the caller's leg as the call's state implies it: on
// hold while a transfer runs, since the caller hears hold audio then.
func callerLegState(s CallState) string {
	if s == StateTransferring {
		return LegOnHold
	}
	return string(s)
}

// endRequest is the cause a call's plan is stopped with from outside.
type endRequest struct {
	reason string // End* value
	detail string
}

func (e *endRequest) Error() string { return "call ended: " + e.reason + " " + e.detail }

// Calls lists the calls in progress on this executor.
func (e *Executor) Calls() []CallSnapshot {
	var out []CallSnapshot
	e.calls.Range(func(_, v any) bool {
		out = append(out, v.(*liveCall).snapshot())
		return true
	})
	return out
}

// Hangup ends a call in progress (an admin or REST request).
func (e *Executor) Hangup(id, reason string) error {
	v, ok := e.calls.Load(id)
	if !ok {
		return ErrNoCall
	}
	v.(*liveCall).end(&endRequest{reason: EndAdminHangup, detail: reason})
	return nil
}

// Transfer asks a call in progress to transfer (an admin or REST request).
func (e *Executor) Transfer(id string, req agent.TransferRequest) error {
	v, ok := e.calls.Load(id)
	if !ok {
		return ErrNoCall
	}
	lc := v.(*liveCall)
	lc.mu.Lock()
	transfer := lc.transfer
	lc.mu.Unlock()
	if transfer == nil {
		return agent.ErrTransferUnavailable
	}
	return transfer(req)
}
