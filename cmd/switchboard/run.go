package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchboard-voice/switchboard/configs"
	"github.com/switchboard-voice/switchboard/dialplan"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/rtp"
	"github.com/switchboard-voice/switchboard/sip"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "start the gateway",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "gateway config `FILE` (default: embedded defaults)", EnvVars: []string{"SWITCHBOARD_CONFIG"}},
		},
		Action: func(c *cli.Context) error {
			cfg, err := LoadConfig(c.String("config"), configs.DefaultGateway())
			if err != nil {
				return err
			}
			log := newLogger(os.Stderr, cfg.Log.Level, cfg.Log.Format)
			return runGateway(c.Context, cfg, log)
		},
	}
}

// gateway is the running composition of the packages.
type gateway struct {
	cfg     *Config
	log     *slog.Logger
	metrics *metrics
	fleet   *fleet
	trunks  *trunkSet
	plans   *dialplan.Live // nil without a dialplan file
	exec    *dialplan.Executor
	srv     *sip.Server
	ready   atomic.Bool
}

// runGateway wires the packages together and serves until it is stopped by
// signals (drain, then stop) or parent ends.
func runGateway(parent context.Context, cfg *Config, log *slog.Logger) error {
	g := &gateway{cfg: cfg, log: log, metrics: newMetrics()}
	ctx, stop := context.WithCancel(parent)
	defer stop()

	agents, err := buildAgents(cfg.Agents, cfg.Admin.Twilio.AccountSid, log)
	if err != nil {
		return err
	}
	g.fleet, err = openFleet(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer g.fleet.close()
	var plans dialplan.PlanSource
	if cfg.Dialplan != "" {
		g.plans, err = dialplan.NewLive(cfg.Dialplan, dialplan.LoadOptions{Agents: agentNames(cfg), Trunks: trunkNames(cfg)}, log)
		if err != nil {
			return fmt.Errorf("dialplan %s:\n%w", cfg.Dialplan, err)
		}
		plans = g.plans
		go g.plans.Watch(ctx, 2*time.Second, g.countReload)
	}
	listen := netip.MustParseAddrPort(cfg.SIP.Listen)
	legCfg, answerCfg, err := mediaConfig(cfg, listen, log)
	if err != nil {
		return err
	}
	g.trunks, err = buildTrunks(cfg)
	if err != nil {
		return err
	}
	transfers, err := buildTransfers(cfg, g, g.trunks, legCfg, answerCfg)
	if err != nil {
		return err
	}
	g.exec, err = dialplan.NewExecutor(dialplan.Env{
		Transfers:       transfers,
		Media:           legCfg,
		Answer:          answerCfg,
		Agents:          agents,
		DefaultAgent:    cfg.DefaultAgent,
		Plans:           plans,
		Observer:        &observer{m: g.metrics, fleet: g.fleet, log: log},
		Admit:           g.fleet.admit,
		LimitRetryAfter: time.Duration(g.cfg.Limits.RetryAfterSec) * time.Second,
		Ringing:         cfg.SIP.Ringing,
		Log:             log,
		TrunkSRTP:       trunkSRTP(cfg),
	})
	if err != nil {
		return fmt.Errorf("dialplan: %w", err)
	}
	access, err := accessConfig(cfg, g.trunks)
	if err != nil {
		return err
	}
	tlsCfg, err := sipTLS(cfg, listen)
	if err != nil {
		return err
	}
	g.srv, err = sip.NewServer(sip.Config{
		Listen:     listen,
		Transports: cfg.SIP.Transports,
		PublicHost: publicHost(cfg, listen),
		UserAgent:  cfg.SIP.UserAgent,
		Access:     access,
		TLS:        tlsCfg,
		Logger:     log,
	}, g.exec.HandleCall)
	if err != nil {
		return err
	}

	adminAddr := ""
	adminErr := make(chan error, 1)
	if cfg.Admin.Listen != "" {
		h, err := g.adminHandler()
		if err != nil {
			return err
		}
		bound := make(chan string, 1)
		go func() { adminErr <- serveAdmin(ctx, cfg.Admin.Listen, h, func(a string) { bound <- a }) }()
		select {
		case adminAddr = <-bound:
		case err := <-adminErr:
			return fmt.Errorf("admin listener: %w", err)
		}
	}
	go g.handleSignals(ctx, stop)
	controlDone := make(chan struct{})
	go func() { defer close(controlDone); g.fleet.serveControl(ctx, g.exec) }()
	defer func() { stop(); <-controlDone }()
	// Serve outlives ctx a little: registrations are withdrawn (Expires: 0)
	// while the listeners can still carry them.
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	go func() {
		<-ctx.Done()
		g.trunks.stopAndWait(5 * time.Second)
		stopServe()
	}()
	err = g.srv.Serve(serveCtx, func() {
		g.trunks.start(g.srv, g.metrics)
		g.ready.Store(true)
		tlsAddr := ""
		if tlsCfg.Listen.IsValid() {
			tlsAddr = tlsCfg.Listen.String()
		}
		log.Info("gateway ready", "sip", listen.String(), "sip_tls", tlsAddr, "public", publicHost(cfg, listen), "admin", adminAddr,
			"rtp_ports", fmt.Sprintf("%d-%d", cfg.Media.RTPPortMin, cfg.Media.RTPPortMax),
			"dialplan", cfg.Dialplan, "default_agent", cfg.DefaultAgent, "store", cfg.Store.Type,
			"instance", g.fleet.st.Instance(), "version", version)
	})
	g.ready.Store(false)
	stop()
	if cfg.Admin.Listen != "" {
		<-adminErr
	}
	log.Info("gateway stopped", "error", err)
	return err
}

// handleSignals drains on the first SIGTERM/SIGINT, stops on the second or
// when the drain is over, and reloads the dialplan on SIGHUP.
func (g *gateway) handleSignals(ctx context.Context, stop context.CancelFunc) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var drained <-chan struct{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-drained:
			g.log.Info("drain complete", "active_calls", g.exec.Active())
			stop()
			return
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				g.reload()
			case drained == nil:
				drained = g.drain(ctx, sig)
			default:
				g.log.Warn("second signal: stopping now", "signal", sig.String(), "active_calls", g.exec.Active())
				stop()
				return
			}
		}
	}
}

// drain stops taking calls and returns a channel closed when the calls in
// progress have ended or the drain timeout has passed.
func (g *gateway) drain(ctx context.Context, sig os.Signal) <-chan struct{} {
	g.ready.Store(false)
	g.srv.SetDraining(true)
	if g.cfg.Drain.Unregister {
		go g.trunks.stopAndWait(5 * time.Second)
	}
	timeout := time.Duration(g.cfg.Drain.Timeout)
	g.log.Info("draining: refusing new calls", "signal", sig.String(), "active_calls", g.exec.Active(), "timeout", timeout.String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for g.exec.Active() > 0 {
			select {
			case <-ctx.Done():
				return
			case <-deadline.C:
				g.log.Warn("drain timeout: ending calls in progress", "active_calls", g.exec.Active())
				return
			case <-tick.C:
			}
		}
	}()
	return done
}

func (g *gateway) reload() {
	if g.plans == nil {
		g.log.Info("SIGHUP: no dialplan file configured; nothing to reload")
		return
	}
	g.countReload(g.plans.Reload())
}

// countReload counts one dialplan reload, from SIGHUP or a file change.
func (g *gateway) countReload(err error) {
	result := "ok"
	if err != nil {
		result = "refused"
	}
	g.metrics.dialplanReloads.WithLabelValues(result).Inc()
}

func publicHost(cfg *Config, listen netip.AddrPort) string {
	if cfg.SIP.PublicAddress != "" {
		return cfg.SIP.PublicAddress
	}
	return listen.Addr().String()
}

// mediaConfig builds the per-leg and SDP settings.
func mediaConfig(cfg *Config, listen netip.AddrPort, log *slog.Logger) (media.LegConfig, media.AnswerConfig, error) {
	rtpAddr := listen.Addr()
	if cfg.Media.RTPAddress != "" {
		rtpAddr = netip.MustParseAddr(cfg.Media.RTPAddress)
	}
	sdpAddr, err := netip.ParseAddr(publicHost(cfg, listen))
	if err != nil || sdpAddr.IsUnspecified() {
		sdpAddr = rtpAddr
	}
	pool, err := rtp.NewPortPool(rtpAddr, cfg.Media.RTPPortMin, cfg.Media.RTPPortMax, time.Duration(cfg.Media.PortQuarantine))
	if err != nil {
		return media.LegConfig{}, media.AnswerConfig{}, fmt.Errorf("rtp ports: %w", err)
	}
	leg := media.LegConfig{
		Pool:              pool,
		Latch:             cfg.Media.SymmetricRTP,
		InactivityTimeout: time.Duration(cfg.Media.InactivityTimeout),
		RTCPInterval:      time.Duration(cfg.Media.RTCPInterval),
		MaxPlayout:        time.Duration(cfg.Media.MaxPlayout),
		Logger:            log,
	}
	answer := media.AnswerConfig{Codecs: cfg.Media.Codecs, PreferOurs: cfg.Media.PreferOurCodecs, LocalAddr: sdpAddr}
	return leg, answer, nil
}

// accessConfig maps the access section and the trunks' networks.
func accessConfig(cfg *Config, trunks *trunkSet) (sip.AccessConfig, error) {
	allow, err := parsePrefixes(cfg.Access.Allow)
	if err != nil {
		return sip.AccessConfig{}, err
	}
	ac := sip.AccessConfig{
		Allow:          allow,
		Quiet:          cfg.Access.Quiet,
		RatePerSecond:  cfg.Access.RateLimit.PerSecond,
		Burst:          cfg.Access.RateLimit.Burst,
		BanFor:         time.Duration(cfg.Access.RateLimit.BanFor),
		MaxMessageSize: cfg.Access.MaxMessageSize,
		DropUserAgents: cfg.Access.DropUserAgents,
	}
	if ac.Digest, err = digestConfig(cfg); err != nil {
		return sip.AccessConfig{}, err
	}
	for _, t := range cfg.Trunks {
		nets, err := parsePrefixes(t.InboundNetworks)
		if err != nil {
			return sip.AccessConfig{}, err
		}
		ac.Trunks = append(ac.Trunks, sip.TrunkAccess{Name: t.Name, Networks: nets, Addresses: trunks.addresses(t.Name)})
	}
	return ac, nil
}

// sipTLS loads the TLS listener's certificate and the extra roots once,
// here: the sip package gets values, never file names.
func sipTLS(cfg *Config, listen netip.AddrPort) (sip.TLSConfig, error) {
	t := cfg.SIP.TLS
	var out sip.TLSConfig
	if t.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool() // no system roots here: the file's alone
		}
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return out, fmt.Errorf("sip.tls.ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return out, fmt.Errorf("sip.tls.ca_file %s: no PEM certificate in it", t.CAFile)
		}
		out.RootCAs = pool
	}
	if t.CertFile == "" {
		return out, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return out, fmt.Errorf("sip.tls: %w", err)
	}
	out.Certificates = []tls.Certificate{cert}
	out.Listen = netip.AddrPortFrom(listen.Addr(), 5061)
	if t.Listen != "" {
		out.Listen = netip.MustParseAddrPort(t.Listen) // validated
	}
	return out, nil
}

func agentNames(cfg *Config) []string {
	names := make([]string, 0, len(cfg.Agents))
	for n := range cfg.Agents {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func trunkNames(cfg *Config) []string {
	names := make([]string, 0, len(cfg.Trunks))
	for _, t := range cfg.Trunks {
		names = append(names, t.Name)
	}
	return names
}
