package dialplan

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/transfer"
)

// agentTransfer starts a transfer an agent (or the admin API) asked for
// while the agent is connected. It returns at once; progress reaches the
// agent as transferStatus events.
func (rt *callRuntime) agentTransfer(ctx context.Context, cm *callMedia, session agent.Listener, req agent.TransferRequest) error {
	svc := rt.e.env.Transfers
	if svc == nil {
		return agent.ErrTransferUnavailable
	}
	target, err := rt.resolve(svc, req.Target, req.Headers)
	if err != nil {
		rt.logTransfer(string(req.Mode), req.Target, transfer.StateFailed, 0, time.Now())
		return err
	}
	if !rt.xf.begin() {
		return ErrTransferBusy
	}
	tell := func(s agent.TransferStatus) {
		s.Mode, s.Target = req.Mode, req.Target
		session.OnEvent(agent.Event{Kind: agent.EventTransfer, Transfer: s})
	}
	go func() {
		defer rt.transferOver()
		tell(agent.TransferStatus{State: agent.TransferTrying})
		if req.Mode == agent.TransferWarm {
			rt.warm(ctx, cm, session, target, req, tell, true)
			return
		}
		err := rt.cold(ctx, target, req, tell)
		if err == nil {
			tell(agent.TransferStatus{State: agent.TransferCompleted, Code: 200})
			rt.xf.agentEnd(errHandedOver)
			return
		}
		tell(agent.TransferStatus{State: agent.TransferFailed, Code: transfer.FailureCode(err), Reason: err.Error()})
		switch svc.Config().Fallback {
		case transfer.FallbackBridge:
			rt.warm(ctx, cm, session, target, agent.TransferRequest{Mode: agent.TransferWarm, Target: req.Target, Headers: req.Headers, Context: req.Context}, tell, false)
		case transfer.FallbackDialplan:
			rt.xf.agentEnd(fmt.Errorf("%w: %w", errTransferFailed, err))
		}
	}()
	return nil
}

// warm dials the human and lets the agent brief them: the agent hears the
// human and speaks to the human only, while the caller hears hold audio.
// The agent's bridge (or the human's accept digit) connects caller and
// human; cancel, or the human leaving, returns the caller to the agent.
// Without brief the legs are bridged as soon as the human answers.
func (rt *callRuntime) warm(ctx context.Context, cm *callMedia, session agent.Listener, target transfer.Target, req agent.TransferRequest, tell func(agent.TransferStatus), brief bool) {
	// The caller stops reaching the agent for the whole attempt.
	rt.sw.set(nil)
	restore := func() { cm.speakTo(rt.leg); rt.sw.set(session) }
	stopHold := rt.hold()
	human, err := rt.dialHuman(ctx, target, req, tell)
	if err != nil {
		stopHold()
		restore()
		tell(agent.TransferStatus{State: agent.TransferFailed, Code: transfer.FailureCode(err), Reason: err.Error()})
		return
	}
	sink := &humanSink{Listener: session, accept: rt.e.env.Transfers.Config().AcceptDigit, decide: rt.xf.decide}
	if err := human.Start(rt.mediaCtx, sink); err != nil {
		stopHold()
		human.Hangup(ctx, sip.CauseError.Reason())
		restore()
		tell(agent.TransferStatus{State: agent.TransferFailed, Reason: err.Error()})
		return
	}
	tell(agent.TransferStatus{State: agent.TransferAnswered, Code: 200})
	step := LegBriefing
	if !brief {
		step = string(StateAnswered)
	}
	rt.transferStep(string(req.Mode), req.Target, step, &LegSnapshot{CallID: human.Call.CallID, Role: LegTransfer, Target: req.Target, State: step})
	if brief {
		cm.speakTo(human.Media)
	}
	started := time.Now()
	bridge := !brief
	if brief {
		select {
		case bridge = <-rt.xf.decide:
		case <-human.Done():
			stopHold()
			human.Media.Close()
			restore()
			rt.logTransfer("warm", req.Target, "human_hung_up", 0, started)
			tell(agent.TransferStatus{State: agent.TransferFailed, Reason: "the human hung up during the briefing"})
			return
		case <-ctx.Done():
			// The caller left (or the call is being ended) mid-briefing:
			// the agent is told, then the human's leg is ended.
			tell(agent.TransferStatus{State: agent.TransferFailed, Reason: "the caller hung up"})
			stopHold()
			human.Hangup(context.WithoutCancel(ctx), sip.CauseNormal.Reason())
			rt.logTransfer("warm", req.Target, "caller_hung_up", 0, started)
			return
		}
	}
	stopHold()
	if !bridge {
		human.Hangup(ctx, sip.CauseNormal.Reason())
		restore()
		rt.logTransfer("warm", req.Target, "cancelled", 0, started)
		tell(agent.TransferStatus{State: agent.TransferFailed, Reason: "cancelled"})
		return
	}
	// The agent's queued briefing must not leak to the caller, and the
	// human no longer talks to the agent.
	human.Media.Clear()
	cm.speakTo(nil)
	sink.off.Store(true)
	rt.logTransfer("warm", req.Target, transfer.StateCompleted, 200, started)
	// Bridged from here on: afterAgent connects the media once the agent
	// has left, and transferOver must not take the leg back.
	rt.publish(func(s *CallSnapshot, h *LegSnapshot) *LegSnapshot {
		s.State = StateBridged
		if h != nil {
			h.State = LegBridged
		}
		return h
	})
	tell(agent.TransferStatus{State: agent.TransferCompleted, Code: 200})
	rt.xf.mu.Lock()
	rt.xf.bridge = human
	rt.xf.mu.Unlock()
	rt.xf.agentEnd(errHandedOver)
}

// completeTransfer is the agent's bridge or cancel during a briefing.
func (rt *callRuntime) completeTransfer(bridge bool) error {
	rt.xf.mu.Lock()
	busy, decide := rt.xf.busy, rt.xf.decide
	rt.xf.mu.Unlock()
	if !busy {
		return errors.New("no warm transfer in progress")
	}
	select {
	case decide <- bridge:
		return nil
	default:
		return errors.New("the transfer was already decided")
	}
}

// afterAgent finishes what a transfer started once the agent's session
// has stopped: a bridged caller stays with the human until either leaves.
func (rt *callRuntime) afterAgent(ctx context.Context) error {
	rt.xf.mu.Lock()
	human := rt.xf.bridge
	rt.xf.mu.Unlock()
	if human == nil {
		return errHandedOver // a REFER took the call, and we have left it
	}
	return errors.Join(errHandedOver, rt.bridgeUntilEnd(ctx, human))
}

// humanSink carries the human's side of a briefing to the agent, and
// watches for the digit that accepts the call.
type humanSink struct {
	agent.Listener
	accept rune
	decide chan bool
	off    atomic.Bool // bridged: the agent is gone
}

func (h *humanSink) OnAudio(frame []int16) {
	if !h.off.Load() {
		h.Listener.OnAudio(frame)
	}
}

func (h *humanSink) OnMark(name string) {
	if !h.off.Load() {
		h.Listener.OnMark(name)
	}
}

func (h *humanSink) OnDTMF(d rune, dur time.Duration) {
	if h.off.Load() {
		return
	}
	if h.accept != 0 && d == h.accept {
		select {
		case h.decide <- true:
		default:
		}
		return
	}
	h.Listener.OnDTMF(d, dur)
}
