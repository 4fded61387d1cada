package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchboard-voice/switchboard/agent"
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
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runGateway(ctx, cfg, log)
		},
	}
}

// runGateway wires the packages together and serves until ctx ends.
func runGateway(ctx context.Context, cfg *Config, log *slog.Logger) error {
	listen := netip.MustParseAddrPort(cfg.SIP.Listen)
	rtpAddr := listen.Addr()
	if cfg.Media.RTPAddress != "" {
		rtpAddr = netip.MustParseAddr(cfg.Media.RTPAddress)
	}
	public := cfg.SIP.PublicAddress
	if public == "" {
		public = listen.Addr().String()
	}
	sdpAddr, err := netip.ParseAddr(public)
	if err != nil || sdpAddr.IsUnspecified() {
		sdpAddr = rtpAddr
	}
	pool, err := rtp.NewPortPool(rtpAddr, cfg.Media.RTPPortMin, cfg.Media.RTPPortMax, time.Duration(cfg.Media.PortQuarantine))
	if err != nil {
		return fmt.Errorf("rtp ports: %w", err)
	}
	agents, err := buildAgents(cfg.Agents)
	if err != nil {
		return err
	}
	exec := dialplan.NewExecutor(dialplan.Env{
		Media: media.LegConfig{
			Pool:              pool,
			Latch:             cfg.Media.SymmetricRTP,
			InactivityTimeout: time.Duration(cfg.Media.InactivityTimeout),
			RTCPInterval:      time.Duration(cfg.Media.RTCPInterval),
			MaxPlayout:        time.Duration(cfg.Media.MaxPlayout),
			Logger:            log,
		},
		Answer: media.AnswerConfig{
			Codecs:     cfg.Media.Codecs,
			PreferOurs: cfg.Media.PreferOurCodecs,
			LocalAddr:  sdpAddr,
		},
		Agents:       agents,
		DefaultAgent: cfg.DefaultAgent,
		Ringing:      cfg.SIP.Ringing,
		Log:          log,
	})
	srv, err := sip.NewServer(sip.Config{
		Listen:     listen,
		Transports: cfg.SIP.Transports,
		PublicHost: public,
		UserAgent:  cfg.SIP.UserAgent,
		Logger:     log,
	}, exec.HandleCall)
	if err != nil {
		return err
	}
	err = srv.Serve(ctx, func() {
		log.Info("gateway ready", "sip", listen.String(), "public", public,
			"rtp_ports", fmt.Sprintf("%d-%d", cfg.Media.RTPPortMin, cfg.Media.RTPPortMax),
			"default_agent", cfg.DefaultAgent, "version", version)
	})
	log.Info("gateway stopped", "error", err)
	return err
}

func buildAgents(cfgs map[string]AgentConfig) (map[string]agent.Agent, error) {
	agents := make(map[string]agent.Agent, len(cfgs))
	for name, a := range cfgs {
		switch a.Type {
		case "echo":
			agents[name] = agent.Echo{}
		case "prompt":
			samples, err := media.ReadWAVFile(a.File)
			if err != nil {
				return nil, fmt.Errorf("agent %s: %w", name, err)
			}
			agents[name] = agent.Prompt{Samples: samples, Wait: a.Then == "wait"}
		}
	}
	return agents, nil
}
