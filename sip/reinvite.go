package sip

import (
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// onReinvite answers an offer inside an established dialog (hold, resume, a
// moved RTP address) through the call's OfferHandler.
func (c *dialogCore) onReinvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	seq := req.CSeq().SeqNo
	c.mu.Lock()
	h := c.offerFn
	busy, stale := c.reinvBsy, seq <= c.reinvLast
	if !busy && !stale {
		c.reinvBsy = true
		c.reinvLast = seq
		c.wakeAckWaitersLocked()
	}
	c.mu.Unlock()
	if busy || stale {
		// RFC 3261 §14.2 and §12.2.2: an INVITE overlapping one we have not
		// answered yet, or one out of CSeq order, gets 500 with Retry-After.
		c.srv.respond(tx, req, 500, "Server Internal Error", sipmsg.NewHeader("Retry-After", "1"))
		return
	}
	finished := false
	finish := func() {
		if !finished {
			finished = true
			c.mu.Lock()
			c.reinvBsy = false
			c.mu.Unlock()
		}
	}
	defer finish()

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
	if err := tx.Respond(res); err != nil {
		c.Log.Debug("re-INVITE 200 not sent", "error", err)
		return
	}
	// The final response is out: the far end may send its ACK and its next
	// re-INVITE back to back, and sipgo may hand them to us in either order.
	finish()
	c.retransmit2xxUntilAck(req, tx, res)
}

// reinviteAcked records the ACK for a re-INVITE's 2xx.
func (c *dialogCore) reinviteAcked(seq uint32) {
	c.mu.Lock()
	if seq > c.reinvAcked {
		c.reinvAcked = seq
		c.wakeAckWaitersLocked()
	}
	c.mu.Unlock()
}

func (c *dialogCore) wakeAckWaitersLocked() {
	close(c.ackWake)
	c.ackWake = make(chan struct{})
}

// ackSettled reports whether the 2xx to re-INVITE seq needs no more
// retransmission: it was ACKed, or the far end has since sent a newer
// re-INVITE, which it may only do once it has our 2xx.
func (c *dialogCore) ackSettled(seq uint32) (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reinvAcked >= seq || c.reinvLast > seq, c.ackWake
}

// retransmit2xxUntilAck retransmits a re-INVITE's 2xx on unreliable
// transports (T1 doubling to T2) until the ACK or 64*T1.
func (c *dialogCore) retransmit2xxUntilAck(req *sipmsg.Request, tx sipmsg.ServerTransaction, res *sipmsg.Response) {
	want := req.CSeq().SeqNo
	reliable := sipmsg.IsReliable(req.Transport())
	interval := sipmsg.T1
	deadline := time.NewTimer(64 * sipmsg.T1)
	defer deadline.Stop()
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	for {
		settled, wake := c.ackSettled(want)
		if settled {
			return
		}
		select {
		case <-wake:
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
