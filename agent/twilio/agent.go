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
	// messages.
	ErrProtocol = errors.New("twilio: bot protocol violation")
)

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
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
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
	conn, _, err := websocket.Dial(dctx, a.cfg.URL, &websocket.DialOptions{
		HTTPClient: a.client,
		HTTPHeader: a.cfg.Headers.Clone(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrConnect, a.endpoint, err)
	}
	conn.SetReadLimit(maxMessageBytes)
	log := call.Log()
	if log == nil {
		log = a.log
	} else {
		log = log.With("agent", "twilio")
	}
	s := newSession(a, call, conn, log)
	if err := s.open(dctx, a.customParameters(info)); err != nil {
		_ = conn.CloseNow()
		return nil, fmt.Errorf("%w at %s: %w", ErrConnect, a.endpoint, err)
	}
	s.log.Debug("bot connected", "stream_sid", s.streamSid, "call_sid", s.callSid)
	go s.readLoop()
	go s.writeLoop()
	return s, nil
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
