package transfer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
)

// Dialer places outbound INVITEs; *sip.Server is one.
type Dialer interface {
	Dial(ctx context.Context, target string, offer []byte, opts sip.DialOptions) (*sip.OutboundCall, error)
}

// Fallbacks: what a failed cold transfer turns into.
const (
	FallbackAgent    = "agent"    // back to the bot (or on_failure, without one)
	FallbackBridge   = "bridge"   // dial the target ourselves and bridge
	FallbackDialplan = "dialplan" // the dialplan's on_failure branch
)

// Config is what every transfer of the gateway shares.
type Config struct {
	Allow  Allowlist
	Dialer Dialer
	// Trunks are the configured trunks; Monitor finds a trunk's live
	// next hop (nil: the trunk's own address).
	Trunks  []sip.Trunk
	Monitor func(name string) *sip.TrunkMonitor
	// DefaultTrunk places numbers for calls that did not come from a
	// trunk; "" uses the first trunk.
	DefaultTrunk string

	Media media.LegConfig
	Offer media.AnswerConfig // codecs and local address; the port is per leg

	ReferTimeout  time.Duration // REFER to final NOTIFY; default 30 s
	AnswerTimeout time.Duration // a dialled leg ringing; default 30 s
	Fallback      string        // after a failed cold transfer
	// CallerIDFromCaller shows the original caller's number to the human;
	// otherwise the trunk's own number is shown.
	CallerIDFromCaller bool
	// AcceptDigit, when set, lets the human accept a warm transfer with it.
	AcceptDigit rune
	// Hold is played to the caller while a transfer is under way; nil
	// sends comfort silence.
	Hold []int16
}

// Service carries out transfers.
type Service struct{ cfg Config }

// New checks cfg and fills defaults.
func New(cfg Config) (*Service, error) {
	if cfg.ReferTimeout <= 0 {
		cfg.ReferTimeout = 30 * time.Second
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = 30 * time.Second
	}
	switch cfg.Fallback {
	case "":
		cfg.Fallback = FallbackAgent
	case FallbackAgent, FallbackBridge, FallbackDialplan:
	default:
		return nil, fmt.Errorf("transfer: fallback %q (expected agent, bridge or dialplan)", cfg.Fallback)
	}
	if cfg.Dialer == nil {
		return nil, errors.New("transfer: no dialer")
	}
	return &Service{cfg: cfg}, nil
}

// Config returns the service's settings.
func (s *Service) Config() Config { return s.cfg }

// Resolve finds the target for a call that arrived on trunkName, and
// refuses it unless the allowlist permits it.
func (s *Service) Resolve(raw, trunkName string) (Target, error) {
	t, err := Resolve(raw, s.trunk(trunkName), s.cfg.Trunks)
	if err != nil {
		return Target{}, err
	}
	if !s.cfg.Allow.Permits(t) {
		return Target{}, fmt.Errorf("%w: %s", ErrNotAllowed, raw)
	}
	return t, nil
}

func (s *Service) trunk(name string) *sip.Trunk {
	for _, want := range []string{name, s.cfg.DefaultTrunk} {
		for i := range s.cfg.Trunks {
			if want != "" && s.cfg.Trunks[i].Name == want {
				return &s.cfg.Trunks[i]
			}
		}
	}
	if len(s.cfg.Trunks) > 0 {
		return &s.cfg.Trunks[0]
	}
	return nil
}

// diversion is the Diversion header a trunk wants on transfers.
func diversion(t *sip.Trunk) []sipmsg.Header {
	if t == nil || t.Diversion == "" {
		return nil
	}
	return []sipmsg.Header{sipmsg.NewHeader("Diversion", fmt.Sprintf("<sip:%s@%s>;reason=unconditional", t.Diversion, trunkDomain(t)))}
}

// customHeaders turns checked name/value pairs into headers.
func customHeaders(h map[string]string) ([]sipmsg.Header, error) {
	out := make([]sipmsg.Header, 0, len(h))
	for name, v := range h {
		if err := sip.CheckHeaderValue(v); err != nil || strings.ContainsAny(name, " :\r\n\t") || name == "" {
			return nil, fmt.Errorf("transfer: header %q is not valid", name)
		}
		out = append(out, sipmsg.NewHeader(name, v))
	}
	return out, nil
}

// Status is a transfer's progress, reported as it happens.
type Status struct {
	State  string // trying, ringing, completed, failed
	Code   int
	Reason string
}

// Transfer states.
const (
	StateTrying    = "trying"
	StateRinging   = "ringing"
	StateCompleted = "completed"
	StateFailed    = "failed"
)

// Refer asks the caller's side to call t (a cold transfer) and waits for
// the outcome: nil when the far end reports a 2xx, an error otherwise.
// The caller of Refer ends the dialog afterwards.
func (s *Service) Refer(ctx context.Context, call *sip.InboundCall, t Target, headers map[string]string, progress func(Status)) error {
	extra, err := customHeaders(headers)
	if err != nil {
		return err
	}
	extra = append(extra, diversion(t.Trunk)...)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReferTimeout)
	defer cancel()
	return call.Refer(ctx, sip.ReferOptions{ReferTo: t.URI, ReferredBy: call.RequestURI, Headers: extra}, provisional(progress))
}

// provisional reports 1xx progress (from a sipfrag or the dialled leg) as
// trying or ringing; final outcomes are the caller's to report.
func provisional(progress func(Status)) func(code int, reason string) {
	return func(code int, reason string) {
		if progress == nil || code >= 200 {
			return
		}
		st := StateTrying
		if code == 180 || code == 183 {
			st = StateRinging
		}
		progress(Status{State: st, Code: code, Reason: reason})
	}
}

// FailureCode is the SIP status behind a failed transfer: the refusal's
// code, 408 when the target rang out, 0 when there is none (a REFER never
// notified, a refused target).
func FailureCode(err error) int {
	if errors.Is(err, ErrNoAnswer) {
		return 408
	}
	var re *sip.ReferError
	if errors.As(err, &re) {
		return re.Code
	}
	var de *sip.ResponseError
	if errors.As(err, &de) {
		return de.Code
	}
	return 0
}
