package dialplan

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/rtp"
	"github.com/switchboard-voice/switchboard/sip"
)

// callRuntime is the Runtime of one real call: actions act on its SIP
// dialog and its media leg.
type callRuntime struct {
	e    *Executor
	call *sip.InboundCall
	rec  *record
	live *liveCall
	// end stops the plan with a cause (remote BYE, RTP timeout, admin).
	end context.CancelCauseFunc
	// mediaCtx outlives the plan's actions and ends with the call.
	mediaCtx context.Context

	sw    *listenerSwitch
	xf    xferState
	leg   *media.Leg
	marks atomic.Uint64 // names play marks uniquely
	final bool          // the INVITE has had its final response
	// unanswerable: answering failed (refused, cancelled, no ACK) and the
	// record already says why.
	unanswerable bool
}

var (
	errRemoteHangup = errors.New("caller hung up")
	errRTPTimeout   = errors.New("no RTP from the caller")
	errMediaFailed  = errors.New("media failed")
)

func (rt *callRuntime) Answer(ctx context.Context) error {
	if rt.leg != nil {
		return nil
	}
	if rt.final {
		return errors.New("the call was already refused")
	}
	leg, neg, ok := rt.e.answer(ctx, rt.call, rt.rec, rt.sw)
	rt.final = true
	if !ok {
		// answer has rejected the call or seen it cancelled; nothing to
		// run any more.
		rt.unanswerable = true
		rt.end(&endRequest{reason: rt.rec.reason})
		return fmt.Errorf("answer: %s", rt.rec.reason)
	}
	rt.leg, rt.rec.leg, rt.rec.neg = leg, leg, neg
	if err := leg.Start(rt.mediaCtx, neg, rt.sw); err != nil {
		rt.end(errMediaFailed)
		return fmt.Errorf("media: %w", err)
	}
	go func() {
		err := leg.Wait()
		switch {
		case errors.Is(err, rtp.ErrInactive):
			rt.end(errRTPTimeout)
		case err != nil && rt.mediaCtx.Err() == nil:
			rt.rec.log.Warn("media stopped", "error", err)
			rt.end(errMediaFailed)
		}
	}()
	snap := rt.live.update(func(s *CallSnapshot) { s.State = StateAnswered })
	rt.e.observe(func(o Observer) { o.CallUpdated(snap) })
	return nil
}

func (rt *callRuntime) Play(ctx context.Context, p *Prompt) error {
	if err := rt.Answer(ctx); err != nil {
		return err
	}
	w := newWaiter()
	rt.sw.set(w)
	defer rt.sw.set(nil)
	return rt.playAndWait(ctx, w, p)
}

// playAndWait queues p and returns once it has been sent.
func (rt *callRuntime) playAndWait(ctx context.Context, w *waiter, p *Prompt) error {
	name := rt.queue(p)
	for {
		select {
		case m := <-w.marks:
			if m == name {
				return nil
			}
		case <-ctx.Done():
			rt.leg.Clear()
			return ctx.Err()
		}
	}
}

// queue plays p and returns the name of the mark that follows it.
func (rt *callRuntime) queue(p *Prompt) string {
	name := "prompt-" + strconv.FormatUint(rt.marks.Add(1), 10)
	if err := rt.leg.PlayPCM(p.Samples); err != nil {
		rt.rec.log.Warn("prompt does not fit the playout queue", "prompt", p.Name, "error", err)
	}
	rt.leg.Mark(name)
	return name
}

func (rt *callRuntime) Gather(ctx context.Context, g GatherRequest) (string, error) {
	if err := rt.Answer(ctx); err != nil {
		return "", err
	}
	w := newWaiter()
	rt.sw.set(w)
	defer rt.sw.set(nil)
	var prompt string
	if g.Prompt != nil {
		prompt = rt.queue(g.Prompt)
	}
	var timer <-chan time.Time
	if prompt == "" {
		timer = time.After(g.Timeout)
	}
	var digits strings.Builder
	var held []int64 // each digit's duration in ms, for the log
	done := func(endedBy string) string {
		rt.rec.log.Info("gather ended", "digits", digits.String(), "durations_ms", held, "ended_by", endedBy)
		return digits.String()
	}
	for {
		select {
		case m := <-w.marks:
			if m == prompt && digits.Len() == 0 {
				timer = time.After(g.Timeout)
			}
		case d := <-w.digits:
			if prompt != "" {
				rt.leg.Clear() // barge-in: the caller knows what to press
				prompt = ""
			}
			if g.Terminator != "" && string(d.key) == g.Terminator {
				return done("terminator"), nil
			}
			digits.WriteRune(d.key)
			held = append(held, d.duration.Milliseconds())
			if digits.Len() >= g.MaxDigits {
				return done("max_digits"), nil
			}
			timer = time.After(g.InterDigitTimeout)
		case <-timer:
			if digits.Len() == 0 {
				return done("timeout"), nil
			}
			return done("inter_digit_timeout"), nil
		case <-ctx.Done():
			return digits.String(), ctx.Err()
		}
	}
}

func (rt *callRuntime) Agent(ctx context.Context, name string, params map[string]string) error {
	if err := rt.Answer(ctx); err != nil {
		return err
	}
	if name == "" {
		name = rt.e.env.DefaultAgent
	}
	ag, ok := rt.e.env.Agents[name]
	if !ok {
		return fmt.Errorf("agent %q is not configured", name)
	}
	rt.rec.agent = name
	snap := rt.live.update(func(s *CallSnapshot) { s.Agent = name })
	rt.e.observe(func(o Observer) { o.CallUpdated(snap) })
	info := agent.Info{CallID: rt.call.CallID, From: rt.call.From, To: rt.call.To, Trunk: rt.call.Trunk, Params: params, Header: rt.call.Header}
	cm := newCallMedia(rt.leg, info, rt.rec.log)
	agentCtx, agentEnd := context.WithCancelCause(ctx)
	defer agentEnd(nil)
	rt.xf.mu.Lock()
	rt.xf.agentEnd = agentEnd
	rt.xf.mu.Unlock()
	// The bot may ask for a transfer before Start has returned its session.
	var running atomic.Pointer[agent.Session]
	if rt.e.env.Transfers != nil {
		cm.transfer = func(req agent.TransferRequest) error {
			s := running.Load()
			if s == nil {
				return errors.New("the agent's session is not up yet")
			}
			return rt.agentTransfer(agentCtx, cm, *s, req)
		}
		cm.complete = rt.completeTransfer
	}
	started := time.Now()
	session, err := ag.Start(agentCtx, cm)
	if err == nil {
		running.Store(&session)
	}
	rt.e.observe(func(o Observer) { o.AgentStarted(name, time.Since(started), err) })
	if err != nil {
		rt.agentFailed(ctx, name, err)
		return fmt.Errorf("agent %s: %w", name, err)
	}
	rt.sw.set(session)
	rt.live.mu.Lock()
	rt.live.transfer = cm.Transfer
	rt.live.mu.Unlock()
	defer func() {
		rt.sw.set(nil)
		rt.live.mu.Lock()
		rt.live.transfer = nil
		rt.live.mu.Unlock()
	}()
	err = session.Wait(agentCtx)
	if cause := context.Cause(agentCtx); ctx.Err() == nil {
		switch {
		case errors.Is(cause, errHandedOver):
			rt.sw.set(nil)
			return rt.afterAgent(ctx)
		case errors.Is(cause, errTransferFailed):
			return cause
		}
	}
	if err != nil && !errors.Is(err, agent.ErrHangup) {
		rt.e.observe(func(o Observer) { o.AgentFailed(name, err) })
		rt.agentFailed(ctx, name, err)
	}
	return err
}

// agentFailed logs an agent's failure, once, with its cause, and keeps the
// cause for the CDR. A failure because the call itself ended (the caller
// hung up while the bot was dialled) is not the agent's.
func (rt *callRuntime) agentFailed(ctx context.Context, name string, err error) {
	if ctx.Err() != nil {
		return
	}
	cause, detail := agent.FailureOf(err)
	rt.rec.agentError, rt.rec.agentErrorDetail = string(cause), detail
	rt.rec.log.Warn("agent failed", "agent", name, "cause", string(cause), "detail", detail)
}

func (rt *callRuntime) Hangup(ctx context.Context, cause string) error {
	reason, sipCause := EndLocalBye, sip.CauseNormal
	switch cause {
	case CauseAgentHangup:
		reason, sipCause = EndAgentHangup, sip.CauseAgentHangup
	case CauseError:
		reason, sipCause = EndFailed, sip.CauseError
	}
	rt.rec.reason = reason
	if rt.leg == nil {
		code := 480
		if cause == CauseError {
			code = 500
		}
		return rt.Reject(ctx, code, "")
	}
	bctx, cancel := byeContext(ctx)
	defer cancel()
	return rt.call.Hangup(bctx, sipCause.Reason())
}

func (rt *callRuntime) Reject(ctx context.Context, code int, reason string) error {
	if rt.final {
		return errors.New("reject after the call was answered")
	}
	rt.final = true
	rt.e.reject(rt.call, rt.rec, code, reason)
	return nil
}

// waiter hears marks and digits while a prompt or gather runs.
type waiter struct {
	marks  chan string
	digits chan pressed
}

// pressed is one DTMF key and how long it was held (0 when the source does
// not say, as SIP INFO application/dtmf).
type pressed struct {
	key      rune
	duration time.Duration
}

func newWaiter() *waiter {
	return &waiter{marks: make(chan string, 8), digits: make(chan pressed, 32)}
}

func (w *waiter) OnAudio([]int16)     {}
func (w *waiter) OnEvent(agent.Event) {}
func (w *waiter) OnMark(name string) {
	select {
	case w.marks <- name:
	default:
	}
}

func (w *waiter) OnDTMF(d rune, dur time.Duration) {
	select {
	case w.digits <- pressed{d, dur}:
	default: // a caller mashing keys faster than we read loses the excess
	}
}
