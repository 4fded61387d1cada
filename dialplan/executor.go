package dialplan

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/rtp"
	"github.com/switchboard-voice/switchboard/sip"
)

// Env is what the executor needs from the gateway.
type Env struct {
	Media        media.LegConfig
	Answer       media.AnswerConfig // codecs, ptimes and local address; ports filled per call
	Agents       map[string]agent.Agent
	DefaultAgent string
	Ringing      bool
	Log          *slog.Logger
}

// Executor runs inbound calls.
type Executor struct {
	env    Env
	active atomic.Int64
}

// NewExecutor returns an executor for env.
func NewExecutor(env Env) *Executor {
	if env.Log == nil {
		env.Log = slog.Default()
	}
	return &Executor{env: env}
}

// Active counts calls the executor is running.
func (e *Executor) Active() int { return int(e.active.Load()) }

// End reasons, as logged and recorded.
const (
	EndRemoteBye   = "remote_bye"
	EndLocalBye    = "local_bye"
	EndAgentHangup = "agent_hangup"
	EndRTPTimeout  = "rtp_timeout"
	EndCancelled   = "cancelled"
	EndRejected    = "rejected"
	EndNoAck       = "no_ack"
	EndAgentFailed = "agent_failed"
	EndShutdown    = "shutdown"
)

// HandleCall is the sip.CallHandler: it owns the call until it ends.
func (e *Executor) HandleCall(ctx context.Context, call *sip.InboundCall) {
	e.active.Add(1)
	rec := &record{start: time.Now(), log: call.Log.With("from", call.From, "to", call.To)}
	defer func() {
		e.active.Add(-1)
		rec.finish(e.Active())
	}()
	rec.log.Info("call received", "source", call.Source.String(), "transport", call.Transport)

	leg, neg, ok := e.answer(ctx, call, rec)
	if !ok {
		return
	}
	defer leg.Close()
	rec.leg, rec.neg = leg, neg
	e.converse(ctx, call, leg, neg, rec)
}

// converse runs the agent until someone ends the call.
func (e *Executor) converse(ctx context.Context, call *sip.InboundCall, leg *media.Leg, neg media.Negotiated, rec *record) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(msg string, args ...any) {
		rec.log.Error(msg, args...)
		rec.reason = EndAgentFailed
		_ = call.Hangup(context.WithoutCancel(ctx), sip.CauseError.Reason())
	}
	sw := &listenerSwitch{}
	if err := leg.Start(ctx, neg, sw); err != nil {
		fail("media start failed", "error", err)
		return
	}
	name := e.env.DefaultAgent
	ag, found := e.env.Agents[name]
	rec.agent = name
	if !found {
		fail("agent not configured", "agent", name)
		return
	}
	cm := &callMedia{Leg: leg, log: rec.log, info: agent.Info{CallID: call.CallID, From: call.From, To: call.To}}
	session, err := ag.Start(ctx, cm)
	if err != nil {
		fail("agent start failed", "agent", name, "error", err)
		return
	}
	sw.set(session)
	defer sw.set(nil)
	call.OnInfo(func(contentType string, body []byte) int {
		digit, duration, err := sip.ParseDTMFInfo(contentType, body)
		if err != nil {
			rec.log.Debug("INFO without DTMF", "error", err)
			return 415
		}
		sw.OnDTMF(digit, duration)
		return 200
	})

	agentDone := make(chan struct{})
	var agentErr error
	go func() { defer close(agentDone); agentErr = session.Wait(ctx) }()
	mediaDone := make(chan error, 1)
	go func() { mediaDone <- leg.Wait() }()

	var cause sip.HangupCause
	select {
	case <-call.Done():
		rec.reason = EndRemoteBye
	case <-ctx.Done():
		rec.reason, cause = EndShutdown, sip.CauseShutdown
	case <-agentDone:
		switch err := agentErr; {
		case err == nil:
			rec.reason, cause = EndLocalBye, sip.CauseNormal
		case errors.Is(err, agent.ErrHangup):
			rec.reason, cause = EndAgentHangup, sip.CauseAgentHangup
		default:
			rec.log.Warn("agent failed", "agent", name, "error", err)
			rec.reason, cause = EndAgentFailed, sip.CauseError
		}
	case err := <-mediaDone:
		switch {
		case errors.Is(err, rtp.ErrInactive):
			rec.reason, cause = EndRTPTimeout, sip.CauseRTPTimeout
		case ctx.Err() != nil:
			rec.reason, cause = EndShutdown, sip.CauseShutdown
		default:
			rec.log.Warn("media stopped", "error", err)
			rec.reason, cause = EndLocalBye, sip.CauseError
		}
	}
	// A far-end BYE also ends ctx and the media, so any case may have woken
	// us: the BYE wins.
	select {
	case <-call.Done():
		rec.reason = EndRemoteBye
	default:
	}
	cancel()
	<-agentDone
	if rec.reason != EndRemoteBye {
		if err := call.Hangup(context.WithoutCancel(ctx), cause.Reason()); err != nil {
			rec.log.Warn("hangup failed", "error", err)
		}
	}
}

// answer negotiates media, opens the leg and answers the INVITE. On failure
// it has rejected the call and released everything.
func (e *Executor) answer(ctx context.Context, call *sip.InboundCall, rec *record) (*media.Leg, media.Negotiated, bool) {
	cfg := e.env.Answer
	cfg.SessionID = rand.Uint64() >> 1
	cfg.SessionVersion = 1
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
			_ = call.Hangup(context.WithoutCancel(ctx), sip.Reason{Protocol: "SIP", Cause: 488, Text: "Not Acceptable Here"})
			leg.Close()
			return nil, media.Negotiated{}, false
		}
	}
	call.OnOffer(e.reoffer(leg, cfg, rec))
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
func (e *Executor) reoffer(leg *media.Leg, cfg media.AnswerConfig, rec *record) sip.OfferHandler {
	var version atomic.Uint64
	version.Store(cfg.SessionVersion)
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
		return answer, 0, ""
	}
}

func (e *Executor) reject(call *sip.InboundCall, rec *record, code int, reason string) {
	rec.reason = EndRejected
	rec.status = code
	if err := call.Reject(code, reason); err != nil {
		rec.log.Debug("reject failed", "error", err)
	}
}
