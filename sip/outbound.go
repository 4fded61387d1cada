package sip

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// DialOptions shape an outbound INVITE.
type DialOptions struct {
	FromUser    string // caller id user part
	FromDisplay string
	// Username and Password answer a 401/407 digest challenge.
	Username, Password string
	Headers            []sipmsg.Header
	// OnProgress sees every provisional response (ringing, early media).
	OnProgress func(code int, reason string)
}

// ResponseError is a final non-2xx answer to an outbound INVITE.
type ResponseError struct {
	Code   int
	Reason string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("sip: call refused: %d %s", e.Code, e.Reason)
}

// OutboundCall is a dialog we created with INVITE.
type OutboundCall struct {
	CallID string
	// Answer is the SDP of the 2xx (the far end's answer to our offer).
	Answer []byte

	*dialogCore
	dlg *sipgo.DialogClientSession
	key string
	up  atomic.Bool
	// ctx is the dialog's context, also ended by us when a BYE fails
	// (sipgo's DialogClientSession.Close does not end the dialog).
	ctx    context.Context
	cancel context.CancelFunc
}

// Dial sends INVITE with offer to target (a SIP URI) and waits for the final
// answer. Cancelling ctx before the answer sends CANCEL.
func (s *Server) Dial(ctx context.Context, target string, offer []byte, opts DialOptions) (*OutboundCall, error) {
	var uri sipmsg.Uri
	if err := sipmsg.ParseUri(target, &uri); err != nil {
		return nil, fmt.Errorf("sip: bad target %q: %w", target, err)
	}
	for _, v := range []string{opts.FromUser, opts.FromDisplay} {
		if err := CheckHeaderValue(v); err != nil {
			return nil, err
		}
	}
	req := sipmsg.NewRequest(sipmsg.INVITE, uri)
	transport := "udp"
	if uri.UriParams != nil {
		if t, ok := uri.UriParams.Get("transport"); ok && t != "" {
			transport = t
		}
	}
	req.SetTransport(transport)
	fromUser := opts.FromUser
	if fromUser == "" {
		fromUser = "switchboard"
	}
	from := &sipmsg.FromHeader{
		DisplayName: opts.FromDisplay,
		Address:     sipmsg.Uri{Scheme: "sip", User: fromUser, Host: s.cfg.PublicHost},
		Params:      sipmsg.NewParams(),
	}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	req.AppendHeader(from)
	contact := s.contact(transport)
	req.AppendHeader(&contact)
	req.AppendHeader(sipmsg.NewHeader("Allow", allowedMethods))
	if s.cfg.UserAgent != "" {
		req.AppendHeader(sipmsg.NewHeader("User-Agent", s.cfg.UserAgent))
	}
	for _, h := range opts.Headers {
		if err := CheckHeaderValue(h.Value()); err != nil {
			return nil, err
		}
		req.AppendHeader(h)
	}
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)

	dlg, err := s.dialog.WriteInvite(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("sip: INVITE %s: %w", target, err)
	}
	callID := req.CallID().Value()
	call := &OutboundCall{CallID: callID, dlg: dlg}
	call.dialogCore = newDialogCore(s, s.log.With("call_id", callID), transport)
	call.ctx, call.cancel = context.WithCancel(dlg.Context())
	call.done = call.ctx.Done()
	call.answered = call.up.Load

	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{
		Username: opts.Username,
		Password: opts.Password,
		OnResponse: func(res *sipmsg.Response) error {
			if res.IsProvisional() && opts.OnProgress != nil {
				opts.OnProgress(res.StatusCode, res.Reason)
			}
			return nil
		},
	})
	if err != nil {
		dlg.Close()
		call.cancel()
		var rejected *sipgo.ErrDialogResponse
		if errors.As(err, &rejected) {
			return nil, &ResponseError{Code: rejected.Res.StatusCode, Reason: rejected.Res.Reason}
		}
		return nil, fmt.Errorf("sip: INVITE %s: %w", target, err)
	}
	call.Answer = dlg.InviteResponse.Body()
	call.up.Store(true)
	fromTag, _ := req.From().Params.Get("tag")
	toTag, _ := dlg.InviteResponse.To().Params.Get("tag")
	call.key = sipmsg.DialogIDMake(callID, fromTag, toTag)
	// Route the far end's requests before the ACK goes out: its BYE or
	// re-INVITE may follow the ACK at once.
	s.dialogs.Store(call.key, dialogEntry(call))
	if err := dlg.Ack(ctx); err != nil {
		s.dialogs.Delete(call.key)
		dlg.Close()
		call.cancel()
		return nil, fmt.Errorf("sip: ACK: %w", err)
	}
	s.active.Add(1)
	go func() {
		<-call.ctx.Done()
		s.dialogs.Delete(call.key)
		s.active.Add(-1)
	}()
	return call, nil
}

// Done is closed when the call has ended.
func (c *OutboundCall) Done() <-chan struct{} { return c.ctx.Done() }

// Err is ErrRemoteHangup after the far end's BYE.
func (c *OutboundCall) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endCause
}

// Hangup sends BYE with reason; safe to call more than once.
func (c *OutboundCall) Hangup(ctx context.Context, reason Reason) error {
	if c.dlg.LoadState() == sipmsg.DialogStateEnded || c.ctx.Err() != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 32*time.Second)
	defer cancel()
	bye := sipmsg.NewRequest(sipmsg.BYE, c.dlg.InviteRequest.Recipient)
	if cont := c.dlg.InviteResponse.Contact(); cont != nil {
		bye = sipmsg.NewRequest(sipmsg.BYE, cont.Address)
	}
	bye.AppendHeader(reason.header())
	err := c.dlg.WriteBye(ctx, bye)
	c.dlg.Close()
	if err != nil && c.dlg.LoadState() != sipmsg.DialogStateEnded {
		// The far end is gone or refuses: the dialog is over for us anyway.
		c.cancel()
		return fmt.Errorf("sip: BYE: %w", err)
	}
	return nil
}

// onAck matches ACKs to 2xx answers we gave to the far end's re-INVITEs.
func (c *OutboundCall) onAck(req *sipmsg.Request) {
	if cseq := req.CSeq(); cseq != nil {
		select {
		case c.reinvAck <- cseq.SeqNo:
		default:
		}
	}
}

func (c *OutboundCall) onBye(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c.setEndCause(ErrRemoteHangup)
	if err := c.dlg.ReadBye(req, tx); err != nil {
		c.srv.respond(tx, req, 500, "Server Internal Error")
	}
}
