package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// ReferOptions shape a REFER sent inside an answered inbound dialog.
type ReferOptions struct {
	// ReferTo is the SIP URI the far end is asked to call.
	ReferTo string
	// ReferredBy is our own URI; empty leaves the header out.
	ReferredBy string
	// Headers are added as given (Diversion, X- headers). The caller has
	// checked their values; Refer checks them again for CR/LF.
	Headers []sipmsg.Header
}

// ReferError is a REFER that did not lead to a transfer: the REFER itself
// was refused (Stage "refer") or the final NOTIFY sipfrag was not a 2xx
// (Stage "notify").
type ReferError struct {
	Stage  string
	Code   int
	Reason string
}

func (e *ReferError) Error() string {
	if e.Stage == "refer" {
		return fmt.Sprintf("sip: REFER refused: %d %s", e.Code, e.Reason)
	}
	return fmt.Sprintf("sip: transfer failed: %d %s", e.Code, e.Reason)
}

// ErrNoNotify is wrapped when the far end accepted a REFER but its final
// NOTIFY did not come before the context ended.
var ErrNoNotify = errors.New("sip: no final NOTIFY for REFER")

// referLinger keeps answering NOTIFYs for a REFER after the dialog ended:
// the far end usually sends its final NOTIFY after our BYE crossed it.
func referLinger() time.Duration { return 64 * sipmsg.T1 }

// Refer asks the far end to call opts.ReferTo (RFC 3515) and follows the
// implicit subscription: progress sees every sipfrag status, 1xx included.
// It returns nil once a NOTIFY reports a 2xx, a *ReferError when the REFER
// or the transfer failed, and an error wrapping ErrNoNotify when ctx ends
// first (the caller's timeout).
func (c *InboundCall) Refer(ctx context.Context, opts ReferOptions, progress func(code int, reason string)) error {
	if !c.answerd.Load() {
		return errors.New("sip: REFER before the call was answered")
	}
	for _, v := range []string{opts.ReferTo, opts.ReferredBy} {
		if err := CheckHeaderValue(v); err != nil {
			return fmt.Errorf("sip: REFER: %w", err)
		}
	}
	var referTo sipmsg.Uri
	if err := sipmsg.ParseUri(opts.ReferTo, &referTo); err != nil || referTo.Host == "" {
		return fmt.Errorf("sip: REFER: Refer-To %q is not a SIP URI", opts.ReferTo)
	}
	req := sipmsg.NewRequest(sipmsg.REFER, c.dlg.InviteRequest.Contact().Address)
	req.SetTransport(c.dlg.InviteRequest.Transport())
	req.AppendHeader(sipmsg.NewHeader("Refer-To", "<"+referTo.String()+">"))
	if opts.ReferredBy != "" {
		req.AppendHeader(sipmsg.NewHeader("Referred-By", "<"+opts.ReferredBy+">"))
	}
	for _, h := range opts.Headers {
		if err := CheckHeaderValue(h.Value()); err != nil {
			return fmt.Errorf("sip: REFER header %s: %w", h.Name(), err)
		}
		req.AppendHeader(h)
	}
	contact := c.srv.contact(c.transport)
	req.AppendHeader(&contact)

	sub := c.subscribe()
	defer c.unsubscribe(sub)
	res, err := c.dlg.Do(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("sip: REFER unanswered: %w", errors.Join(ErrNoNotify, ctx.Err()))
		}
		return fmt.Errorf("sip: REFER: %w", err)
	}
	if !res.IsSuccess() {
		return &ReferError{Stage: "refer", Code: res.StatusCode, Reason: res.Reason}
	}
	// The subscription's id is the REFER's CSeq (RFC 3515 §2.4.6).
	c.mu.Lock()
	sub.id = req.CSeq().SeqNo
	c.mu.Unlock()
	for {
		select {
		case n := <-sub.notes:
			if progress != nil {
				progress(n.code, n.reason)
			}
			switch {
			case n.code >= 200 && n.code < 300:
				return nil
			case n.code >= 300:
				return &ReferError{Stage: "notify", Code: n.code, Reason: n.reason}
			case n.terminated:
				// Subscription over without a final status: treat as unknown.
				return &ReferError{Stage: "notify", Code: 0, Reason: "subscription terminated without a final status"}
			}
		case <-ctx.Done():
			return fmt.Errorf("sip: REFER to %s: %w", referTo.String(), errors.Join(ErrNoNotify, ctx.Err()))
		case <-c.done:
			// The far end hung up: with many carriers that is the transfer
			// completing. A NOTIFY may still be on its way.
			select {
			case n := <-sub.notes:
				if n.code >= 200 && n.code < 300 {
					return nil
				}
				if n.code >= 300 {
					return &ReferError{Stage: "notify", Code: n.code, Reason: n.reason}
				}
			case <-time.After(sipmsg.T1):
			}
			return fmt.Errorf("sip: REFER: %w", ErrRemoteHangup)
		}
	}
}

// referNote is one NOTIFY's news.
type referNote struct {
	code       int
	reason     string
	terminated bool
}

// referSub is one REFER's implicit subscription.
type referSub struct {
	notes chan referNote
	id    uint32 // the REFER's CSeq, once its 2xx is in; guarded by the dialog's mu
}

func (c *dialogCore) subscribe() *referSub {
	sub := &referSub{notes: make(chan referNote, 16)}
	c.mu.Lock()
	c.referSubs = append(c.referSubs, sub)
	c.referred = true
	c.mu.Unlock()
	return sub
}

func (c *dialogCore) unsubscribe(sub *referSub) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.referSubs {
		if s == sub {
			c.referSubs = append(c.referSubs[:i], c.referSubs[i+1:]...)
			return
		}
	}
}

// onNotify answers NOTIFYs for our REFER subscriptions. Every NOTIFY for a
// refer event is answered 200, even one that matches no REFER any more.
func (s *Server) onNotify(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	d := s.lookup(req)
	if d == nil {
		s.respond(tx, req, 481, "Subscription Does Not Exist")
		return
	}
	n, ok := d.(interface {
		notifyRefer(*sipmsg.Request, func()) bool
	})
	if !ok {
		s.respond(tx, req, 481, "Subscription Does Not Exist")
		return
	}
	event, _ := parseEvent(headerValue(req, "Event"))
	if event != "refer" {
		s.respond(tx, req, 489, "Bad Event", sipmsg.NewHeader("Allow-Events", "refer"))
		return
	}
	if !n.notifyRefer(req, func() { s.respond(tx, req, 200, "OK") }) {
		s.respond(tx, req, 481, "Subscription Does Not Exist")
	}
}

// notifyRefer hands a NOTIFY's sipfrag to the REFER it belongs to, after
// calling accept (which answers 200): the REFER's waiter may hang up at
// once, and its BYE must not overtake that 200. It reports false, without
// accepting, for a dialog that sent no REFER.
func (c *dialogCore) notifyRefer(req *sipmsg.Request, accept func()) bool {
	_, id := parseEvent(headerValue(req, "Event"))
	code, reason, _ := ParseSipfrag(req.Body())
	state := strings.ToLower(strings.TrimSpace(headerValue(req, "Subscription-State")))
	note := referNote{code: code, reason: reason, terminated: strings.HasPrefix(state, "terminated")}
	c.mu.Lock()
	if !c.referred {
		c.mu.Unlock()
		return false
	}
	// Without an id the NOTIFY is for the first REFER (RFC 3515 §2.4.6). A
	// NOTIFY may also overtake the 202 to its REFER, whose id is then not
	// known yet: it goes to the REFER still waiting for its answer.
	var to *referSub
	for _, sub := range c.referSubs {
		if id == 0 || sub.id == id {
			to = sub
			break
		}
		if sub.id == 0 && to == nil {
			to = sub
		}
	}
	c.mu.Unlock()
	accept()
	if to != nil {
		select {
		case to.notes <- note:
		default:
		}
	}
	return true // even for a REFER that already finished: 200
}

// retire removes an ended dialog. One that sent a REFER keeps answering
// NOTIFYs for a while, for the final one that crosses our BYE.
func (s *Server) retire(id string, c *dialogCore) {
	c.mu.Lock()
	referred := c.referred
	c.mu.Unlock()
	if !referred {
		s.dialogs.Delete(id)
		return
	}
	entry := dialogEntry(lingerEntry{c})
	s.dialogs.Store(id, entry)
	time.AfterFunc(referLinger(), func() { s.dialogs.CompareAndDelete(id, entry) })
}

// lingerEntry is an ended dialog that answers NOTIFY 200 and every other
// request 481.
type lingerEntry struct{ c *dialogCore }

func (l lingerEntry) onAck(*sipmsg.Request) {}
func (l lingerEntry) onBye(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	l.c.srv.respond(tx, req, 481, "Call/Transaction Does Not Exist")
}
func (l lingerEntry) onReinvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	l.c.srv.respond(tx, req, 481, "Call/Transaction Does Not Exist")
}
func (l lingerEntry) onInfo(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	l.c.srv.respond(tx, req, 481, "Call/Transaction Does Not Exist")
}
func (l lingerEntry) notifyRefer(req *sipmsg.Request, accept func()) bool {
	return l.c.notifyRefer(req, accept)
}

// parseEvent splits an Event header ("refer;id=93809824") into the package
// name and the id parameter (0 when absent or not a number).
func parseEvent(v string) (event string, id uint32) {
	name, params, _ := strings.Cut(v, ";")
	event = strings.ToLower(strings.TrimSpace(name))
	for _, p := range strings.Split(params, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "id") {
			if n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 32); err == nil {
				id = uint32(n)
			}
		}
	}
	return event, id
}

// ParseSipfrag reads the status line of a message/sipfrag body (RFC 3420),
// e.g. "SIP/2.0 180 Ringing". ok is false when there is none.
func ParseSipfrag(body []byte) (code int, reason string, ok bool) {
	line := string(body)
	if i := strings.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	proto, rest, found := strings.Cut(strings.TrimSpace(line), " ")
	if !found || !strings.EqualFold(proto, "SIP/2.0") {
		return 0, "", false
	}
	num, reason, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(num)
	if err != nil || code < 100 || code > 699 {
		return 0, "", false
	}
	return code, strings.TrimSpace(reason), true
}
