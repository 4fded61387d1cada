package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/agent/twilio"
	"github.com/switchboard-voice/switchboard/media"
)

// buildAgents makes the configured agents. accountSid is the Twilio account
// id bots see, the same one the REST subset answers to.
func buildAgents(cfgs map[string]AgentConfig, accountSid string, log *slog.Logger) (map[string]agent.Agent, error) {
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
		case "websocket":
			token, err := a.Token.Value(a.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("agent %s: %w", name, err)
			}
			headers := http.Header{}
			for k, v := range a.Headers {
				headers.Set(k, v)
			}
			if token != "" {
				headers.Set("Authorization", "Bearer "+token)
			}
			ws, err := twilio.New(twilio.Config{
				URL:            a.URL,
				Headers:        headers,
				ConnectTimeout: time.Duration(a.ConnectTimeout),
				SilenceTimeout: silenceTimeout(a.SilenceTimeout),
				AccountSid:     accountSid,
				CustomHeaders:  a.SIPHeaders,
				Logger:         log.With("agent", name),
			})
			if err != nil {
				return nil, fmt.Errorf("agent %s: %w", name, err)
			}
			agents[name] = ws
		}
	}
	return agents, nil
}

// silenceTimeout maps the config's silence_timeout to twilio.Config's:
// unset is the agent's default (0 there), a configured 0 turns it off
// (negative there).
func silenceTimeout(d *Duration) time.Duration {
	switch {
	case d == nil:
		return 0
	case *d == 0:
		return -1
	default:
		return time.Duration(*d)
	}
}
