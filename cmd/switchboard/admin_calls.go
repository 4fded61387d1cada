package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/agent/twilio"
	"github.com/switchboard-voice/switchboard/dialplan"
	"github.com/switchboard-voice/switchboard/store"
)

// fleetCalls is callControl over the fleet: the registry lists every
// instance's calls, and requests for another instance's call go to it.
type fleetCalls struct {
	exec  *dialplan.Executor
	fleet *fleet
}

// List reads the fleet's registry. When the registry is unreachable it
// falls back to this instance's own calls and says the list is partial.
func (f *fleetCalls) List(ctx context.Context) (callList, error) {
	recs, err := f.fleet.st.ListCalls(ctx)
	partial := errors.Is(err, store.ErrUnavailable)
	switch {
	case partial:
		recs = recs[:0]
		for _, c := range f.exec.Calls() {
			recs = append(recs, f.fleet.record(c))
		}
		slices.SortFunc(recs, func(a, b store.CallRecord) int { return a.Started.Compare(b.Started) })
	case err != nil:
		return callList{}, err
	}
	out := callList{Calls: make([]callView, 0, len(recs)), Partial: partial}
	if partial {
		out.Error = err.Error()
	}
	for _, c := range recs {
		v := callView{ID: c.ID, Instance: c.Instance, Trunk: c.Trunk, From: c.From, To: c.To,
			State: c.State, Rule: c.Rule, Agent: c.Agent, Transfer: c.Transfer, Started: c.Started}
		for _, l := range c.LegInfo {
			v.Legs = append(v.Legs, legView{CallID: l.CallID, Role: l.Role, Target: l.Target, State: l.State})
		}
		out.Calls = append(out.Calls, v)
	}
	return out, nil
}

func (f *fleetCalls) Hangup(ctx context.Context, id, reason string) error {
	err := f.exec.Hangup(id, reason)
	if errors.Is(err, dialplan.ErrNoCall) {
		return f.remote(ctx, id, "hangup", map[string]string{"reason": reason})
	}
	return err
}

func (f *fleetCalls) Transfer(ctx context.Context, id string, req agent.TransferRequest) error {
	err := f.exec.Transfer(id, req)
	if errors.Is(err, dialplan.ErrNoCall) {
		return f.remote(ctx, id, "transfer", transferArgs(req))
	}
	return err
}

// headerArg prefixes a transfer's custom headers among a control request's
// arguments.
const headerArg = "header:"

// transferArgs and transferRequest carry a transfer request, custom
// headers included, in a control request's arguments.
func transferArgs(req agent.TransferRequest) map[string]string {
	args := map[string]string{"mode": string(req.Mode), "target": req.Target, "context": req.Context}
	for name, v := range req.Headers {
		args[headerArg+name] = v
	}
	return args
}

func transferRequest(args map[string]string) agent.TransferRequest {
	req := agent.TransferRequest{Mode: agent.TransferMode(args["mode"]), Target: args["target"], Context: args["context"]}
	for k, v := range args {
		if name, ok := strings.CutPrefix(k, headerArg); ok {
			if req.Headers == nil {
				req.Headers = map[string]string{}
			}
			req.Headers[name] = v
		}
	}
	return req
}

// remote asks the instance that owns call id to act on it, and returns its
// answer: nil, or its refusal with the code that says what kind.
func (f *fleetCalls) remote(ctx context.Context, id, action string, args map[string]string) error {
	rec, ok, err := f.fleet.st.GetCall(ctx, id)
	switch {
	case err != nil:
		return err
	case !ok || rec.Instance == f.fleet.st.Instance():
		return fmt.Errorf("%w: %s", errCallNotFound, id)
	}
	reply, err := f.fleet.st.Send(ctx, rec.Instance, store.ControlRequest{CallID: id, Action: action, Args: args})
	if err != nil {
		return fmt.Errorf("instance %s: %w", rec.Instance, err)
	}
	if !reply.OK {
		return &remoteError{instance: rec.Instance, code: reply.Code, msg: reply.Error}
	}
	return nil
}

// adminHandler builds the admin listener's routes.
func (g *gateway) adminHandler() (http.Handler, error) {
	token, err := g.cfg.Admin.Token.Value(g.cfg.Admin.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	// The fleet's series are read when scraped, and /metrics is served
	// here only.
	g.metrics.watchFleet(g.fleet)
	a := &adminServer{
		log:           g.log,
		token:         token,
		publicMetrics: g.cfg.Admin.PublicMetrics,
		pprof:         g.cfg.Admin.Pprof,
		ready:         func() bool { return g.ready.Load() && g.fleet.ready() },
		metrics:       g.metrics.handler(),
		calls:         &fleetCalls{exec: g.exec, fleet: g.fleet},
	}
	a.trunks = g.trunks.states
	if tw := g.cfg.Admin.Twilio; tw.Password != "" {
		password, _ := tw.Password.Value("")
		a.twilio = twilio.NewRESTHandler(twilioCalls{g.exec}, tw.AccountSid, tw.Username, password, g.log)
	}
	return a.routes(), nil
}

// twilioCalls finds calls by the callSid bots were given.
type twilioCalls struct{ exec *dialplan.Executor }

func (d twilioCalls) Lookup(callSid string) (twilio.CallControl, bool) {
	for _, c := range d.exec.Calls() {
		if twilio.CallSid(c.ID) == callSid {
			return twilioCall{exec: d.exec, snap: c, sid: callSid}, true
		}
	}
	return nil, false
}

type twilioCall struct {
	exec *dialplan.Executor
	snap dialplan.CallSnapshot
	sid  string
}

func (c twilioCall) Hangup(reason string) error { return c.exec.Hangup(c.snap.ID, reason) }
func (c twilioCall) Transfer(req agent.TransferRequest) error {
	return c.exec.Transfer(c.snap.ID, req)
}

func (c twilioCall) State() twilio.CallState {
	status := "in-progress"
	if c.snap.State == dialplan.StateRinging {
		status = "ringing"
	}
	return twilio.CallState{CallSid: c.sid, From: c.snap.From, To: c.snap.To, Status: status,
		StartTime: c.snap.Started, Duration: time.Since(c.snap.Started)}
}
