package dialplan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/switchboard-voice/switchboard/agent"
)

// DryRun is a Runtime that places no call: it writes each step to Out,
// answers successive gathers with Digits, and ends agents and transfers as
// told. `switchboard dialplan test` runs plans on it.
type DryRun struct {
	Out io.Writer
	// Digits is what the caller enters at each gather attempt, in order;
	// "" or "-" is no input, and so is every attempt past the end.
	Digits []string
	// AgentResult is how agents end: "ok" (done, the plan goes on; the
	// default), "hangup" (the agent ends the call) or "fail".
	AgentResult string
	// TransferResult is "ok" (the default) or "fail".
	TransferResult string

	step    int
	gathers int
}

func (d *DryRun) printf(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.Out, "%3d. %s\n", d.step, fmt.Sprintf(format, args...))
}

// Trace implements Tracer: the plan's own steps, indented.
func (d *DryRun) Trace(step string) {
	fmt.Fprintf(d.Out, "     - %s\n", step)
}

// Answer implements Runtime.
func (d *DryRun) Answer(ctx context.Context) error {
	d.printf("answer")
	return ctx.Err()
}

// Play implements Runtime.
func (d *DryRun) Play(ctx context.Context, p *Prompt) error {
	d.printf("play %s (%.2fs)", p.Name, p.Duration().Seconds())
	return ctx.Err()
}

// Gather implements Runtime.
func (d *DryRun) Gather(ctx context.Context, g GatherRequest) (string, error) {
	in := ""
	if d.gathers < len(d.Digits) {
		in = d.Digits[d.gathers]
	}
	d.gathers++
	if in == "-" {
		in = ""
	}
	prompt := "no prompt"
	if g.Prompt != nil {
		prompt = "prompt " + g.Prompt.Name
	}
	term := "none"
	if g.Terminator != "" {
		term = g.Terminator
	}
	got := "no input (timeout)"
	if in != "" {
		got = fmt.Sprintf("caller enters %q", in)
	}
	d.printf("gather: %s, up to %d digit(s), timeout %s, inter-digit %s, terminator %s -> %s",
		prompt, g.MaxDigits, g.Timeout, g.InterDigitTimeout, term, got)
	return in, ctx.Err()
}

// Agent implements Runtime.
func (d *DryRun) Agent(ctx context.Context, name string, params map[string]string) error {
	var ps []string
	for _, k := range slices.Sorted(maps.Keys(params)) {
		ps = append(ps, k+"="+params[k])
	}
	line := "agent " + name
	if len(ps) > 0 {
		line += " {" + strings.Join(ps, ", ") + "}"
	}
	switch d.AgentResult {
	case "hangup":
		d.printf("%s -> the agent hangs up", line)
		return &agent.HangupError{Reason: "dry run"}
	case "fail":
		d.printf("%s -> the agent fails", line)
		return errors.New("dry run: the agent failed")
	}
	d.printf("%s -> the agent is done", line)
	return ctx.Err()
}

// Transfer implements Runtime.
func (d *DryRun) Transfer(ctx context.Context, t TransferRequest) error {
	line := fmt.Sprintf("transfer (%s) to %s", t.Mode, t.Target)
	if t.CallerID != "" {
		line += ", caller id " + t.CallerID
	}
	for _, k := range slices.Sorted(maps.Keys(t.Headers)) {
		line += fmt.Sprintf(", %s: %s", k, t.Headers[k])
	}
	if d.TransferResult == "fail" {
		d.printf("%s -> the transfer fails", line)
		return errors.New("dry run: the transfer failed")
	}
	d.printf("%s -> the transfer completes", line)
	return ctx.Err()
}

// Hangup implements Runtime.
func (d *DryRun) Hangup(ctx context.Context, cause string) error {
	d.printf("hang up (%s)", cause)
	return nil
}

// Reject implements Runtime.
func (d *DryRun) Reject(ctx context.Context, code int, reason string) error {
	d.printf("reject %d %s", code, reason)
	return nil
}
