package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// Config describes the SIP endpoint.
type Config struct {
	// Listen is where UDP and TCP listeners bind (same port for both).
	Listen netip.AddrPort
	// Transports to serve: "udp", "tcp". Empty means both.
	Transports []string
	// PublicHost is written into Contact and Via (the address carriers
	// reach us on, for NAT). Empty means the listen address.
	PublicHost string
	// UserAgent, when set, is sent as Server on responses and User-Agent on
	// requests. Empty sends neither: scanners learn nothing.
	UserAgent string
	// Access screens sources; the zero value accepts everyone.
	Access AccessConfig
	// TLS is the TLS listener and the roots that verify carriers.
	TLS    TLSConfig
	Logger *slog.Logger
}

// CallHandler owns an inbound call from its INVITE to its end. It runs on its
// own goroutine and must give the INVITE a final answer (Answer or Reject)
// before it returns; whatever it leaves up is torn down afterwards.
type CallHandler func(ctx context.Context, call *InboundCall)

// Server is a SIP user agent: inbound calls are handed to a CallHandler,
// outbound calls are placed with Dial.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	client  *sipgo.Client
	dialog  sipgo.DialogUA
	handler CallHandler
	guard   *guard
	digest  *digestAuth // nil: no digest for strangers
	// tlsConns opens the TLS connections to trunks, verified by name.
	tlsConns *tlsConns

	base     context.Context // ends when Serve's context does
	dialogs  sync.Map        // dialog id -> dialogEntry
	active   atomic.Int64
	draining atomic.Bool
	// stopMu orders wg.Add for a new call against Serve's final wg.Wait,
	// and reqs.Add for any request against the wait for in-flight handlers:
	// a handler answering after the listeners closed would make sipgo bind
	// a fresh socket that nothing ever closes.
	stopMu   sync.Mutex
	stopping bool
	closed   bool
	reqs     sync.WaitGroup
	wg       sync.WaitGroup
}

// dialogEntry is what in-dialog requests are routed to.
type dialogEntry interface {
	onAck(req *sipmsg.Request)
	onBye(req *sipmsg.Request, tx sipmsg.ServerTransaction)
	onReinvite(req *sipmsg.Request, tx sipmsg.ServerTransaction)
	onInfo(req *sipmsg.Request, tx sipmsg.ServerTransaction)
}

// NewServer builds the endpoint; Serve starts it.
func NewServer(cfg Config, handler CallHandler) (*Server, error) {
	if !cfg.Listen.IsValid() {
		return nil, fmt.Errorf("sip: listen address is not set")
	}
	if len(cfg.Transports) == 0 {
		cfg.Transports = []string{"udp", "tcp"}
	}
	if cfg.PublicHost == "" {
		cfg.PublicHost = cfg.Listen.Addr().String()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TLS.Listen.IsValid() && len(cfg.TLS.Certificates) == 0 {
		return nil, fmt.Errorf("sip: the TLS listener needs a certificate")
	}
	digest, err := newDigestAuth(cfg.Access.Digest)
	if err != nil {
		return nil, err
	}
	opts := []sipgo.UserAgentOption{
		sipgo.WithUserAgentHostname(cfg.PublicHost),
		sipgo.WithUserAgenTLSConfig(cfg.TLS.client()),
	}
	if cfg.UserAgent != "" {
		opts = append(opts, sipgo.WithUserAgent(cfg.UserAgent))
	} else {
		opts = append(opts, sipgo.WithUserAgent("switchboard"))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		return nil, fmt.Errorf("sip: user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(cfg.Logger.With("component", "sipgo")))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip: server: %w", err)
	}
	// Pinning the client to the listener makes responses and in-dialog
	// requests leave from the advertised address and port.
	client, err := sipgo.NewClient(ua,
		sipgo.WithClientHostname(cfg.PublicHost),
		sipgo.WithClientPort(int(cfg.Listen.Port())),
		sipgo.WithClientConnectionAddr(cfg.Listen.String()),
		sipgo.WithClientLogger(cfg.Logger.With("component", "sipgo")),
	)
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip: client: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, ua: ua, srv: srv, client: client, handler: handler, base: context.Background(), guard: newGuard(cfg.Access), digest: digest}
	s.tlsConns = &tlsConns{tp: ua.TransportLayer(), config: cfg.TLS.client(),
		ln: newHandoff(&net.TCPAddr{IP: cfg.Listen.Addr().AsSlice(), Port: int(cfg.TLS.Listen.Port())})}
	client.TxRequester = requester{s}
	s.dialog = sipgo.DialogUA{Client: client, ContactHDR: s.contact("udp")}
	s.routes()
	return s, nil
}

// contact is our Contact for a transport.
func (s *Server) contact(transport string) sipmsg.ContactHeader {
	uri := sipmsg.Uri{Scheme: "sip", User: "switchboard", Host: s.cfg.PublicHost, Port: s.contactPort(transport)}
	if transport != "" && transport != "udp" && transport != "UDP" {
		uri.UriParams = sipmsg.NewParams()
		uri.UriParams.Add("transport", strings.ToLower(transport))
	}
	return sipmsg.ContactHeader{Address: uri}
}

// contactPort is where a transport reaches us: the TLS listener's port for
// TLS when there is one, else the UDP/TCP port.
func (s *Server) contactPort(transport string) int {
	if strings.EqualFold(transport, "tls") && s.cfg.TLS.Listen.IsValid() {
		return int(s.cfg.TLS.Listen.Port())
	}
	return int(s.cfg.Listen.Port())
}

// Serve listens on the configured transports until ctx ends, then waits for
// calls in progress to be torn down.
func (s *Server) Serve(ctx context.Context, ready func()) error {
	s.base = ctx
	// The TLS connections we dial reach sipgo through this listener.
	listeners := []func() error{func() error { return s.srv.ServeTLS(s.tlsConns.ln) }}
	closers := []func() error{s.tlsConns.ln.Close}
	if s.cfg.TLS.Listen.IsValid() {
		network := "tcp6"
		if s.cfg.TLS.Listen.Addr().Is4() {
			network = "tcp4"
		}
		l, err := net.ListenTCP(network, net.TCPAddrFromAddrPort(s.cfg.TLS.Listen))
		if err != nil {
			return fmt.Errorf("sip: listen tls %s: %w", s.cfg.TLS.Listen, err)
		}
		tl := handshakeListener{Listener: l, conf: s.cfg.TLS.server()}
		closers = append(closers, tl.Close)
		listeners = append(listeners, func() error { return s.srv.ServeTLS(tl) })
	}
	for _, tr := range s.cfg.Transports {
		switch strings.ToLower(tr) {
		case "udp":
			// udp4/udp6 keep a wildcard address reported as 0.0.0.0 (not
			// [::]), which is the key sipgo's pool and our pinned client use.
			conn, err := net.ListenUDP("udp"+s.family(), net.UDPAddrFromAddrPort(s.cfg.Listen))
			if err != nil {
				closeAll(closers)
				return fmt.Errorf("sip: listen udp %s: %w", s.cfg.Listen, err)
			}
			closers = append(closers, conn.Close)
			listeners = append(listeners, func() error { return s.srv.ServeUDP(conn) })
		case "tcp":
			l, err := net.ListenTCP("tcp"+s.family(), net.TCPAddrFromAddrPort(s.cfg.Listen))
			if err != nil {
				closeAll(closers)
				return fmt.Errorf("sip: listen tcp %s: %w", s.cfg.Listen, err)
			}
			closers = append(closers, l.Close)
			listeners = append(listeners, func() error { return s.srv.ServeTCP(l) })
		default:
			closeAll(closers)
			return fmt.Errorf("sip: unsupported transport %q", tr)
		}
	}
	errs := make(chan error, len(listeners))
	for _, serve := range listeners {
		go func() { errs <- serve() }()
	}
	if err := s.waitListening(errs); err != nil {
		s.ua.Close()
		closeAll(closers)
		return err
	}
	if ready != nil {
		ready()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	s.draining.Store(true)
	s.stopMu.Lock()
	s.stopping = true
	s.stopMu.Unlock()
	s.wg.Wait()
	s.stopMu.Lock()
	s.closed = true
	s.stopMu.Unlock()
	s.reqs.Wait()
	closeAll(closers)
	s.ua.Close()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("sip: serve: %w", err)
	}
	return nil
}

func (s *Server) family() string {
	if s.cfg.Listen.Addr().Is4() {
		return "4"
	}
	return "6"
}

// waitListening returns once sipgo has registered the UDP listener in its
// connection pool: before that, a request we send would try to bind a second
// socket on the listen address and fail.
func (s *Server) waitListening(errs chan error) error {
	tl := s.srv.TransportLayer()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-errs:
			return fmt.Errorf("sip: serve: %w", err)
		default:
		}
		// TCP needs no wait: our listener is bound and connections queue
		// until sipgo accepts them.
		if !slices.Contains(s.cfg.Transports, "udp") {
			return nil
		}
		if c, err := tl.GetConnection("udp", s.cfg.Listen.String()); err == nil && c != nil {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("sip: listeners did not start")
}

// SetDraining makes new INVITEs get 503 while calls in progress go on.
func (s *Server) SetDraining(on bool) { s.draining.Store(on) }

// ActiveCalls counts inbound and outbound dialogs in progress.
func (s *Server) ActiveCalls() int { return int(s.active.Load()) }

func (s *Server) routes() {
	s.srv.OnInvite(s.screen(s.onInvite))
	s.srv.OnAck(s.screen(s.onAck))
	s.srv.OnBye(s.screen(s.onBye))
	s.srv.OnInfo(s.screen(s.onInfo))
	s.srv.OnOptions(s.screen(s.onOptions))
	s.srv.OnNotify(s.screen(s.onNotify))
	// A CANCEL that matches a pending INVITE is answered inside sipgo; one
	// that reaches a handler matches nothing (RFC 3261 §9.2).
	s.srv.OnCancel(s.screen(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
	}))
	for _, m := range []func(sipgo.RequestHandler){s.srv.OnRefer, s.srv.OnUpdate, s.srv.OnPrack} {
		m(s.screen(s.inDialogOnly))
	}
	for _, m := range []func(sipgo.RequestHandler){s.srv.OnRegister, s.srv.OnSubscribe, s.srv.OnMessage, s.srv.OnPublish} {
		m(s.screen(s.notAllowed))
	}
	s.srv.OnNoRoute(s.screen(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		s.respond(tx, req, 501, "Not Implemented", sipmsg.NewHeader("Allow", allowedMethods))
	}))
}

// screen runs the access guard before a handler. Requests outside a dialog
// need an allowed source; the refusal is the same whatever was asked, so a
// scanner cannot tell a valid extension from an invalid one.
func (s *Server) screen(handler sipgo.RequestHandler) sipgo.RequestHandler {
	next := func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if r, ok := checkRequest(req); !ok {
			if !req.IsAck() {
				s.respond(tx, req, r.code, r.reason, r.headers...)
			}
			return
		}
		handler(req, tx)
	}
	return func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		outOfDialog := true
		if to := req.To(); to != nil && to.Params.Has("tag") {
			outOfDialog = false
		}
		// Stopping: calls being torn down still get their in-dialog
		// requests; nothing new starts.
		s.stopMu.Lock()
		if s.closed || (s.stopping && outOfDialog) {
			s.stopMu.Unlock()
			return
		}
		s.reqs.Add(1)
		s.stopMu.Unlock()
		defer s.reqs.Done()
		src := sourceAddr(req).Addr()
		switch s.guard.check(req, src, outOfDialog) {
		case admit:
			next(req, tx)
		case tooLarge:
			s.respond(tx, req, 513, "Message Too Large")
		case forbid:
			if s.digest != nil && outOfDialog && !req.IsAck() && !req.IsCancel() {
				s.authenticate(req, tx, src, next)
				return
			}
			s.log.Debug("sip: request refused", "source", src.String(), "method", req.Method.String())
			if !s.cfg.Access.Quiet && !req.IsAck() {
				s.respond(tx, req, 403, "Forbidden")
			}
		case drop:
		}
	}
}

const allowedMethods = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY"

// serves reports whether method is one of allowedMethods (a whole name: a
// substring test would take "INV" for INVITE).
func serves(method sipmsg.RequestMethod) bool {
	for m := range strings.SplitSeq(allowedMethods, ", ") {
		if m == string(method) {
			return true
		}
	}
	return false
}

func (s *Server) respond(tx sipmsg.ServerTransaction, req *sipmsg.Request, code int, reason string, headers ...sipmsg.Header) {
	res := sipmsg.NewResponseFromRequest(req, code, reason, nil)
	s.decorate(res)
	for _, h := range headers {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("sip: respond failed", "code", code, "method", req.Method.String(), "error", err)
	}
}

// decorate adds the headers every response carries.
func (s *Server) decorate(res *sipmsg.Response) {
	res.SipVersion = "SIP/2.0" // sipgo copies the request's, even SIP/7.0
	if s.cfg.UserAgent != "" && res.GetHeader("Server") == nil {
		res.AppendHeader(sipmsg.NewHeader("Server", s.cfg.UserAgent))
	}
}

func (s *Server) lookup(req *sipmsg.Request) dialogEntry {
	id, err := sipmsg.DialogIDFromRequestUAS(req)
	if err != nil {
		return nil
	}
	v, ok := s.dialogs.Load(id)
	if !ok {
		return nil
	}
	return v.(dialogEntry)
}

func (s *Server) onInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		if d := s.lookup(req); d != nil {
			d.onReinvite(req, tx)
			return
		}
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	s.stopMu.Lock()
	if s.draining.Load() || s.stopping {
		s.stopMu.Unlock()
		s.respond(tx, req, 503, "Service Unavailable", sipmsg.NewHeader("Retry-After", "30"))
		return
	}
	s.wg.Add(1)
	s.stopMu.Unlock()
	defer s.wg.Done()
	s.serveInbound(req, tx)
}

func (s *Server) onAck(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if d := s.lookup(req); d != nil {
		d.onAck(req)
	}
}

func (s *Server) onBye(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if d := s.lookup(req); d != nil {
		d.onBye(req, tx)
		return
	}
	s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
}

func (s *Server) onInfo(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if d := s.lookup(req); d != nil {
		d.onInfo(req, tx)
		return
	}
	s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
}

func (s *Server) inDialogOnly(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if s.lookup(req) == nil {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	s.respond(tx, req, 501, "Not Implemented", sipmsg.NewHeader("Allow", allowedMethods))
}

func (s *Server) notAllowed(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.respond(tx, req, 405, "Method Not Allowed", sipmsg.NewHeader("Allow", allowedMethods))
}

func (s *Server) onOptions(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	code, reason := 200, "OK"
	if s.draining.Load() {
		code, reason = 503, "Service Unavailable"
	}
	s.respond(tx, req, code, reason,
		sipmsg.NewHeader("Allow", allowedMethods),
		sipmsg.NewHeader("Accept", "application/sdp"),
	)
}

func closeAll(closers []func() error) {
	for _, c := range closers {
		_ = c()
	}
}

// sourceAddr parses the transport source of a request.
func sourceAddr(req *sipmsg.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
