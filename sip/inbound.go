package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// Errors that say how an inbound call ended or failed.
var (
	ErrCanceled      = errors.New("sip: caller cancelled before answer")
	ErrRemoteHangup  = errors.New("sip: far end hung up")
	ErrNoAck         = errors.New("sip: no ACK for our 200 OK")
	ErrAlreadyAnswer = errors.New("sip: INVITE already answered")
)

// OfferHandler answers an in-dialog offer (re-INVITE). It returns the answer
// SDP, or a SIP status (>= 300) and reason to refuse it. An empty offer asks
// for our current description (the far end will answer in its ACK).
type OfferHandler func(offer []byte) (answer []byte, status int, reason string)

// InfoHandler receives in-dialog INFO bodies (DTMF relay) and returns the
// status to answer with.
type InfoHandler func(contentType string, body []byte) int

// InboundCall is one inbound INVITE and, once answered, its dialog.
type InboundCall struct {
	// Parsed once at the edge: values, not strings to re-parse.
	CallID      string
	From        string // caller user part (number)
	FromDisplay string
	To          string // called user part (number)
	RequestURI  string
	Source      netip.AddrPort
	// Trunk names the trunk the call came from ("" for other allowed sources).
	Trunk     string
	Transport string
	// Offer is the INVITE's SDP, nil for a late-offer INVITE.
	Offer []byte

	*dialogCore
	dlg     *sipgo.DialogServerSession
	tx      sipmsg.ServerTransaction // the INVITE's
	invite  *sipmsg.Request
	answerd atomic.Bool
	final   atomic.Bool
	ackBody chan []byte

	// ctx is the dialog's context, also ended by us when a BYE fails
	// (sipgo's DialogServerSession.Close does not end the dialog).
	ctx    context.Context
	cancel context.CancelFunc

	// byeMu makes Hangup send one BYE: Answer's no-ACK path and
	// serveInbound's safety net may both hang up.
	byeMu   sync.Mutex
	byeSent bool
}

// dialogCore is what inbound and outbound dialogs share: the handlers for
// in-dialog requests and how the dialog ended.
type dialogCore struct {
	Log       *slog.Logger
	srv       *Server
	transport string
	done      <-chan struct{}
	answered  func() bool

	mu       sync.Mutex
	offerFn  OfferHandler
	infoFn   InfoHandler
	endCause error
	// reinvBsy is set from a re-INVITE's arrival until its final response
	// is sent: only then may the far end start another (RFC 3261 §14.2).
	reinvBsy bool
	// reinvLast is the highest re-INVITE CSeq seen, reinvAcked the highest
	// ACKed; ackWake is closed and replaced whenever either moves, waking
	// every goroutine that retransmits a 2xx.
	reinvLast  uint32
	reinvAcked uint32
	ackWake    chan struct{}
	// referSubs are the REFERs waiting for NOTIFYs; referred stays set
	// once any REFER was sent, so the dialog lingers for late NOTIFYs.
	referSubs []*referSub
	referred  bool
}

func newDialogCore(srv *Server, log *slog.Logger, transport string) *dialogCore {
	return &dialogCore{Log: log, srv: srv, transport: transport, ackWake: make(chan struct{})}
}

func (c *dialogCore) setEndCause(err error) {
	c.mu.Lock()
	if c.endCause == nil {
		c.endCause = err
	}
	c.mu.Unlock()
}

// Header returns the first value of an INVITE header, "" when absent.
func (c *InboundCall) Header(name string) string {
	if h := c.invite.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// Context ends when the call ends, whoever ends it.
func (c *InboundCall) Context() context.Context { return c.ctx }

// Done is closed when the call has ended.
func (c *InboundCall) Done() <-chan struct{} { return c.ctx.Done() }

// Err says why the call ended: ErrCanceled, ErrRemoteHangup, or nil while
// it is up or after we hung up.
func (c *InboundCall) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endCause != nil {
		return c.endCause
	}
	if errors.Is(context.Cause(c.dlg.Context()), sipmsg.ErrTransactionCanceled) {
		return ErrCanceled
	}
	return nil
}

// OnOffer installs the handler for re-INVITE offers (hold, resume, new address).
func (c *dialogCore) OnOffer(h OfferHandler) { c.mu.Lock(); c.offerFn = h; c.mu.Unlock() }

// OnInfo installs the handler for in-dialog INFO requests.
func (c *dialogCore) OnInfo(h InfoHandler) { c.mu.Lock(); c.infoFn = h; c.mu.Unlock() }

// Ringing sends 180 Ringing.
func (c *InboundCall) Ringing() error {
	if c.final.Load() {
		return ErrAlreadyAnswer
	}
	return c.dlg.Respond(180, "Ringing", nil)
}

// Reject answers the INVITE with a final failure status. reason may carry a
// Warning-style explanation for 488; it is checked for header injection.
func (c *InboundCall) Reject(code int, reason string, headers ...sipmsg.Header) error {
	if code < 300 || code > 699 {
		return fmt.Errorf("sip: reject with status %d", code)
	}
	if !c.final.CompareAndSwap(false, true) {
		return ErrAlreadyAnswer
	}
	if CheckHeaderValue(reason) != nil {
		reason = ""
	}
	res := sipmsg.NewResponseFromRequest(c.dlg.InviteRequest, code, statusText(code), nil)
	c.srv.decorate(res)
	if reason != "" && code == 488 {
		res.AppendHeader(warningHeader(304, c.srv.cfg.PublicHost, reason))
	}
	for _, h := range headers {
		res.AppendHeader(h)
	}
	// Not dlg.WriteResponse: it waits for the ACK (up to Timer H, 32 s),
	// which would hold a refused call in the registry and delay shutdown.
	// The transaction layer retransmits the response and absorbs the ACK.
	select {
	case <-c.tx.Done():
		err := c.tx.Err()
		if err == nil {
			err = sipmsg.ErrTransactionTerminated
		}
		return fmt.Errorf("sip: reject: %w", err)
	default:
	}
	if err := c.tx.Respond(res); err != nil {
		return fmt.Errorf("sip: reject: %w", err)
	}
	return nil
}

// Answer sends 200 OK with sdp and waits for the ACK. For a late-offer call
// sdp is our offer and the returned bytes are the answer from the ACK.
func (c *InboundCall) Answer(ctx context.Context, sdp []byte) ([]byte, error) {
	if !c.final.CompareAndSwap(false, true) {
		return nil, ErrAlreadyAnswer
	}
	res := sipmsg.NewSDPResponseFromRequest(c.dlg.InviteRequest, sdp)
	contact := c.srv.contact(c.transport)
	res.AppendHeader(&contact)
	res.AppendHeader(sipmsg.NewHeader("Allow", allowedMethods))
	c.srv.decorate(res)

	done := make(chan error, 1)
	go func() { done <- c.dlg.WriteResponse(res) }()
	// sipgo retransmits the 2xx until the ACK; it gives up on its own only
	// when the transaction dies, so bound the wait ourselves (64*T1).
	timer := time.NewTimer(64 * sipmsg.T1)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			if e := c.Err(); e != nil {
				return nil, e
			}
			return nil, fmt.Errorf("sip: answer: %w", err)
		}
		c.answerd.Store(true)
	case <-timer.C:
		c.answerd.Store(true)
		c.Log.Warn("no ACK for 200 OK, hanging up")
		// Take the BYE lock before returning so this BYE, not the safety
		// net's, is the one sent.
		c.byeMu.Lock()
		go func() {
			defer c.byeMu.Unlock()
			_ = c.hangupLocked(context.Background(), CauseError.Reason())
		}()
		return nil, ErrNoAck
	case <-ctx.Done():
		// The 200 is on the wire: the call is answered as far as the far
		// end knows, so Hangup (or the safety net) must BYE it.
		c.answerd.Store(true)
		return nil, ctx.Err()
	}
	select {
	case body := <-c.ackBody:
		return body, nil
	default:
		return nil, nil
	}
}

// Hangup ends an answered call with BYE carrying reason. It is safe to call
// more than once and after the far end hung up.
func (c *InboundCall) Hangup(ctx context.Context, reason Reason) error {
	c.byeMu.Lock()
	defer c.byeMu.Unlock()
	return c.hangupLocked(ctx, reason)
}

func (c *InboundCall) hangupLocked(ctx context.Context, reason Reason) error {
	if c.byeSent || !c.answerd.Load() || c.dlg.LoadState() == sipmsg.DialogStateEnded {
		return nil
	}
	c.byeSent = true
	ctx, cancel := context.WithTimeout(ctx, 32*time.Second)
	defer cancel()
	bye := sipmsg.NewRequest(sipmsg.BYE, c.dlg.InviteRequest.Contact().Address)
	bye.SetTransport(c.dlg.InviteRequest.Transport())
	bye.AppendHeader(reason.header())
	err := c.dlg.WriteBye(ctx, bye)
	if err != nil && c.dlg.LoadState() != sipmsg.DialogStateEnded {
		// The far end is gone or refuses: the dialog is over for us anyway.
		c.dlg.Close()
		c.cancel()
		return fmt.Errorf("sip: BYE: %w", err)
	}
	return nil
}

func (c *InboundCall) onAck(req *sipmsg.Request) {
	cseq := req.CSeq()
	if cseq == nil {
		return
	}
	if cseq.SeqNo != c.invite.CSeq().SeqNo {
		c.reinviteAcked(cseq.SeqNo)
		return
	}
	if body := req.Body(); len(body) > 0 {
		select {
		case c.ackBody <- body:
		default:
		}
	}
	_ = c.dlg.ReadAck(req, nil)
}

func (c *InboundCall) onBye(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c.setEndCause(ErrRemoteHangup)
	if err := c.dlg.ReadBye(req, tx); err != nil {
		c.srv.respond(tx, req, 500, "Server Internal Error")
	}
}

func (c *dialogCore) onInfo(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c.mu.Lock()
	h := c.infoFn
	c.mu.Unlock()
	code := 200
	if h != nil {
		ct := ""
		if hdr := req.ContentType(); hdr != nil {
			ct = hdr.Value()
		}
		code = h(ct, req.Body())
	}
	c.srv.respond(tx, req, code, statusText(code))
}

func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 415:
		return "Unsupported Media Type"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 491:
		return "Request Pending"
	case 500:
		return "Server Internal Error"
	case 501:
		return "Not Implemented"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Status " + fmt.Sprint(code)
}
