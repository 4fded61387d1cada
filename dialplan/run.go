package dialplan

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-voice/switchboard/agent"
)

// Run carries out rule's actions on one call until the call must end, and
// says how it ended. Before the first play, gather, agent or warm transfer
// the call is answered if it is not yet. Reaching the end of the actions
// hangs up normally; an agent's hang-up request hangs up with
// CauseAgentHangup. Run does not end the call itself when it returns
// EndedFailed (an action failed without on_failure, or more than MaxGotos
// jumps: err says which) or EndedCtx (ctx ended: err is ctx's error); the
// caller of Run does. After EndedTransferred the call belongs to the
// transfer.
func (p *Plan) Run(ctx context.Context, rule *Rule, rt Runtime, vars Vars) (Outcome, error) {
	if rule == nil {
		rule = p.Default
	}
	r := &runner{rt: rt, vars: vars, named: map[string]string{}}
	r.tracer, _ = rt.(Tracer)
	r.out.Rule = rule.Name
	b := rule.body
	for {
		f := r.list(ctx, b.actions)
		switch f.kind {
		case flowNext:
			if err := ctx.Err(); err != nil {
				f = r.end(EndedCtx, err)
				break
			}
			r.record("hangup " + CauseNormal)
			f = r.end(EndedCompleted, rt.Hangup(ctx, CauseNormal))
		case flowGoto:
			if r.jumps++; r.jumps > MaxGotos {
				r.trace("more than %d gotos: the call fails", MaxGotos)
				f = r.end(EndedFailed, fmt.Errorf("more than %d gotos in one call (last to %s)", MaxGotos, f.to.name))
				break
			}
			b = f.to
			continue
		}
		r.out.Digits = r.digits
		return r.out, f.err
	}
}

type flowKind int

const (
	flowNext flowKind = iota // go on with the next action
	flowGoto                 // jump to another rule or menu
	flowEnd                  // the call is over for the plan
	flowFail                 // the action failed: on_failure, or the end
)

type flow struct {
	kind flowKind
	to   *block
	err  error
}

// Tracer may be implemented by a Runtime to hear the plan's own steps
// (gotos, the branch a gather takes, on_failure), one line each.
type Tracer interface {
	Trace(step string)
}

// runner is the state of one Run.
type runner struct {
	rt     Runtime
	tracer Tracer
	vars   Vars
	out    Outcome
	jumps  int
	digits string            // the last gather's
	named  map[string]string // gathers with a name
	// answered is set once Answer succeeded or an action answered.
	answered bool
}

func (r *runner) record(s string) { r.out.Actions = append(r.out.Actions, s) }

func (r *runner) trace(format string, args ...any) {
	if r.tracer != nil {
		r.tracer.Trace(fmt.Sprintf(format, args...))
	}
}

func (r *runner) end(ended string, err error) flow {
	r.out.Ended = ended
	return flow{kind: flowEnd, err: err}
}

// list runs actions in order; a failed action runs its on_failure list and
// the plan then goes on after it. Without on_failure, the call fails.
func (r *runner) list(ctx context.Context, actions []*action) flow {
	for _, a := range actions {
		if err := ctx.Err(); err != nil {
			return r.end(EndedCtx, err)
		}
		f := r.do(ctx, a)
		if f.kind == flowFail {
			if err := ctx.Err(); err != nil {
				return r.end(EndedCtx, err)
			}
			if a.onFailure == nil {
				r.trace("line %d: %s failed (%v): the call fails", a.line, a.kind, f.err)
				return r.end(EndedFailed, fmt.Errorf("line %d: %s: %w", a.line, a.kind, f.err))
			}
			r.trace("line %d: %s failed (%v): on_failure", a.line, a.kind, f.err)
			f = r.list(ctx, a.onFailure)
		}
		if f.kind != flowNext {
			return f
		}
	}
	return flow{kind: flowNext}
}

// fail records a failed action.
func (r *runner) fail(what string, err error) flow {
	r.record(what + " failed")
	return flow{kind: flowFail, err: err}
}

func (r *runner) answer(ctx context.Context) error {
	if r.answered {
		return nil
	}
	if err := r.rt.Answer(ctx); err != nil {
		return err
	}
	r.answered = true
	r.record("answer")
	return nil
}

func (r *runner) do(ctx context.Context, a *action) flow {
	switch a.kind {
	case "answer":
		if err := r.answer(ctx); err != nil {
			return r.fail("answer", err)
		}
	case "play":
		what := "play " + a.prompt.Name
		if err := r.answer(ctx); err != nil {
			return r.fail(what, err)
		}
		if err := r.rt.Play(ctx, a.prompt); err != nil {
			return r.fail(what, err)
		}
		r.record(what)
	case "gather":
		return r.gather(ctx, a.gather)
	case "agent":
		return r.agent(ctx, a)
	case "transfer":
		return r.transfer(ctx, a.transfer)
	case "hangup":
		r.record("hangup " + a.cause)
		return r.end(EndedHangup, r.rt.Hangup(ctx, a.cause))
	case "reject":
		what := fmt.Sprintf("reject %d", a.code)
		if r.answered {
			return r.fail(what, errors.New("reject after the call was answered"))
		}
		r.record(what)
		return r.end(EndedReject, r.rt.Reject(ctx, a.code, a.reason))
	case "goto":
		r.record("goto " + a.target)
		r.trace("goto %s", a.target)
		return flow{kind: flowGoto, to: a.to}
	}
	return flow{kind: flowNext}
}

func (r *runner) gather(ctx context.Context, g *gatherSpec) flow {
	if err := r.answer(ctx); err != nil {
		return r.fail("gather", err)
	}
	noInput := false
	for attempt := range g.retries + 1 {
		d, err := r.rt.Gather(ctx, g.req)
		if err != nil {
			return r.fail("gather", err)
		}
		r.digits = d
		if g.name != "" {
			r.named[g.name] = d
		}
		again := ""
		if attempt < g.retries {
			again = fmt.Sprintf(": again (%d of %d)", attempt+2, g.retries+1)
		}
		if noInput = d == ""; noInput {
			r.record("gather no_input")
			r.trace("no input%s", again)
			continue
		}
		r.record("gather " + d)
		if len(g.branches) == 0 {
			return flow{kind: flowNext}
		}
		if b, ok := g.branches[d]; ok {
			return r.branch(ctx, "branch "+d, b)
		}
		r.trace("no branch for %q%s", d, again)
	}
	switch {
	case !noInput && g.noMatch != nil:
		return r.branch(ctx, "no_match", g.noMatch)
	case noInput && g.noInput != nil:
		return r.branch(ctx, "no_input", g.noInput)
	}
	r.trace("no branch taken: on after the gather")
	return flow{kind: flowNext}
}

func (r *runner) branch(ctx context.Context, what string, b *branch) flow {
	if b.to != nil {
		r.record("goto " + b.target)
		r.trace("%s: goto %s", what, b.target)
		return flow{kind: flowGoto, to: b.to}
	}
	r.trace("%s", what)
	return r.list(ctx, b.actions)
}

func (r *runner) agent(ctx context.Context, a *action) flow {
	what := strings.TrimSpace("agent " + a.agent)
	if err := r.answer(ctx); err != nil {
		return r.fail(what, err)
	}
	var params map[string]string
	if a.params != nil {
		params = make(map[string]string, len(a.params))
		for k, t := range a.params {
			params[k] = t.expand(r.lookup)
		}
	}
	err := r.rt.Agent(ctx, a.agent, params)
	switch {
	case err == nil:
		r.record(what)
	case errors.Is(err, errHandedOver):
		// A transfer took the caller; any bridge has ended both legs.
		r.record(what)
		return r.end(EndedTransferred, nil)
	case errors.Is(err, agent.ErrHangup) && ctx.Err() == nil:
		r.record(what)
		r.record("hangup " + CauseAgentHangup)
		return r.end(EndedAgentHangup, r.rt.Hangup(ctx, CauseAgentHangup))
	default:
		return r.fail(what, err)
	}
	return flow{kind: flowNext}
}

func (r *runner) transfer(ctx context.Context, t *transferSpec) flow {
	req := TransferRequest{Mode: t.mode, Target: t.target.expand(r.lookup), CallerID: t.callerID.expand(r.lookup)}
	what := "transfer " + t.mode + " " + req.Target
	if len(t.headers) > 0 {
		req.Headers = make(map[string]string, len(t.headers))
		for k, v := range t.headers {
			req.Headers[k] = v.expand(r.lookup)
		}
	}
	for _, v := range append([]string{req.Target, req.CallerID}, mapValues(req.Headers)...) {
		if strings.ContainsAny(v, "\r\n\x00") {
			return r.fail(what, fmt.Errorf("transfer: an expanded value contains a line break: %q", v))
		}
	}
	if req.Target == "" {
		return r.fail(what, errors.New("transfer: the target expanded to nothing"))
	}
	if t.mode == "warm" {
		if err := r.answer(ctx); err != nil {
			return r.fail(what, err)
		}
	}
	if err := r.rt.Transfer(ctx, req); err != nil {
		return r.fail(what, err)
	}
	r.record(what)
	return r.end(EndedTransferred, nil)
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
