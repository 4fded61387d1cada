package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-voice/switchboard/dialplan"
	"github.com/switchboard-voice/switchboard/store"
)

// fleet is the gateway's shared state: the store, CDR sinks, and the
// policy for limits when the store is away.
type fleet struct {
	st       store.Store
	redis    *store.Redis // nil for the memory store
	local    *store.Memory
	sinks    store.MultiSink
	limits   LimitsConfig
	failOpen bool
	log      *slog.Logger
	// work runs registry writes off the call goroutines, in order.
	work chan func(context.Context)
	done chan struct{}
	// cdrErrors counts CDRs a sink refused, for metrics.
	cdrErrors atomic.Uint64
}

func openFleet(ctx context.Context, cfg *Config, log *slog.Logger) (*fleet, error) {
	instance := cfg.Store.Instance
	if instance == "" {
		host, _ := os.Hostname()
		instance = host + "-" + strconv.Itoa(os.Getpid())
	}
	f := &fleet{limits: cfg.Limits, failOpen: cfg.Store.OnOutage == "fail_open", log: log,
		local: store.NewMemory(instance), work: make(chan func(context.Context), 4096), done: make(chan struct{})}
	file, auto, stream := cfg.CDR.cdrSinks(cfg.Store.Type)
	switch cfg.Store.Type {
	case "redis":
		// go-redis logs through a process-wide logger (swapped atomically
		// in go-redis); ours takes its lines, in our format.
		redis.SetLogger(redisLogger{log.With("component", "go-redis")})
		url, _ := cfg.Store.URL.Value("")
		r, err := store.NewRedis(ctx, store.RedisOptions{URL: url, Prefix: cfg.Store.Prefix, Instance: instance,
			HeartbeatInterval: time.Duration(cfg.Store.Heartbeat), TTL: time.Duration(cfg.Store.TTL), Logger: log})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		f.st, f.redis = r, r
		if stream {
			f.sinks = append(f.sinks, r)
		}
	default:
		f.st = f.local
	}
	if file != "" {
		sink, err := store.OpenJSONL(file, store.FsyncEachWrite)
		switch {
		case err != nil && auto:
			// Not asked for by name: say so loudly, but run.
			log.Error("CDRs are not recorded: the default CDR file cannot be opened; set cdr.file", "file", file, "error", err)
			file = ""
		case err != nil:
			f.st.Close()
			return nil, fmt.Errorf("cdr.file: %w", err)
		default:
			f.sinks = append(f.sinks, sink)
		}
	}
	switch {
	case len(f.sinks) == 0:
		log.Warn("CDRs are not recorded: cdr.file is empty and there is no Redis stream")
	default:
		log.Info("CDRs", "file", file, "redis_stream", stream)
	}
	go f.run()
	return f, nil
}

// redisLogger hands go-redis' printf-style messages to slog at debug level:
// they are mostly a failed dial per operation during an outage, which the
// store reports once itself (redis unavailable, heartbeat failed).
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (f *fleet) run() {
	defer close(f.done)
	for job := range f.work {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		job(ctx)
		cancel()
	}
}

// enqueue hands a registry write to the worker; a full queue drops it (the
// registry is refreshed by later updates and heartbeats).
func (f *fleet) enqueue(job func(context.Context)) {
	select {
	case f.work <- job:
	default:
		f.log.Warn("store: registry queue full; update dropped")
	}
}

// close flushes the queue and closes the store and sinks.
func (f *fleet) close() {
	close(f.work)
	<-f.done
	if err := f.sinks.Close(); err != nil {
		f.log.Warn("cdr sinks close", "error", err)
	}
	if f.redis != nil {
		_ = f.redis.Close()
	}
	_ = f.local.Close()
}

func (f *fleet) record(c dialplan.CallSnapshot) store.CallRecord {
	rec := store.CallRecord{ID: c.ID, Instance: f.st.Instance(), Trunk: c.Trunk, From: c.From, To: c.To,
		State: string(c.State), Rule: c.Rule, Agent: c.Agent, Transfer: c.Transfer, Started: c.Started, Updated: time.Now()}
	for _, l := range c.Legs {
		if l.CallID != "" {
			rec.Legs = append(rec.Legs, l.CallID)
		}
		rec.LegInfo = append(rec.LegInfo, store.LegRecord{CallID: l.CallID, Role: l.Role, Target: l.Target, State: l.State})
	}
	return rec
}

func (f *fleet) callStarted(c dialplan.CallSnapshot) {
	rec := f.record(c)
	f.enqueue(func(ctx context.Context) { f.warn("register call", f.st.PutCall(ctx, rec)) })
}

func (f *fleet) callUpdated(c dialplan.CallSnapshot) { f.callStarted(c) }

func (f *fleet) callEnded(c dialplan.CallSnapshot, cdr dialplan.CDR) {
	id := c.ID
	f.enqueue(func(ctx context.Context) { f.warn("unregister call", f.st.RemoveCall(ctx, id)) })
	body, err := json.Marshal(struct {
		Instance string `json:"instance"`
		dialplan.CDR
	}{f.st.Instance(), cdr})
	if err != nil {
		f.log.Error("cdr encode", "error", err)
		return
	}
	if len(f.sinks) > 0 {
		// The Redis sink queues (bounded, retried); the file sink appends.
		if err := f.sinks.Write(context.Background(), body); err != nil {
			f.cdrErrors.Add(1)
			f.warn("write cdr", err)
		}
	}
}

func (f *fleet) warn(what string, err error) {
	if err != nil {
		f.log.Warn("store: "+what+" failed", "error", err)
	}
}

// ready reports whether the store lets this instance take calls: with
// on_outage refuse, a Redis outage makes the instance not ready.
func (f *fleet) ready() bool {
	return f.redis == nil || f.failOpen || f.redis.Healthy()
}

// admit takes the call's limit slots. A store outage follows on_outage:
// fail_open counts against this instance alone, refuse turns calls away.
func (f *fleet) admit(ctx context.Context, c dialplan.CallSnapshot) (func(), int) {
	var limits []store.Limit
	if f.limits.MaxCalls > 0 {
		limits = append(limits, store.Limit{Key: "total", Max: f.limits.MaxCalls})
	}
	if f.limits.PerTrunk > 0 && c.Trunk != "" {
		limits = append(limits, store.Limit{Key: "trunk:" + c.Trunk, Max: f.limits.PerTrunk})
	}
	if f.limits.PerNumber > 0 && c.To != "" {
		limits = append(limits, store.Limit{Key: "to:" + c.To, Max: f.limits.PerNumber})
	}
	if len(limits) == 0 {
		return func() {}, 0
	}
	lease, err := f.st.Acquire(ctx, c.ID, limits)
	if errors.Is(err, store.ErrUnavailable) && f.failOpen {
		f.log.Warn("store unavailable: limits counted on this instance only", "call_id", c.ID)
		lease, err = f.local.Acquire(ctx, c.ID, limits)
	}
	var le *store.LimitError
	switch {
	case errors.As(err, &le):
		f.log.Info("call over limit", "call_id", c.ID, "limit", le.Key, "max", le.Max)
		return nil, f.limits.RejectCode
	case err != nil:
		f.log.Warn("limits unavailable: refusing call", "call_id", c.ID, "error", err)
		return nil, 503
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		f.warn("release lease", lease.Release(ctx))
	}, 0
}

// serveControl acts on requests other instances send for our calls.
func (f *fleet) serveControl(ctx context.Context, exec *dialplan.Executor) {
	err := f.st.ServeControl(ctx, func(_ context.Context, req store.ControlRequest) store.ControlReply {
		var err error
		switch req.Action {
		case "hangup":
			err = exec.Hangup(req.CallID, req.Args["reason"])
		case "transfer":
			err = exec.Transfer(req.CallID, transferRequest(req.Args))
		default:
			err = fmt.Errorf("unknown action %q", req.Action)
		}
		if err != nil {
			return store.ControlReply{ID: req.ID, Error: err.Error(), Code: refusalCode(err)}
		}
		return store.ControlReply{ID: req.ID, OK: true}
	})
	if err != nil && ctx.Err() == nil {
		f.log.Warn("store: control channel stopped", "error", err)
	}
}
