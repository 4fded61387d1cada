package sip

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

	// Trunk places the call through a carrier: its credentials (unless
	// Username/Password are set), From user and domain, transport and
	// outbound proxy. With a trunk, a target without "sip:" is a number
	// at the trunk's host.
	Trunk *Trunk
	// Monitor, with Trunk, sends the INVITE to the trunk's current address.
	Monitor *TrunkMonitor
	// CallerID (a number) and CallerName are the calling party: in From,
	// or in P-Asserted-Identity when the trunk's CallerIDMode is "pai".
	CallerID, CallerName string
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
// answer, answering 401 and 407 digest challenges. Cancelling ctx before the
// answer sends CANCEL; a 200 that crosses the CANCEL is ACKed and ended with
// BYE, and Dial returns an error.
func (s *Server) Dial(ctx context.Context, target string, offer []byte, opts DialOptions) (*OutboundCall, error) {
	req, cred, err := s.newInvite(ctx, target, offer, opts)
	if err != nil {
		return nil, err
	}
	dlg, err := s.invite(ctx, req, cred, opts.OnProgress)
	if err == nil && ctx.Err() != nil {
		s.endUnwanted(ctx, dlg)
		return nil, fmt.Errorf("sip: INVITE %s: answered after CANCEL, ended with BYE: %w", target, ctx.Err())
	}
	if err != nil {
		var rejected *sipgo.ErrDialogResponse
		if errors.As(err, &rejected) {
			return nil, &ResponseError{Code: rejected.Res.StatusCode, Reason: rejected.Res.Reason}
		}
		return nil, fmt.Errorf("sip: INVITE %s: %w", target, err)
	}
	req = dlg.InviteRequest // the last try, with its CSeq
	callID := req.CallID().Value()
	call := &OutboundCall{CallID: callID, dlg: dlg}
	call.dialogCore = newDialogCore(s, s.log.With("call_id", callID), req.Transport())
	call.ctx, call.cancel = context.WithCancel(dlg.Context())
	call.done = call.ctx.Done()
	call.answered = call.up.Load
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

// invite sends req and waits for its final answer, sending it again with
// credentials after a 401 or 407 (our digest, not sipgo's). It returns the
// dialog of the last try.
func (s *Server) invite(ctx context.Context, req *sipmsg.Request, cred credentials, onProgress func(int, string)) (*sipgo.DialogClientSession, error) {
	auth := newAuthState(cred)
	auth.begin()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dlg, err := s.dialog.WriteInvite(ctx, req)
		if err != nil {
			return nil, err
		}
		err = s.waitAnswer(ctx, dlg, onProgress)
		var rejected *sipgo.ErrDialogResponse
		if err == nil || ctx.Err() != nil || !errors.As(err, &rejected) || !isChallenge(rejected.Res) {
			return dlg, err
		}
		if aerr := auth.answer(rejected.Res); aerr != nil {
			// No (more) credentials to give: the challenge is the answer.
			s.log.Debug("sip: INVITE challenge not answered", "call_id", req.CallID().Value(), "error", aerr)
			return dlg, err
		}
		// The retry: same dialog identifiers, next CSeq, a new branch.
		req = req.Clone()
		req.RemoveHeader("Via")
		req.CSeq().SeqNo++
		if err := auth.apply(req); err != nil {
			return dlg, err
		}
	}
}

// waitAnswer waits for the INVITE's final response. sipgo's own CANCEL
// (WaitAnswer's context ending) stops reading the INVITE transaction once
// the CANCEL is answered, so a 200 that crosses the CANCEL is never ACKed
// nor ended and the far end keeps a call up. Here WaitAnswer keeps reading
// while we send the CANCEL ourselves; a 2xx that still comes is returned
// (nil error) for Dial to ACK and BYE.
func (s *Server) waitAnswer(ctx context.Context, dlg *sipgo.DialogClientSession, onProgress func(int, string)) error {
	waitCtx, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	cancelReq := newCancel(dlg.InviteRequest) // complete now: WaitAnswer does not touch it
	provisional := make(chan struct{})
	var once sync.Once
	result := make(chan error, 1)
	go func() {
		result <- dlg.WaitAnswer(waitCtx, sipgo.AnswerOptions{OnResponse: func(res *sipmsg.Response) error {
			if res.IsProvisional() {
				once.Do(func() { close(provisional) })
				if onProgress != nil {
					onProgress(res.StatusCode, res.Reason)
				}
			}
			return nil
		}})
	}()
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
	}
	// RFC 3261 9.1: no CANCEL before a provisional response (the INVITE
	// transaction's Timer B ends the wait when none comes).
	select {
	case err := <-result:
		return err
	case <-provisional:
	}
	cancelCtx, stopCancel := context.WithTimeout(context.WithoutCancel(ctx), 64*sipmsg.T1)
	sent := make(chan struct{})
	go func() { defer close(sent); s.sendCancel(cancelCtx, cancelReq) }()
	defer func() { stopCancel(); <-sent }()
	// The INVITE's final answer: 487, or a 2xx that crossed the CANCEL.
	// RFC 3261 9.1: give up after 64*T1 without one.
	timer := time.NewTimer(64 * sipmsg.T1)
	defer timer.Stop()
	select {
	case err := <-result:
		return err
	case <-timer.C:
		stop(sipgo.WaitAnswerForceCancelErr) // WaitAnswer returns without its own CANCEL
		<-result
		return fmt.Errorf("no final response to the cancelled INVITE: %w", ctx.Err())
	}
}

// newCancel builds the CANCEL of an INVITE (RFC 3261 9.1): its top Via
// (branch), Request-URI, From, To, Call-ID, Route and CSeq number.
func newCancel(inv *sipmsg.Request) *sipmsg.Request {
	c := sipmsg.NewRequest(sipmsg.CANCEL, *inv.Recipient.Clone())
	c.AppendHeader(sipmsg.HeaderClone(inv.Via()))
	sipmsg.CopyHeaders("Route", inv, c)
	maxFwd := sipmsg.MaxForwardsHeader(70)
	c.AppendHeader(&maxFwd)
	c.AppendHeader(sipmsg.HeaderClone(inv.From()))
	c.AppendHeader(sipmsg.HeaderClone(inv.To()))
	c.AppendHeader(sipmsg.HeaderClone(inv.CallID()))
	c.AppendHeader(&sipmsg.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sipmsg.CANCEL})
	c.SetTransport(inv.Transport())
	c.SetDestination(inv.Destination())
	c.Laddr = inv.Laddr
	return c
}

func (s *Server) sendCancel(ctx context.Context, req *sipmsg.Request) {
	res, err := s.client.Do(ctx, req)
	switch {
	case err != nil:
		s.log.Debug("sip: CANCEL failed", "call_id", req.CallID().Value(), "error", err)
	case res.StatusCode != 200: // 481: a 2xx crossed it, waitAnswer gets it
		s.log.Debug("sip: CANCEL refused", "call_id", req.CallID().Value(), "code", res.StatusCode)
	}
}

// endUnwanted ACKs a 2xx that came after our CANCEL (else the far end
// retransmits it for 32 s) and ends that call with BYE at once.
func (s *Server) endUnwanted(ctx context.Context, dlg *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 32*time.Second)
	defer cancel()
	log := s.log.With("call_id", dlg.InviteRequest.CallID().Value())
	log.Info("sip: INVITE answered after CANCEL; sending ACK and BYE")
	if err := dlg.Ack(ctx); err != nil {
		log.Warn("sip: ACK of the unwanted answer failed", "error", err)
		return
	}
	bye := sipmsg.NewRequest(sipmsg.BYE, dlg.InviteRequest.Recipient)
	if cont := dlg.InviteResponse.Contact(); cont != nil {
		bye = sipmsg.NewRequest(sipmsg.BYE, cont.Address)
	}
	bye.AppendHeader(Reason{Protocol: "SIP", Cause: 487, Text: "Request Terminated"}.header())
	if err := dlg.WriteBye(ctx, bye); err != nil {
		log.Warn("sip: BYE of the unwanted answer failed", "error", err)
	}
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
		c.reinviteAcked(cseq.SeqNo)
	}
}

func (c *OutboundCall) onBye(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c.setEndCause(ErrRemoteHangup)
	if err := c.dlg.ReadBye(req, tx); err != nil {
		c.srv.respond(tx, req, 500, "Server Internal Error")
	}
}
