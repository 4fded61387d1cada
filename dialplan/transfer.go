package dialplan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/transfer"
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
	target, err := svc.Resolve(t.Target, rt.call.Trunk)
	if err != nil {
		rt.logTransfer(t.Mode, t.Target, transfer.StateFailed, 0, time.Now())
		return err
	}
	if err := rt.Answer(ctx); err != nil {
		return err
	}
	if !rt.xf.begin() {
		return errors.New("a transfer is already in progress")
	}
	defer rt.xf.done()
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

// cold sends REFER and, on success, leaves the call with BYE.
func (rt *callRuntime) cold(ctx context.Context, target transfer.Target, req agent.TransferRequest, tell func(agent.TransferStatus)) error {
	svc := rt.e.env.Transfers
	started := time.Now()
	stopHold := rt.hold()
	err := svc.Refer(ctx, rt.call, target, req.Headers, toAgent(tell))
	stopHold()
	if err != nil {
		rt.logTransfer("cold", req.Target, transfer.StateFailed, transfer.FailureCode(err), started)
		rt.rec.log.Info("cold transfer failed", "target", req.Target, "error", err)
		return err
	}
	rt.logTransfer("cold", req.Target, transfer.StateCompleted, 200, started)
	rt.rec.log.Info("cold transfer completed", "target", req.Target)
	bctx, cancel := byeContext(ctx)
	defer cancel()
	_ = rt.call.Hangup(bctx, sip.Reason{Protocol: "SIP", Cause: 200, Text: "Call transferred"})
	return nil
}

// dialHuman places the second leg while the caller hears hold audio.
func (rt *callRuntime) dialHuman(ctx context.Context, target transfer.Target, req agent.TransferRequest, tell func(agent.TransferStatus)) (*transfer.Leg, error) {
	started := time.Now()
	stopHold := rt.hold()
	human, err := rt.e.env.Transfers.Dial(ctx, target, transfer.DialRequest{
		CallID: rt.call.CallID, Context: req.Context, CallerID: rt.call.From, CallerName: rt.call.FromDisplay,
		Headers:  req.Headers,
		Progress: toAgent(tell),
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
	snap := rt.live.update(func(s *CallSnapshot) { s.State = StateBridged })
	rt.e.observe(func(o Observer) { o.CallUpdated(snap) })
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

// toAgent passes a transfer's progress on to an agent; nil when nobody
// listens.
func toAgent(tell func(agent.TransferStatus)) func(transfer.Status) {
	if tell == nil {
		return nil
	}
	return func(s transfer.Status) {
		tell(agent.TransferStatus{State: agent.TransferState(s.State), Code: s.Code, Reason: s.Reason})
	}
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

func (rt *callRuntime) logTransfer(mode, target, outcome string, code int, started time.Time) {
	rt.rec.transfers.add(TransferCDR{Mode: mode, Target: target, Outcome: outcome, Code: code, Started: started, Finished: time.Now()})
	snap := rt.live.update(func(s *CallSnapshot) { s.Transfer = mode + " " + target + ": " + outcome })
	rt.e.observe(func(o Observer) { o.CallUpdated(snap) })
}

type nopSink struct{}

func (nopSink) OnAudio([]int16)            {}
func (nopSink) OnDTMF(rune, time.Duration) {}
func (nopSink) OnMark(string)              {}
