package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
)

// Headers the human's leg carries, so whoever answers knows the call.
const (
	HeaderCallID  = "X-Switchboard-Call-ID"
	HeaderContext = "X-Switchboard-Context"
)

// maxContext bounds the context a bot may put in a header.
const maxContext = 512

// DialRequest is a second leg to place.
type DialRequest struct {
	CallID     string // the caller's call id, for the human's X-header
	Context    string // what the bot wants the human to know
	CallerID   string // the original caller's number
	CallerName string
	Headers    map[string]string
	Progress   func(Status)
}

// Leg is a leg we dialled: its dialog and its media.
type Leg struct {
	Call  *sip.OutboundCall
	Media *media.Leg
	neg   media.Negotiated
}

// Dial calls t and returns the answered leg, its media not yet started.
// Busy, declined and unanswered calls are errors carrying the SIP status
// (FailureCode); AnswerTimeout bounds the ringing.
func (s *Service) Dial(ctx context.Context, t Target, req DialRequest) (*Leg, error) {
	extra, err := customHeaders(req.Headers)
	if err != nil {
		return nil, err
	}
	extra = append(extra, diversion(t.Trunk)...)
	extra = append(extra, sipmsg.NewHeader(HeaderCallID, req.CallID))
	if c := req.Context; c != "" {
		if len(c) > maxContext {
			c = c[:maxContext]
		}
		if sip.CheckHeaderValue(c) == nil {
			extra = append(extra, sipmsg.NewHeader(HeaderContext, c))
		}
	}
	ml, err := media.OpenLeg(s.cfg.Media, []uint8{0, 8, eventPT})
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	offerCfg := s.cfg.Offer
	offerCfg.LocalPort = ml.LocalPort()
	offerCfg.SessionID = uint64(time.Now().UnixNano())
	if t.Trunk != nil {
		// The trunk's SDES-SRTP policy applies to the legs we place too.
		if offerCfg.SRTP, err = media.ParseSRTPPolicy(t.Trunk.SRTP); err != nil {
			ml.Close()
			return nil, fmt.Errorf("transfer: trunk %s: %w", t.Trunk.Name, err)
		}
		if offerCfg.SRTP != media.SRTPOff {
			offerCfg.SRTPKey = media.NewSRTPKey()
		}
	}
	opts := sip.DialOptions{Trunk: t.Trunk, Headers: extra, OnProgress: provisional(req.Progress)}
	if t.Trunk != nil && s.cfg.Monitor != nil {
		opts.Monitor = s.cfg.Monitor(t.Trunk.Name)
	}
	if s.cfg.CallerIDFromCaller {
		opts.CallerID, opts.CallerName = req.CallerID, req.CallerName
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.AnswerTimeout)
	defer cancel()
	call, err := s.cfg.Dialer.Dial(dctx, t.URI, media.BuildOffer(offerCfg, eventPT), opts)
	if err != nil {
		ml.Close()
		// Rang out: the CANCEL's 487 is our doing, not the human's answer.
		if errors.Is(dctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("transfer: %s did not answer within %s: %w", t.URI, s.cfg.AnswerTimeout, ErrNoAnswer)
		}
		return nil, fmt.Errorf("transfer: dial %s: %w", t.URI, err)
	}
	leg := &Leg{Call: call, Media: ml}
	desc, err := media.ParseDescription(call.Answer)
	if err == nil {
		leg.neg, err = media.ApplyAnswer(desc, offerCfg)
	}
	if err != nil {
		leg.Hangup(ctx, sip.Reason{Protocol: "SIP", Cause: 488, Text: "Not Acceptable Here"})
		return nil, fmt.Errorf("transfer: %s answered with unusable SDP: %w", t.URI, err)
	}
	return leg, nil
}

// ErrNoAnswer is wrapped when the dialled leg rang out.
var ErrNoAnswer = errors.New("transfer: no answer")

// eventPT is the telephone-event payload type we offer.
const eventPT = 101

// Start runs the leg's media; sink hears the human.
func (l *Leg) Start(ctx context.Context, sink media.Sink) error {
	return l.Media.Start(ctx, l.neg, sink)
}

// Done is closed when the human's dialog ends.
func (l *Leg) Done() <-chan struct{} { return l.Call.Done() }

// Hangup ends the leg: BYE (bounded), then its media.
func (l *Leg) Hangup(ctx context.Context, reason sip.Reason) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = l.Call.Hangup(ctx, reason)
	l.Media.Close()
}
