package dialplan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/transfer"
)

// Env is what the executor needs from the gateway.
type Env struct {
	Media        media.LegConfig
	Answer       media.AnswerConfig // codecs, ptimes and local address; ports filled per call
	Agents       map[string]agent.Agent
	DefaultAgent string
	// Plans routes calls; nil sends every call to DefaultAgent.
	Plans PlanSource
	// Admit takes the call's slots in the concurrency limits before it is
	// answered: release frees them at hang-up; a non-zero code refuses the
	// call with that SIP status. Nil admits every call.
	Admit func(ctx context.Context, c CallSnapshot) (release func(), code int)
	// LimitRetryAfter, when positive, goes with a limit refusal as
	// Retry-After (whole seconds), so carriers back off instead of retrying.
	LimitRetryAfter time.Duration
	Observer        Observer // nil: nobody listens
	// Transfers carries out cold and warm transfers; nil refuses them.
	Transfers *transfer.Service
	Ringing   bool
	Log       *slog.Logger
	// TrunkSRTP is the media encryption policy of each trunk, by name; calls from other
	// sources use Answer.SRTP.
	TrunkSRTP map[string]media.SRTPPolicy
}

// PlanSource hands out the current dialplan; *Live is one.
type PlanSource interface{ Current() *Plan }

// Observer hears about calls: metrics, the fleet registry, CDR sinks. Calls
// come from call goroutines and must return quickly.
type Observer interface {
	CallStarted(c CallSnapshot)
	CallUpdated(c CallSnapshot)
	AgentStarted(name string, connect time.Duration, err error)
	AgentFailed(name string, err error)
	CallEnded(c CallSnapshot, cdr CDR)
}

// Executor runs inbound calls.
type Executor struct {
	env    Env
	active atomic.Int64
	calls  sync.Map // call id -> *liveCall
}

// NewExecutor returns an executor for env.
func NewExecutor(env Env) (*Executor, error) {
	if env.Log == nil {
		env.Log = slog.Default()
	}
	if env.Plans == nil {
		plan, err := BuiltinPlan(env.DefaultAgent)
		if err != nil {
			return nil, err
		}
		env.Plans = fixedPlan{plan}
	}
	return &Executor{env: env}, nil
}

type fixedPlan struct{ p *Plan }

func (f fixedPlan) Current() *Plan { return f.p }

// BuiltinPlan is the plan of a gateway without a dialplan file: answer and
// hand the call to agentName.
func BuiltinPlan(agentName string) (*Plan, error) {
	src := fmt.Sprintf("rules:\n  - name: default\n    default: true\n    actions:\n      - answer\n      - agent: {name: %q}\n", agentName)
	return Load("(built-in)", []byte(src), ".", LoadOptions{})
}

// Active counts calls the executor is running.
func (e *Executor) Active() int { return int(e.active.Load()) }

// End reasons, as logged and recorded.
const (
	EndRemoteBye   = "remote_bye"
	EndLocalBye    = "local_bye"
	EndAgentHangup = "agent_hangup"
	EndAdminHangup = "admin_hangup"
	EndRTPTimeout  = "rtp_timeout"
	EndCancelled   = "cancelled"
	EndRejected    = "rejected"
	EndLimit       = "limit"
	EndNoAck       = "no_ack"
	EndAgentFailed = "agent_failed"
	EndFailed      = "failed"
	EndTransferred = "transferred"
	EndShutdown    = "shutdown"
)

func (e *Executor) observe(f func(Observer)) {
	if e.env.Observer != nil {
		f(e.env.Observer)
	}
}

// HandleCall is the sip.CallHandler: it owns the call until it ends.
func (e *Executor) HandleCall(ctx context.Context, call *sip.InboundCall) {
	e.active.Add(1)
	rec := &record{start: time.Now(), call: call, log: call.Log.With("from", call.From, "to", call.To, "trunk", call.Trunk)}
	// Routed before the log line, so that a call logged as received keeps
	// the plan it found even if a reload follows at once.
	plan := e.env.Plans.Current()
	rule := plan.Route(Facts{To: call.To, From: call.From, Trunk: call.Trunk, CallID: call.CallID, Headers: call.Header, At: rec.start})
	rec.rule = rule.Name
	rec.log.Info("call received", "source", call.Source.String(), "transport", call.Transport, "rule", rule.Name)

	runCtx, end := context.WithCancelCause(ctx)
	live := &liveCall{end: end, snap: CallSnapshot{ID: call.CallID, Trunk: call.Trunk, From: call.From, To: call.To,
		State: StateRinging, Rule: rule.Name, Started: rec.start}}
	e.calls.Store(call.CallID, live)
	e.observe(func(o Observer) { o.CallStarted(live.snapshot()) })
	defer func() {
		e.calls.Delete(call.CallID)
		e.active.Add(-1)
		cdr := rec.cdr(time.Now())
		rec.logEnd(cdr, e.Active())
		snap := live.update(func(s *CallSnapshot) { s.State = StateEnding })
		e.observe(func(o Observer) { o.CallEnded(snap, cdr) })
	}()

	if e.env.Admit != nil {
		release, code := e.env.Admit(ctx, live.snapshot())
		if code != 0 {
			e.reject(call, rec, code, "", e.env.LimitRetryAfter)
			rec.reason = EndLimit
			return
		}
		defer release()
	}

	// The caller hanging up stops the plan wherever it is.
	stop := context.AfterFunc(call.Context(), func() { end(errRemoteHangup) })
	defer stop()
	mediaCtx, stopMedia := context.WithCancel(ctx)
	defer stopMedia()
	rt := &callRuntime{e: e, call: call, rec: rec, live: live, end: end, mediaCtx: mediaCtx, sw: &listenerSwitch{digits: &rec.digits}}
	vars := Vars{Caller: call.From, Called: call.To, Trunk: call.Trunk, CallID: call.CallID, Header: call.Header}
	out, err := plan.Run(runCtx, rule, rt, vars)
	rec.outcome = out
	// A plan stopped by its context (caller gone, admin, shutdown) has not
	// failed; finish says why it ended.
	if err != nil && out.Ended != EndedCtx {
		rec.log.Warn("dialplan failed", "rule", rule.Name, "error", err)
	}
	e.finish(ctx, runCtx, rt, out)
	stopMedia()
	if rt.leg != nil {
		rt.leg.Close()
	}
}

// finish settles the end reason and makes sure the far end knows the call
// is over.
func (e *Executor) finish(ctx, runCtx context.Context, rt *callRuntime, out Outcome) {
	rec, call := rt.rec, rt.call
	if rt.unanswerable {
		return
	}
	cause := sip.CauseNormal
	switch out.Ended {
	case EndedReject, EndedHangup, EndedCompleted, EndedAgentHangup:
		// Runtime.Hangup/Reject already set the reason and told the far end.
		if rec.reason == "" {
			rec.reason = EndLocalBye
		}
		return
	case EndedTransferred:
		rec.reason = EndTransferred
		return
	case EndedFailed:
		rec.reason, cause = EndFailed, sip.CauseError
		if rec.agent != "" {
			rec.reason = EndAgentFailed
		}
	case EndedCtx:
		var req *endRequest
		switch err := context.Cause(runCtx); {
		case rec.reason != "": // answer already settled it (cancelled, no ACK)
			return
		case errors.Is(err, errRemoteHangup):
			rec.reason = EndRemoteBye
			if errors.Is(call.Err(), sip.ErrCanceled) {
				rec.reason = EndCancelled
			}
			return
		case errors.Is(err, errRTPTimeout):
			rec.reason, cause = EndRTPTimeout, sip.CauseRTPTimeout
		case errors.As(err, &req):
			rec.reason = req.reason
			rec.log.Info("call ended by request", "detail", req.detail)
		case ctx.Err() != nil:
			rec.reason, cause = EndShutdown, sip.CauseShutdown
		default:
			rec.reason, cause = EndFailed, sip.CauseError
		}
	}
	// A far-end BYE may have raced whatever ended the plan: the BYE wins.
	if call.Err() != nil {
		rec.reason = EndRemoteBye
		return
	}
	if !rt.final {
		code := 500
		if rec.reason == EndShutdown {
			code = 503
		}
		rt.final = true
		e.reject(call, rec, code, "")
		return
	}
	bctx, cancel := byeContext(ctx)
	defer cancel()
	if err := call.Hangup(bctx, cause.Reason()); err != nil {
		rec.log.Warn("hangup failed", "error", err)
	}
}

// answer negotiates media, opens the leg and answers the INVITE. On failure
// it has rejected the call and released everything.
func (e *Executor) answer(ctx context.Context, call *sip.InboundCall, rec *record, sw *listenerSwitch) (*media.Leg, media.Negotiated, bool) {
	cfg := e.env.Answer
	cfg.SessionID = rand.Uint64() >> 1
	cfg.SessionVersion = 1
	if p, ok := e.env.TrunkSRTP[call.Trunk]; ok && call.Trunk != "" {
		cfg.SRTP = p
	}
	if cfg.SRTP != media.SRTPOff {
		// One key for the call: the answer, a late offer and re-INVITE answers repeat it.
		cfg.SRTPKey = media.NewSRTPKey()
	}
	var offer *media.Description
	payloadTypes := []uint8{0, 8, lateOfferEventPT}
	if len(call.Offer) > 0 {
		var err error
		offer, err = media.ParseDescription(call.Offer)
		if err != nil {
			rec.log.Warn("unparsable SDP offer", "error", err)
			e.reject(call, rec, 400, "")
			return nil, media.Negotiated{}, false
		}
		// Check the offer before taking ports; the discard port stands in
		// for the leg's until it is open.
		probe := cfg
		probe.LocalPort = 9
		neg, _, err := media.Negotiate(offer, probe)
		if err != nil {
			rec.log.Warn("offer not acceptable", "error", err)
			var na *media.NotAcceptableError
			reason := ""
			if errors.As(err, &na) {
				reason = na.Reason
			}
			e.reject(call, rec, 488, reason)
			return nil, media.Negotiated{}, false
		}
		payloadTypes = []uint8{neg.Codec.PayloadType}
		if neg.HasTelephoneEvent {
			payloadTypes = append(payloadTypes, neg.TelephoneEvent)
		}
	}
	legCfg := e.env.Media
	legCfg.Logger = rec.log
	leg, err := media.OpenLeg(legCfg, payloadTypes)
	if err != nil {
		rec.log.Error("no RTP port for call", "error", err)
		e.reject(call, rec, 503, "")
		return nil, media.Negotiated{}, false
	}
	cfg.LocalPort = leg.LocalPort()
	var neg media.Negotiated
	var body []byte
	if offer != nil {
		neg, body, err = media.Negotiate(offer, cfg)
	} else {
		body = media.BuildOffer(cfg, lateOfferEventPT)
	}
	if err != nil { // cannot happen: the same offer negotiated above
		leg.Close()
		e.reject(call, rec, 500, "")
		return nil, media.Negotiated{}, false
	}
	if e.env.Ringing {
		_ = call.Ringing()
	}
	ackBody, err := call.Answer(ctx, body)
	if err != nil {
		leg.Close()
		switch {
		case errors.Is(err, sip.ErrCanceled):
			rec.reason = EndCancelled
		case errors.Is(err, sip.ErrNoAck):
			rec.reason = EndNoAck
		default:
			rec.reason = EndCancelled
			rec.log.Warn("answer failed", "error", err)
		}
		return nil, media.Negotiated{}, false
	}
	rec.answered = time.Now()
	if offer == nil {
		neg, err = e.lateAnswer(ackBody, cfg)
		if err != nil {
			rec.log.Warn("late-offer ACK carried no usable answer", "error", err)
			rec.reason = EndRejected
			bctx, cancel := byeContext(ctx)
			_ = call.Hangup(bctx, sip.Reason{Protocol: "SIP", Cause: 488, Text: "Not Acceptable Here"})
			cancel()
			leg.Close()
			return nil, media.Negotiated{}, false
		}
	}
	call.OnOffer(e.reoffer(leg, cfg, rec, sw, neg.Hold))
	call.OnInfo(func(contentType string, body []byte) int {
		digit, duration, err := sip.ParseDTMFInfo(contentType, body)
		if err != nil {
			rec.log.Debug("INFO without DTMF", "error", err)
			return 415
		}
		sw.OnDTMF(digit, duration)
		return 200
	})
	return leg, neg, true
}

// lateOfferEventPT is the telephone-event payload type we offer ourselves.
const lateOfferEventPT = 101

func (e *Executor) lateAnswer(ack []byte, cfg media.AnswerConfig) (media.Negotiated, error) {
	if len(ack) == 0 {
		return media.Negotiated{}, errors.New("empty ACK body")
	}
	desc, err := media.ParseDescription(ack)
	if err != nil {
		return media.Negotiated{}, err
	}
	return media.ApplyAnswer(desc, cfg)
}

// reoffer answers re-INVITEs: hold, resume, or a moved RTP address.
func (e *Executor) reoffer(leg *media.Leg, cfg media.AnswerConfig, rec *record, sw *listenerSwitch, held bool) sip.OfferHandler {
	var version atomic.Uint64
	version.Store(cfg.SessionVersion)
	var hold atomic.Bool
	hold.Store(held)
	return func(offer []byte) ([]byte, int, string) {
		c := cfg
		c.SessionVersion = version.Add(1)
		if len(offer) == 0 {
			return media.BuildOffer(c, lateOfferEventPT), 0, ""
		}
		desc, err := media.ParseDescription(offer)
		if err != nil {
			return nil, 400, ""
		}
		neg, answer, err := media.Negotiate(desc, c)
		if err != nil {
			var na *media.NotAcceptableError
			if errors.As(err, &na) {
				return nil, 488, na.Reason
			}
			return nil, 488, ""
		}
		rec.log.Info("re-INVITE", "hold", neg.Hold, "direction", neg.LocalDirection.String(), "remote", neg.Remote.String())
		leg.Update(neg)
		if hold.Swap(neg.Hold) != neg.Hold {
			kind := agent.EventResume
			if neg.Hold {
				kind = agent.EventHold
			}
			sw.OnEvent(agent.Event{Kind: kind})
		}
		return answer, 0, ""
	}
}

// reject refuses the call; retryAfter (optional, whole seconds) asks the
// caller to wait before trying again.
func (e *Executor) reject(call *sip.InboundCall, rec *record, code int, reason string, retryAfter ...time.Duration) {
	rec.reason = EndRejected
	rec.status = code
	var err error
	if len(retryAfter) > 0 && retryAfter[0] >= time.Second {
		err = call.Reject(code, reason, sip.RetryAfter(retryAfter[0]))
	} else {
		err = call.Reject(code, reason)
	}
	if err != nil {
		rec.log.Debug("reject failed", "error", err)
	}
}

// byeWait bounds how long a hang-up waits for the far end to answer its BYE:
// a caller that vanished must not hold the call's record, or a draining
// gateway's exit, for the 32 s of a full SIP transaction timeout.
const byeWait = 5 * time.Second

// byeContext outlives ctx (the BYE must go out even when ctx has ended) but
// not byeWait.
func byeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), byeWait)
}
