package sip

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Registration states.
const (
	StateRegistering  = "registering"
	StateRegistered   = "registered"
	StateFailing      = "failing"
	StateUnregistered = "unregistered"
)

// RegistrationState is a snapshot of a trunk registration, for /health,
// the admin API and logs.
type RegistrationState struct {
	Trunk       string
	State       string        // StateRegistering, StateRegistered, StateFailing or StateUnregistered
	Registrar   string        // address the last REGISTER went to
	Expires     time.Duration // lifetime the registrar granted
	Since       time.Time     // when State last changed
	LastError   string
	NextAttempt time.Time // next refresh or retry
}

// Registration keeps one trunk registered: REGISTER with digest, refresh at
// 75% of the granted lifetime, retries with backoff, and REGISTER with
// Expires: 0 when its context ends.
type Registration struct {
	srv      *Server
	trunk    Trunk
	mon      *TrunkMonitor // nil: resolve the trunk ourselves
	resolver Resolver
	log      *slog.Logger
	tune     regTuning
	done     chan struct{}

	mu    sync.Mutex
	state RegistrationState

	// Owned by the loop goroutine.
	o           outOfDialog
	auth        *authState
	expires     time.Duration // requested: Trunk.Expires, raised by a 423
	contactHost string        // our Contact, moved by Via received/rport (NAT)
	contactPort int
	addrs       []netip.AddrPort // without a monitor: resolved next hops
	addrIdx     int
	dest        netip.AddrPort // where the last REGISTER went
	failures    int
	bound       bool // a binding may exist: unregister at the end
}

// regTuning holds the timings; tests in this package shorten them.
type regTuning struct {
	backoffMin, backoffMax time.Duration
	// attemptWait bounds one attempt. sipgo's own bound (Timer F, 32 s)
	// exceeds the 25% margin a refresh leaves for lifetimes under ~2 min:
	// the binding would lapse before the retry or the next address.
	attemptWait    time.Duration
	unregisterWait time.Duration // bound on the final Expires: 0 exchange
}

var defaultRegTuning = regTuning{backoffMin: 2 * time.Second, backoffMax: 5 * time.Minute,
	attemptWait: 8 * time.Second, unregisterWait: 3 * time.Second}

// Register keeps t registered until ctx ends, resolving its next hop itself
// (explicit addresses, SRV, A/AAAA via net.DefaultResolver). It registers
// whatever t.Register says: that flag is for the caller. Stop registrations
// (and wait for Done) before the Server: the un-REGISTER needs it running.
func (s *Server) Register(ctx context.Context, t Trunk) *Registration {
	return s.RegisterVia(ctx, t, nil)
}

// RegisterVia is Register sending to the monitor's current address, and
// registering again at once when the monitor fails over. m may be nil.
func (s *Server) RegisterVia(ctx context.Context, t Trunk, m *TrunkMonitor) *Registration {
	return s.register(ctx, t, m, defaultRegTuning)
}

func (s *Server) register(ctx context.Context, t Trunk, m *TrunkMonitor, tune regTuning) *Registration {
	r := &Registration{
		srv: s, mon: m, resolver: net.DefaultResolver, tune: tune, done: make(chan struct{}),
		log: s.log.With("trunk", t.Name), o: newOutOfDialog(),
		contactHost: s.cfg.PublicHost, contactPort: s.contactPort(t.Transport),
	}
	r.state = RegistrationState{Trunk: t.Name, State: StateRegistering, Since: time.Now()}
	norm, err := t.Normalize()
	if err != nil {
		r.setState(StateFailing, err.Error(), 0, time.Time{})
		close(r.done)
		return r
	}
	r.trunk, r.expires = norm, norm.Expires
	r.auth = newAuthState(norm.credentials())
	go r.run(ctx)
	return r
}

// State returns a snapshot of the registration.
func (r *Registration) State() RegistrationState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Done is closed when the registration has stopped (after unregistering).
func (r *Registration) Done() <-chan struct{} { return r.done }

func (r *Registration) run(ctx context.Context) {
	defer close(r.done)
	if r.mon != nil {
		// The monitor resolves in the background: wait for its first
		// address instead of failing the first attempt for lack of one.
		moved := r.mon.changes()
		if !r.mon.Current().IsValid() {
			t := time.NewTimer(r.tune.attemptWait)
			select {
			case <-ctx.Done():
			case <-moved:
			case <-t.C:
			}
			t.Stop()
		}
	}
	var wait time.Duration
	var moved <-chan struct{} // nil without a monitor: never ready
	for {
		if wait > 0 && !r.wait(ctx, wait, moved) {
			break
		}
		if r.mon != nil {
			// Taken before the attempt: a failover during it ends the
			// next wait at once.
			moved = r.mon.changes()
		}
		actx, cancel := context.WithTimeout(ctx, r.tune.attemptWait)
		granted, err := r.attempt(actx)
		cancel()
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			if errors.Is(err, errNoAnswer) {
				r.nextAddress()
			}
			r.failures++
			wait = r.backoff()
			r.setState(StateFailing, err.Error(), 0, time.Now().Add(wait))
			continue
		}
		r.failures, r.bound = 0, true
		wait = granted * 3 / 4
		r.setState(StateRegistered, "", granted, time.Now().Add(wait))
	}
	r.unregister()
}

// wait sleeps d; false when ctx ended. A monitor failover ends it early.
func (r *Registration) wait(ctx context.Context, d time.Duration, moved <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-moved:
		r.log.Info("trunk address changed, registering again", "address", r.mon.Current())
	}
	return true
}

// backoff doubles from backoffMin to backoffMax with ±20% jitter, so a
// fleet that lost its registrar does not come back in step.
func (r *Registration) backoff() time.Duration {
	d := r.tune.backoffMin
	for i := 1; i < r.failures && d < r.tune.backoffMax; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(d, r.tune.backoffMax)
}

// unregister removes our binding (Expires: 0), bounded by unregisterWait.
func (r *Registration) unregister() {
	if r.bound {
		ctx, cancel := context.WithTimeout(context.Background(), r.tune.unregisterWait)
		defer cancel()
		res, err := r.srv.sendChain(ctx, r.auth, func() *sipmsg.Request { return r.build(r.dest, 0, "", 0) })
		switch {
		case err != nil:
			r.log.Warn("unregister failed", "registrar", r.dest, "error", err)
		case !res.IsSuccess():
			r.log.Warn("unregister refused", "registrar", r.dest, "code", res.StatusCode, "reason", res.Reason)
		}
	}
	r.setState(StateUnregistered, "", 0, time.Time{})
}

// setState records a snapshot and logs transitions (and a changed error
// while failing, but not every retry with the same one).
func (r *Registration) setState(state, lastErr string, expires time.Duration, next time.Time) {
	r.mu.Lock()
	prev := r.state
	r.state.State, r.state.Expires, r.state.NextAttempt = state, expires, next
	if r.dest.IsValid() {
		r.state.Registrar = r.dest.String()
	}
	if lastErr != "" || state == StateRegistered {
		r.state.LastError = lastErr
	}
	if state != prev.State {
		r.state.Since = time.Now()
	}
	r.mu.Unlock()
	switch {
	case state == StateFailing && next.IsZero():
		r.log.Error("registration not started", "error", lastErr)
	case state == StateFailing && (prev.State != state || prev.LastError != lastErr):
		r.log.Warn("registration failing", "registrar", r.state.Registrar, "error", lastErr, "retry_in", time.Until(next).Round(time.Millisecond), "failures", r.failures)
	case state != prev.State:
		r.log.Info("registration "+state, "registrar", r.state.Registrar, "expires", strconv.Itoa(int(expires/time.Second))+"s")
	}
}
