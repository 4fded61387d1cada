package dialplan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/transfer"
)

// Refusals of a transfer request, before anything is dialled. Callers (the
// admin API, another instance asking for its owner) tell them apart with
// errors.Is, as they do transfer.ErrNotAllowed and
// agent.ErrTransferUnavailable.
var (
	// ErrTransferBusy: the call has a transfer in progress already.
	ErrTransferBusy = errors.New("a transfer is already in progress")
	// ErrBadTransfer: the target or a custom header is malformed.
	ErrBadTransfer = errors.New("bad transfer request")
)

// errHandedOver ends an agent whose caller now talks to someone else (a
// completed REFER, or a bridge to the human).
var errHandedOver = errors.New("the caller was handed over")

// errTransferFailed ends an agent when a failed transfer falls back to the
// dialplan's on_failure branch.
var errTransferFailed = errors.New("transfer failed")

// xferState is the call's transfer in progress; at most one at a time.
type xferState struct {
	mu     sync.Mutex
	busy   bool
	decide chan bool     // warm briefing: bridge (true) or cancel (false)
	bridge *transfer.Leg // the human, once bridged
	// agentEnd stops the running agent's session with a cause.
	agentEnd context.CancelCauseFunc
}

func (x *xferState) begin() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.busy {
		return false
	}
	x.busy = true
	x.decide = make(chan bool, 1)
	return true
}

func (x *xferState) done() {
	x.mu.Lock()
	x.busy = false
	x.mu.Unlock()
}

// transferLog is the call's transfers, for the CDR.
type transferLog struct {
	mu   sync.Mutex
	list []TransferCDR
}

func (l *transferLog) add(t TransferCDR) {
	l.mu.Lock()
	l.list = append(l.list, t)
	l.mu.Unlock()
}

func (l *transferLog) snapshot() []TransferCDR {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]TransferCDR(nil), l.list...)
}

// Transfer runs a dialplan transfer action: the plan waits for its end.
// Cold: REFER, then the configured fallback. Warm (no agent to brief
// anyone): the human is dialled and bridged as soon as they answer.
func (rt *callRuntime) Transfer(ctx context.Context, t TransferRequest) error {
	svc := rt.e.env.Transfers
	if svc == nil {
		return fmt.Errorf("transfer to %s: %w", t.Target, agent.ErrTransferUnavailable)
	}
	target, err := rt.resolve(svc, t.Target, t.Headers)
	if err != nil {
		rt.logTransfer(t.Mode, t.Target, transfer.StateFailed, 0, time.Now())
		return err
	}
	if err := rt.Answer(ctx); err != nil {
		return err
	}
	if !rt.xf.begin() {
		return ErrTransferBusy
	}
	defer rt.transferOver()
	req := agent.TransferRequest{Mode: agent.TransferMode(t.Mode), Target: t.Target, Headers: t.Headers}
	if t.Mode == "cold" {
		err := rt.cold(ctx, target, req, nil)
		if err == nil || svc.Config().Fallback != transfer.FallbackBridge {
			return err
		}
		rt.rec.log.Info("cold transfer failed: bridging it ourselves", "target", t.Target, "error", err)
	}
	started := time.Now()
	human, err := rt.dialHuman(ctx, target, req, nil)
	if err != nil {
		return err
	}
	rt.logTransfer(t.Mode, t.Target, transfer.StateCompleted, 200, started)
	return rt.bridgeUntilEnd(ctx, human)
}

// resolve checks a transfer request before anything is dialled: the custom
// headers, and the target against the allowlist. A refused target wraps
// transfer.ErrNotAllowed, anything malformed ErrBadTransfer.
func (rt *callRuntime) resolve(svc *transfer.Service, raw string, headers map[string]string) (transfer.Target, error) {
	for name, v := range headers {
		if name == "" || strings.ContainsAny(name, " :\r\n\t") || sip.CheckHeaderValue(v) != nil {
			return transfer.Target{}, fmt.Errorf("%w: header %q is not valid", ErrBadTransfer, name)
		}
	}
	t, err := svc.Resolve(raw, rt.call.Trunk)
	if err != nil && !errors.Is(err, transfer.ErrNotAllowed) {
		err = fmt.Errorf("%w: %w", ErrBadTransfer, err)
	}
	return t, err
}

// cold sends REFER and, on success, leaves the call with BYE.
func (rt *callRuntime) cold(ctx context.Context, target transfer.Target, req agent.TransferRequest, tell func(agent.TransferStatus)) error {
	svc := rt.e.env.Transfers
	started := time.Now()
	rt.transferStep("cold", req.Target, "referring", nil)
	stopHold := rt.hold()
	err := svc.Refer(ctx, rt.call, target, req.Headers, rt.progress("cold", req.Target, false, tell))
	stopHold()
	if err != nil {
		rt.logTransfer("cold", req.Target, transfer.StateFailed, transfer.FailureCode(err), started)
		rt.rec.log.Info("cold transfer failed", "target", req.Target, "error", err)
		return err
	}
	rt.logTransfer("cold", req.Target, transfer.StateCompleted, 200, started)
	rt.rec.log.Info("cold transfer completed", "target", req.Target)
	// The caller is someone else's now: what is left is our BYE.
	rt.publish(func(s *CallSnapshot, h *LegSnapshot) *LegSnapshot {
		s.State = StateEnding
		return h
	})
	bctx, cancel := byeContext(ctx)
	defer cancel()
	_ = rt.call.Hangup(bctx, sip.Reason{Protocol: "SIP", Cause: 200, Text: "Call transferred"})
	return nil
}

// dialHuman places the second leg while the caller hears hold audio.
func (rt *callRuntime) dialHuman(ctx context.Context, target transfer.Target, req agent.TransferRequest, tell func(agent.TransferStatus)) (*transfer.Leg, error) {
	started := time.Now()
	mode := string(req.Mode)
	rt.transferStep(mode, req.Target, LegDialing, &LegSnapshot{Role: LegTransfer, Target: req.Target, State: LegDialing})
	stopHold := rt.hold()
	human, err := rt.e.env.Transfers.Dial(ctx, target, transfer.DialRequest{
		CallID: rt.call.CallID, Context: req.Context, CallerID: rt.call.From, CallerName: rt.call.FromDisplay,
		Headers:  req.Headers,
		Progress: rt.progress(mode, req.Target, true, tell),
	})
	stopHold()
	if err != nil {
		rt.logTransfer(string(req.Mode), req.Target, transfer.StateFailed, transfer.FailureCode(err), started)
		rt.rec.log.Info("transfer leg failed", "target", req.Target, "error", err)
		return nil, err
	}
	rt.rec.log.Info("transfer leg answered", "target", req.Target, "human_call_id", human.Call.CallID)
	return human, nil
}

// bridgeUntilEnd connects caller and human and returns once either hangs
// up, having ended the other: no leg is ever left up alone.
func (rt *callRuntime) bridgeUntilEnd(ctx context.Context, human *transfer.Leg) error {
	if !human.Media.Started() {
		if err := human.Start(rt.mediaCtx, nopSink{}); err != nil {
			human.Hangup(ctx, sip.CauseError.Reason())
			return fmt.Errorf("transfer: human media: %w", err)
		}
	}
	if err := media.Bridge(rt.leg, human.Media); err != nil {
		human.Hangup(ctx, sip.CauseError.Reason())
		return err
	}
	rt.publish(func(s *CallSnapshot, h *LegSnapshot) *LegSnapshot {
		s.State = StateBridged
		if h == nil {
			h = &LegSnapshot{Role: LegTransfer}
		}
		h.CallID, h.State = human.Call.CallID, LegBridged
		return h
	})
	select {
	case <-human.Done():
		rt.rec.log.Info("bridged call ended by the transfer target")
		bctx, cancel := byeContext(ctx)
		_ = rt.call.Hangup(bctx, sip.CauseNormal.Reason())
		cancel()
		human.Media.Close()
	case <-rt.call.Done():
		rt.rec.log.Info("bridged call ended by the caller")
		human.Hangup(ctx, sip.CauseNormal.Reason())
	case <-ctx.Done():
		// Admin hang-up or shutdown: both legs go.
		human.Hangup(ctx, sip.CauseShutdown.Reason())
		bctx, cancel := byeContext(ctx)
		_ = rt.call.Hangup(bctx, sip.CauseShutdown.Reason())
		cancel()
	}
	media.Unbridge(rt.leg, human.Media)
	return nil
}

// progress publishes a transfer's ringing (with the second leg when leg is
// true: a warm transfer's dialled target) and passes every step on to the
// agent when tell is not nil.
func (rt *callRuntime) progress(mode, target string, leg bool, tell func(agent.TransferStatus)) func(transfer.Status) {
	return func(s transfer.Status) {
		if s.State == transfer.StateRinging {
			var human *LegSnapshot
			if leg {
				human = &LegSnapshot{Role: LegTransfer, Target: target, State: LegRinging}
			}
			rt.transferStep(mode, target, LegRinging, human)
		}
		if tell != nil {
			tell(agent.TransferStatus{State: agent.TransferState(s.State), Code: s.Code, Reason: s.Reason})
		}
	}
}

// publish changes the call's snapshot (see liveCall.updateLegs) and tells
// the observers at once, so the fleet registry shows a transfer while it
// runs.
func (rt *callRuntime) publish(f func(s *CallSnapshot, human *LegSnapshot) *LegSnapshot) {
	rt.live.publish(f, func(snap CallSnapshot) {
		rt.e.observe(func(o Observer) { o.CallUpdated(snap) })
	})
}

// transferStep publishes a transfer under way: the call is transferring,
// its summary names the step, and human is the second leg (nil: none).
func (rt *callRuntime) transferStep(mode, target, step string, human *LegSnapshot) {
	rt.publish(func(s *CallSnapshot, _ *LegSnapshot) *LegSnapshot {
		s.State = StateTransferring
		s.Transfer = mode + " " + target + ": " + step
		return human
	})
}

// transferOver ends a transfer attempt (xf.begin's counterpart): a call
// still transferring goes back to answered and drops a second leg that was
// not bridged. A bridged call keeps its state and legs.
func (rt *callRuntime) transferOver() {
	rt.xf.done()
	rt.publish(func(s *CallSnapshot, h *LegSnapshot) *LegSnapshot {
		if s.State == StateTransferring {
			s.State = StateAnswered
		}
		if h != nil && h.State != LegBridged {
			return nil
		}
		return h
	})
}

// hold plays hold audio (or ringback) to the caller until stopped.
func (rt *callRuntime) hold() (stop func()) {
	audio := rt.e.env.Transfers.Config().Hold
	if audio == nil {
		audio = ringback
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if rt.leg.Buffered() < time.Second {
				_ = rt.leg.PlayPCM(audio)
			}
			select {
			case <-done:
				return
			case <-rt.mediaCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		rt.leg.Clear()
	}
}

// ringback is the North American ring tone: 440+480 Hz, 2 s on, 4 s off.
var ringback = func() []int16 {
	a := media.Tone(440, 2*time.Second, 0.2)
	b := media.Tone(480, 2*time.Second, 0.2)
	out := make([]int16, 6*8000)
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}()

// logTransfer records an attempt's outcome for the CDR and the call's
// transfer summary; state and legs are transferOver's to settle.
func (rt *callRuntime) logTransfer(mode, target, outcome string, code int, started time.Time) {
	rt.rec.transfers.add(TransferCDR{Mode: mode, Target: target, Outcome: outcome, Code: code, Started: started, Finished: time.Now()})
	rt.publish(func(s *CallSnapshot, h *LegSnapshot) *LegSnapshot {
		s.Transfer = mode + " " + target + ": " + outcome
		return h
	})
}

type nopSink struct{}

func (nopSink) OnAudio([]int16)            {}
func (nopSink) OnDTMF(rune, time.Duration) {}
func (nopSink) OnMark(string)              {}
