package sip

import (
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// onReinvite answers an offer inside an established dialog (hold, resume, a
// moved RTP address) through the call's OfferHandler.
func (c *dialogCore) onReinvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c.mu.Lock()
	h := c.offerFn
	busy := c.reinvBsy
	if !busy {
		c.reinvBsy = true
	}
	c.mu.Unlock()
	if busy {
		c.srv.respond(tx, req, 491, "Request Pending", sipmsg.NewHeader("Retry-After", "1"))
		return
	}
	defer func() { c.mu.Lock(); c.reinvBsy = false; c.mu.Unlock() }()

	if !c.answered() || h == nil {
		c.srv.respond(tx, req, 491, "Request Pending", sipmsg.NewHeader("Retry-After", "1"))
		return
	}
	if ct := req.ContentType(); len(req.Body()) > 0 && (ct == nil || !isSDP(ct.Value())) {
		c.srv.respond(tx, req, 415, "Unsupported Media Type", sipmsg.NewHeader("Accept", "application/sdp"))
		return
	}
	answer, status, reason := h(req.Body())
	if status >= 300 {
		res := sipmsg.NewResponseFromRequest(req, status, statusText(status), nil)
		if reason != "" && CheckHeaderValue(reason) == nil {
			res.AppendHeader(warningHeader(304, c.srv.cfg.PublicHost, reason))
		}
		c.srv.decorate(res)
		_ = tx.Respond(res)
		return
	}
	res := sipmsg.NewSDPResponseFromRequest(req, answer)
	contact := c.srv.contact(c.transport)
	res.AppendHeader(&contact)
	c.srv.decorate(res)
	c.respond2xxUntilAck(req, tx, res)
}

// respond2xxUntilAck sends a 2xx to a re-INVITE and, on unreliable
// transports, retransmits it (T1 doubling to T2) until the ACK or 64*T1.
func (c *dialogCore) respond2xxUntilAck(req *sipmsg.Request, tx sipmsg.ServerTransaction, res *sipmsg.Response) {
	if err := tx.Respond(res); err != nil {
		c.Log.Debug("re-INVITE 200 not sent", "error", err)
		return
	}
	want := req.CSeq().SeqNo
	reliable := sipmsg.IsReliable(req.Transport())
	interval := sipmsg.T1
	deadline := time.NewTimer(64 * sipmsg.T1)
	defer deadline.Stop()
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	for {
		select {
		case seq := <-c.reinvAck:
			if seq == want {
				return
			}
		case <-retransmit.C:
			if !reliable {
				_ = tx.Respond(res)
			}
			interval = min(2*interval, sipmsg.T2)
			retransmit.Reset(interval)
		case <-deadline.C:
			c.Log.Warn("no ACK for re-INVITE 200 OK")
			return
		case <-c.done:
			return
		}
	}
}
