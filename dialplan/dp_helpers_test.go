package dialplan

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-voice/switchboard/agent"
)

// dpPrompts holds the test prompts; plans in tests are loaded from there.
const dpPrompts = "testdata/prompts"

// dpLoad loads src (prompts from testdata/prompts) and fails the test on error.
func dpLoad(t testing.TB, src string, opts LoadOptions) *Plan {
	t.Helper()
	p, err := Load("test.yaml", []byte(src), dpPrompts, opts)
	if err != nil {
		t.Fatalf("load:\n%v", err)
	}
	return p
}

// dpErrors loads src and returns its problems as "line:col: msg" strings.
func dpErrors(t testing.TB, src string, opts LoadOptions) []string {
	t.Helper()
	p, err := Load("test.yaml", []byte(src), dpPrompts, opts)
	if err == nil {
		if p == nil {
			t.Fatal("nil plan without error")
		}
		return nil
	}
	if p != nil {
		t.Fatal("plan returned with errors")
	}
	var errs LoadErrors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("error %T %v is not a non-empty LoadErrors", err, err)
	}
	var out []string
	for _, e := range errs {
		if e.File != "test.yaml" {
			t.Errorf("error names file %q", e.File)
		}
		out = append(out, fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg))
	}
	return out
}

// dpFake is a Runtime that records what it is asked to do.
type dpFake struct {
	mu     sync.Mutex
	calls  []string
	digits []string // answers to successive gathers; then no input
	// agents maps an agent name to its result; absent is nil (done).
	agents      map[string]error
	transferErr error
	answerErr   error
	// block makes Play, Gather and Agent wait for ctx to end.
	block   bool
	started chan struct{} // closed by the first blocking call, when set
}

func (f *dpFake) add(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *dpFake) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *dpFake) wait(ctx context.Context) error {
	if !f.block {
		return nil
	}
	if f.started != nil {
		close(f.started)
		f.started = nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *dpFake) Answer(ctx context.Context) error {
	f.add("answer")
	return f.answerErr
}

func (f *dpFake) Play(ctx context.Context, p *Prompt) error {
	f.add("play " + p.Name)
	return f.wait(ctx)
}

func (f *dpFake) Gather(ctx context.Context, g GatherRequest) (string, error) {
	name := "-"
	if g.Prompt != nil {
		name = g.Prompt.Name
	}
	f.add(fmt.Sprintf("gather %s %d", name, g.MaxDigits))
	if err := f.wait(ctx); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.digits) == 0 {
		return "", nil
	}
	d := f.digits[0]
	f.digits = f.digits[1:]
	return d, nil
}

func (f *dpFake) Agent(ctx context.Context, name string, params map[string]string) error {
	var ps []string
	for _, k := range slices.Sorted(maps.Keys(params)) {
		ps = append(ps, k+"="+params[k])
	}
	f.add(strings.TrimSpace("agent " + name + " " + strings.Join(ps, " ")))
	if err := f.wait(ctx); err != nil {
		return err
	}
	return f.agents[name]
}

func (f *dpFake) Transfer(ctx context.Context, t TransferRequest) error {
	s := fmt.Sprintf("transfer %s %s", t.Mode, t.Target)
	if t.CallerID != "" {
		s += " cid=" + t.CallerID
	}
	for _, k := range slices.Sorted(maps.Keys(t.Headers)) {
		s += " " + k + "=" + t.Headers[k]
	}
	f.add(s)
	return f.transferErr
}

func (f *dpFake) Hangup(ctx context.Context, cause string) error {
	f.add("hangup " + cause)
	return nil
}

func (f *dpFake) Reject(ctx context.Context, code int, reason string) error {
	f.add(fmt.Sprintf("reject %d %s", code, reason))
	return nil
}

var (
	errDPAgentDown = errors.New("agent unreachable")
	errDPHangup    = &agent.HangupError{Reason: "bye"}
)
