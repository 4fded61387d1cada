package main

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/transfer"
)

// TransferConfig governs cold and warm transfers: where calls may be sent
// (a transfer is a paid outbound call, never an open relay) and how long
// each step may take.
type TransferConfig struct {
	// Allow lists the permitted targets: E.164 numbers ("+15551234567"),
	// prefixes ending in "*" ("+1555*") and SIP domains ("@pbx.example.com").
	// Empty refuses every transfer.
	Allow []string `yaml:"allow"`
	// Fallback after a failed cold transfer: agent (back to the bot, or the
	// dialplan's on_failure without one), bridge (dial and bridge the
	// target ourselves) or dialplan (on_failure even with a bot).
	Fallback      string   `yaml:"fallback"`
	ReferTimeout  Duration `yaml:"refer_timeout"`
	AnswerTimeout Duration `yaml:"answer_timeout"`
	// CallerID shown to the human: "caller" (the original caller's number,
	// where the trunk allows it) or "trunk" (the trunk's own number).
	CallerID string `yaml:"caller_id"`
	// AcceptDigit lets the human accept a warm transfer by pressing it.
	AcceptDigit string `yaml:"accept_digit"`
	// HoldAudio is a WAV played to the caller while a transfer is under
	// way; empty plays ringback.
	HoldAudio string `yaml:"hold_audio"`
	// DefaultTrunk places numbers for calls that did not come from a trunk.
	DefaultTrunk string `yaml:"default_trunk"`
}

// gatewayDialer dials through the gateway's SIP server, which is built
// after the executor that needs it.
type gatewayDialer struct{ g *gateway }

func (d gatewayDialer) Dial(ctx context.Context, target string, offer []byte, opts sip.DialOptions) (*sip.OutboundCall, error) {
	return d.g.srv.Dial(ctx, target, offer, opts)
}

func buildTransfers(cfg *Config, g *gateway, trunks *trunkSet, legCfg media.LegConfig, answerCfg media.AnswerConfig) (*transfer.Service, error) {
	tc := cfg.Transfer
	allow, err := transfer.ParseAllowlist(tc.Allow)
	if err != nil {
		return nil, err
	}
	sc := transfer.Config{
		Allow: allow, Dialer: gatewayDialer{g}, Trunks: trunks.trunks, Monitor: trunks.monitor,
		DefaultTrunk: tc.DefaultTrunk, Media: legCfg, Offer: answerCfg,
		ReferTimeout: time.Duration(tc.ReferTimeout), AnswerTimeout: time.Duration(tc.AnswerTimeout),
		Fallback: tc.Fallback, CallerIDFromCaller: tc.CallerID != "trunk",
	}
	switch tc.CallerID {
	case "", "caller", "trunk":
	default:
		return nil, fmt.Errorf("transfer: caller_id %q (expected caller or trunk)", tc.CallerID)
	}
	if tc.AcceptDigit != "" {
		if len(tc.AcceptDigit) != 1 || !isDTMF(rune(tc.AcceptDigit[0])) {
			return nil, fmt.Errorf("transfer: accept_digit %q is not one DTMF key", tc.AcceptDigit)
		}
		sc.AcceptDigit = rune(tc.AcceptDigit[0])
	}
	if tc.HoldAudio != "" {
		if sc.Hold, err = media.ReadWAVFile(tc.HoldAudio); err != nil {
			return nil, fmt.Errorf("transfer: hold_audio: %w", err)
		}
	}
	return transfer.New(sc)
}

func isDTMF(r rune) bool {
	return (r >= '0' && r <= '9') || r == '*' || r == '#' || (r >= 'A' && r <= 'D')
}

// monitor is the live next hop of a trunk, nil before it is probed.
func (ts *trunkSet) monitor(name string) *sip.TrunkMonitor {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.monitors[name]
}
