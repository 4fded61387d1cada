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

// CallSnapshot is a live call as others see it.
type CallSnapshot struct {
	ID, Trunk, From, To string
	State               CallState
	Rule, Agent         string
	Transfer            string // the last transfer: "warm +1555...: answered"
	Started             time.Time
}

// liveCall is the executor's handle on one call in progress.
type liveCall struct {
	mu   sync.Mutex
	snap CallSnapshot
	// end stops the call's plan; the executor hangs up with the cause's reason.
	end context.CancelCauseFunc
	// transfer starts a transfer on the call's current agent connection.
	transfer func(agent.TransferRequest) error
}

func (l *liveCall) snapshot() CallSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snap
}

func (l *liveCall) update(f func(*CallSnapshot)) CallSnapshot {
	l.mu.Lock()
	f(&l.snap)
	s := l.snap
	l.mu.Unlock()
	return s
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
