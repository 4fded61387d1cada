package sip

import (
	"context"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// serveInbound turns a dialog-creating INVITE into an InboundCall, hands it
// to the handler and guarantees that nothing outlives the handler: a final
// response, a BYE for an answered call, and the dialog entry removed.
func (s *Server) serveInbound(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if body := req.Body(); len(body) > 0 {
		if ct := req.ContentType(); ct == nil || !isSDP(ct.Value()) {
			s.respond(tx, req, 415, "Unsupported Media Type", sipmsg.NewHeader("Accept", "application/sdp"))
			return
		}
	}
	dlg, err := s.dialog.ReadInvite(req, tx)
	if err != nil {
		s.respond(tx, req, 400, "Bad Request")
		return
	}
	s.respond(tx, req, 100, "Trying")

	call := &InboundCall{
		CallID:     req.CallID().Value(),
		RequestURI: req.Recipient.String(),
		To:         req.Recipient.User,
		Source:     sourceAddr(req),
		Trunk:      s.guard.trunkName(sourceAddr(req).Addr()),
		Transport:  req.Transport(),
		Offer:      req.Body(),
		dlg:        dlg,
		tx:         tx,
		invite:     dlg.InviteRequest,
		ackBody:    make(chan []byte, 1),
	}
	if from := req.From(); from != nil {
		call.From = from.Address.User
		call.FromDisplay = from.DisplayName
	}
	if to := req.To(); to != nil && call.To == "" {
		call.To = to.Address.User
	}
	call.dialogCore = newDialogCore(s, s.log.With("call_id", call.CallID), call.Transport)
	call.ctx, call.cancel = context.WithCancel(dlg.Context())
	call.done = call.ctx.Done()
	call.answered = call.answerd.Load

	s.dialogs.Store(dlg.ID, dialogEntry(call))
	s.active.Add(1)
	defer func() {
		s.retire(dlg.ID, call.dialogCore)
		s.active.Add(-1)
		dlg.Close()
		call.cancel()
	}()

	// The call's context ends with the dialog or with the server.
	ctx, cancel := context.WithCancel(call.ctx)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()
	s.handler(ctx, call)

	if !call.final.Load() {
		call.Log.Error("call handler returned without answering; rejecting")
		_ = call.Reject(500, "")
		return
	}
	if call.answerd.Load() {
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = call.Hangup(hctx, CauseNormal.Reason())
		hcancel()
	}
}

func isSDP(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "application/sdp")
}
