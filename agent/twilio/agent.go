package twilio

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/agent"
)

// Config configures the Media Streams agent.
type Config struct {
	// URL is the bot's WebSocket endpoint, ws:// or wss://.
	URL string
	// Headers are extra handshake headers (e.g. Authorization: Bearer ...).
	Headers http.Header
	// ConnectTimeout bounds dialling, the handshake and the first two
	// messages. Default 5s.
	ConnectTimeout time.Duration
	// SilenceTimeout ends the session with ErrBotSilent when the bot has
	// sent no message of any kind for this long and none of its audio is
	// still playing, so that a hung bot leads to the dialplan's on_failure
	// instead of dead air. It does not run while the call is on hold or a
	// transfer is ringing. 0 means DefaultSilenceTimeout; negative turns it
	// off.
	SilenceTimeout time.Duration
	// AccountSid is sent in `start` and `stop`: "AC" and 32 hex digits.
	// Default DefaultAccountSid().
	AccountSid string
	// CustomHeaders names SIP headers (e.g. X-Customer-Id) whose values,
	// read through Info.Header, are sent in
	// customParameters under exactly these names.
	CustomHeaders []string
	// MaxPlayout is informational: the leg caps queued bot audio.
	MaxPlayout time.Duration
	// TLSConfig is used for wss:// URLs; nil means the system roots.
	TLSConfig *tls.Config
	// Logger is used when the call has no logger of its own.
	Logger *slog.Logger
}

// Errors a session reports.
var (
	// ErrConnect wraps every failure to reach the bot in Start.
	ErrConnect = errors.New("twilio: cannot reach bot")
	// ErrBotGone is wrapped by Wait when the connection dropped without a
	// normal close, or a read or write failed.
	ErrBotGone = errors.New("twilio: bot connection lost")
	// ErrProtocol is wrapped by Wait when the bot sent too many malformed
	// messages or one over the size limit.
	ErrProtocol = errors.New("twilio: bot protocol violation")
	// ErrBotSilent is wrapped by Wait when the bot sent nothing for its
	// silence timeout.
	ErrBotSilent = errors.New("twilio: bot silent")
)

// Every error Start and Wait return for a failed bot is also an
// *agent.Failure, whose cause the dialplan logs and records.

// DefaultSilenceTimeout is the silence timeout when Config gives none: long
// enough for a bot listening to a caller's long sentence, short enough that
// a hung bot does not leave the caller in dead air for long.
const DefaultSilenceTimeout = 30 * time.Second

// Tunables; tests in this package shorten closeGrace.
const (
	defaultConnectTimeout = 5 * time.Second
	defaultCloseGrace     = 2 * time.Second
	queueFrames           = 50 // 1 s of caller audio waiting for the bot
	queueControls         = 64
	dropLogEvery          = 250 // a warning at the first drop and every 5 s of dropped audio after
	maxMalformed          = 100
)

// Agent dials a Twilio Media Streams bot for every call.
type Agent struct {
	cfg        Config
	endpoint   string // URL without query or credentials, for logs and errors
	client     *http.Client
	log        *slog.Logger
	closeGrace time.Duration
}

var _ agent.Agent = (*Agent)(nil)

// New validates cfg and returns the agent.
func New(cfg Config) (*Agent, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("twilio: url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("twilio: url %q: scheme must be ws or wss", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("twilio: url %q has no host", u.Redacted())
	}
	if cfg.AccountSid == "" {
		cfg.AccountSid = DefaultAccountSid()
	} else if !validSid(cfg.AccountSid, prefixAccount) {
		return nil, fmt.Errorf("twilio: account sid %q is not AC and 32 hex digits", cfg.AccountSid)
	}
	for name, values := range cfg.Headers {
		for _, v := range values {
			if !isToken(name) || !printable(v, true) {
				return nil, fmt.Errorf("twilio: header %q is not valid", name)
			}
		}
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	switch {
	case cfg.SilenceTimeout == 0:
		cfg.SilenceTimeout = DefaultSilenceTimeout
	case cfg.SilenceTimeout < 0:
		cfg.SilenceTimeout = 0 // off
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Headers = cfg.Headers.Clone()
	cfg.CustomHeaders = append([]string(nil), cfg.CustomHeaders...)
	tlsConf := cfg.TLSConfig.Clone()
	if tlsConf == nil {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	// Our own transport: no idle pool to leak, HTTP/1.1 only (an upgrade
	// cannot ride HTTP/2), dialling bounded by the connect timeout.
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialKeepingConn(dialer),
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: cfg.ConnectTimeout,
		DisableKeepAlives:   true,
	}
	endpoint := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	return &Agent{
		cfg:        cfg,
		endpoint:   endpoint,
		client:     &http.Client{Transport: transport},
		log:        cfg.Logger.With("agent", "twilio", "url", endpoint),
		closeGrace: defaultCloseGrace,
	}, nil
}

// Start dials the bot, sends `connected` and `start`, and starts the
// session's reader and writer. The caller must call Wait, which ends them.
func (a *Agent) Start(ctx context.Context, call agent.Call) (agent.Session, error) {
	info := call.Info()
	dctx, cancel := context.WithTimeout(ctx, a.cfg.ConnectTimeout)
	defer cancel()
	slot := &connSlot{}
	dctx = context.WithValue(dctx, connSlotKey{}, slot)
	conn, resp, err := websocket.Dial(dctx, a.cfg.URL, &websocket.DialOptions{
		HTTPClient: a.client,
		HTTPHeader: a.cfg.Headers.Clone(),
	})
	if err != nil {
		return nil, a.connectFailure(resp, err, false)
	}
	conn.SetReadLimit(maxMessageBytes)
	log := call.Log()
	if log == nil {
		log = a.log
	} else {
		log = log.With("agent", "twilio")
	}
	s := newSession(a, call, conn, log)
	s.raw = slot.get()
	if err := s.open(dctx, a.customParameters(info)); err != nil {
		_ = conn.CloseNow()
		return nil, a.connectFailure(nil, err, true)
	}
	s.log.Debug("bot connected", "call_sid", s.callSid) // s.log carries the stream_sid
	s.startSilenceTimer()
	go s.readLoop()
	go s.writeLoop()
	return s, nil
}

// connectFailure classifies a failure to open the stream. resp is the
// handshake's response, if one came; opened says the handshake had
// succeeded and sending `connected` or `start` failed. The error wraps
// ErrConnect and err, with the URL's query and credentials left out (the
// HTTP client puts the full URL in its errors, and a token may ride in the
// query).
func (a *Agent) connectFailure(resp *http.Response, err error, opened bool) error {
	// The WebSocket library wraps with messages formatted at once: the
	// url.Error's text is baked into them, so the error is rebuilt.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = &url.Error{Op: ue.Op, URL: a.endpoint, Err: ue.Err}
	}
	f := &agent.Failure{Err: fmt.Errorf("%w at %s: %w", ErrConnect, a.endpoint, err)}
	var ne net.Error
	switch {
	case resp != nil && resp.StatusCode != http.StatusSwitchingProtocols:
		f.Cause = agent.CauseHandshakeRefused
		f.Detail = fmt.Sprintf("%s answered the upgrade with HTTP %d %s", a.endpoint, resp.StatusCode, http.StatusText(resp.StatusCode))
	case resp != nil:
		f.Cause = agent.CauseProtocol
		f.Detail = fmt.Sprintf("%s: bad handshake response: %v", a.endpoint, err)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		f.Cause = agent.CauseConnectTimeout
		f.Detail = fmt.Sprintf("%s: no connection and start within %v", a.endpoint, a.cfg.ConnectTimeout)
	case opened:
		f.Cause = agent.CauseDropped
		f.Detail = fmt.Sprintf("%s: connection lost while sending start: %v", a.endpoint, innermost(err))
	default:
		f.Cause = agent.CauseUnreachable
		f.Detail = fmt.Sprintf("%s: %v", a.endpoint, innermost(err))
	}
	return f
}

// innermost is the error under url.Error and the WebSocket library's
// wrapping: "dial tcp 127.0.0.1:9: connect: connection refused" rather than
// the whole chain.
func innermost(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// customParameters builds `start.customParameters`: who is calling, then
// the dialplan's parameters (which may override), with configured SIP
// header names in the case the configuration gives them.
func (a *Agent) customParameters(info agent.Info) map[string]string {
	p := map[string]string{
		"from_number": info.From,
		"to_number":   info.To,
		"trunk":       info.Trunk,
		"call_id":     info.CallID,
	}
	for k, v := range info.Params {
		p[k] = v
	}
	if info.Header != nil {
		for _, h := range a.cfg.CustomHeaders {
			if v := info.Header(h); v != "" {
				p[h] = v
			}
		}
	}
	return p
}

// connSlot receives the TCP connection under a WebSocket from the dialler.
// The WebSocket library bounds its close handshake with its own timeouts
// (5 s and more) and a cancelled read does not always close the connection
// (not between two reads): closing the TCP connection is the one way to cut
// off, within the close grace, a bot that neither reads nor answers.
type connSlot struct {
	mu sync.Mutex
	c  net.Conn
}

type connSlotKey struct{}

func (s *connSlot) get() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

// dialKeepingConn dials with d and hands the connection to the connSlot in
// the context, if any (the HTTP transport keeps the request's values).
func dialKeepingConn(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if slot, ok := ctx.Value(connSlotKey{}).(*connSlot); ok && err == nil {
			slot.mu.Lock()
			slot.c = c
			slot.mu.Unlock()
		}
		return c, err
	}
}
