package main

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/sip"
)

// trunkSet runs the trunks' keep-alive monitors and registrations.
type trunkSet struct {
	trunks   []sip.Trunk
	mu       sync.Mutex
	monitors map[string]*sip.TrunkMonitor
	regs     map[string]*sip.Registration
	stop     context.CancelFunc
}

func buildTrunks(cfg *Config) (*trunkSet, error) {
	ts := &trunkSet{monitors: map[string]*sip.TrunkMonitor{}, regs: map[string]*sip.Registration{}}
	for _, t := range cfg.Trunks {
		password, err := t.Password.Value(t.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("trunk %s: %w", t.Name, err)
		}
		trunk, err := sip.Trunk{
			Name: t.Name, Host: t.Host, Port: t.Port, Transport: t.Transport,
			Username: t.Username, AuthUsername: t.AuthUsername, Password: password, Realm: t.Realm,
			FromUser: t.FromUser, FromDomain: t.FromDomain, Register: t.Register, Expires: time.Duration(t.Expires),
			OutboundProxy: t.OutboundProxy, KeepAlive: time.Duration(t.KeepAlive), CallerIDMode: t.CallerIDMode,
			Addresses: t.Addresses, Diversion: t.Diversion, SRTP: t.SRTP,
		}.Normalize()
		if err != nil {
			return nil, fmt.Errorf("trunk %s: %w", t.Name, err)
		}
		ts.trunks = append(ts.trunks, trunk)
	}
	return ts, nil
}

// addresses lets the access guard trust the addresses a trunk's monitor
// resolved (the registrar we registered with sends our calls).
func (ts *trunkSet) addresses(name string) func() []netip.Addr {
	return func() []netip.Addr {
		ts.mu.Lock()
		m := ts.monitors[name]
		ts.mu.Unlock()
		if m == nil {
			return nil
		}
		var out []netip.Addr
		for _, a := range m.Addresses() {
			out = append(out, a.Addr())
		}
		return out
	}
}

// start runs monitors and registrations until stopAndWait.
func (ts *trunkSet) start(srv *sip.Server, m *metrics) {
	ctx, cancel := context.WithCancel(context.Background())
	ts.mu.Lock()
	ts.stop = cancel
	ts.mu.Unlock()
	for _, t := range ts.trunks {
		mon := srv.Monitor(ctx, t, nil)
		ts.mu.Lock()
		ts.monitors[t.Name] = mon
		ts.mu.Unlock()
		if !t.Register {
			continue
		}
		reg := srv.RegisterVia(ctx, t, mon)
		ts.mu.Lock()
		ts.regs[t.Name] = reg
		ts.mu.Unlock()
		go ts.report(ctx, t.Name, reg, m)
	}
}

func (ts *trunkSet) report(ctx context.Context, name string, reg *sip.Registration, m *metrics) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		v := 0.0
		if reg.State().State == sip.StateRegistered {
			v = 1
		}
		m.trunkRegistered.WithLabelValues(name).Set(v)
		select {
		case <-ctx.Done():
			m.trunkRegistered.WithLabelValues(name).Set(0)
			return
		case <-tick.C:
		}
	}
}

// stopAndWait unregisters (Expires: 0) and waits, bounded, for it to finish.
func (ts *trunkSet) stopAndWait(timeout time.Duration) {
	ts.mu.Lock()
	stop := ts.stop
	ts.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	deadline := time.After(timeout)
	ts.mu.Lock()
	regs := make([]*sip.Registration, 0, len(ts.regs))
	for _, r := range ts.regs {
		regs = append(regs, r)
	}
	ts.mu.Unlock()
	for _, r := range regs {
		select {
		case <-r.Done():
		case <-deadline:
			return
		}
	}
}

// states is each trunk's registration and reachability, for /trunks.
func (ts *trunkSet) states(w http.ResponseWriter, _ *http.Request) {
	type state struct {
		Name         string                 `json:"name"`
		Up           bool                   `json:"up"`
		Address      string                 `json:"address,omitempty"`
		Registration *sip.RegistrationState `json:"registration,omitempty"`
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := []state{}
	for _, t := range ts.trunks {
		s := state{Name: t.Name}
		if m := ts.monitors[t.Name]; m != nil {
			s.Up = m.Up()
			if a := m.Current(); a.IsValid() {
				s.Address = a.String()
			}
		}
		if r := ts.regs[t.Name]; r != nil {
			st := r.State()
			s.Registration = &st
		}
		out = append(out, s)
	}
	writeJSON(w, http.StatusOK, map[string]any{"trunks": out})
}
