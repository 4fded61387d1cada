package sip

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Keep-alive tuning. A probe waits at most maxProbeWait for an answer (or
// the interval, when shorter): a carrier that takes longer than that to
// answer OPTIONS would not set up calls either.
const (
	downAfter       = 3 // consecutive unanswered probes that mark an address down
	maxProbeWait    = 5 * time.Second
	resolveRetryMin = time.Second
	resolveRetryMax = 30 * time.Second
)

// TrunkMonitor knows the trunk's next hops and which one is in use. With a
// KeepAlive interval it sends OPTIONS there: any response, even 401, 404 or
// 405, proves the address alive; downAfter unanswered probes in a row mark
// it down and move to the next address.
type TrunkMonitor struct {
	srv      *Server
	trunk    Trunk
	resolver Resolver
	log      *slog.Logger
	done     chan struct{}

	mu      sync.Mutex
	addrs   []netip.AddrPort
	cur     int
	up      bool
	changed chan struct{} // closed and replaced when the current address changes
}

// Monitor resolves the trunk's addresses with resolver (nil means
// net.DefaultResolver) and, when t.KeepAlive > 0, probes the current one
// until ctx ends. An invalid trunk is logged and leaves the monitor without
// an address.
func (s *Server) Monitor(ctx context.Context, t Trunk, resolver Resolver) *TrunkMonitor {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	m := &TrunkMonitor{srv: s, resolver: resolver, done: make(chan struct{}), changed: make(chan struct{})}
	norm, err := t.Normalize()
	m.trunk = norm
	m.log = s.log.With("trunk", t.Name)
	if err != nil {
		m.log.Error("trunk monitor not started", "error", err)
		close(m.done)
		return m
	}
	go m.run(ctx)
	return m
}

// Current is the address requests to the trunk should go to; invalid until
// the first resolution succeeded.
func (m *TrunkMonitor) Current() netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.addrs) == 0 {
		return netip.AddrPort{}
	}
	return m.addrs[m.cur]
}

// Up reports whether the current address answered its last probe. Without
// keep-alive it is true as soon as there is an address.
func (m *TrunkMonitor) Up() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.up
}

// Addresses returns the resolved next hops in failover order.
func (m *TrunkMonitor) Addresses() []netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.addrs)
}

// Done is closed when the monitor has stopped.
func (m *TrunkMonitor) Done() <-chan struct{} { return m.done }

// changes is closed at the next change of the current address.
func (m *TrunkMonitor) changes() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// notifyLocked wakes whoever waits on changes; m.mu is held.
func (m *TrunkMonitor) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *TrunkMonitor) run(ctx context.Context) {
	defer close(m.done)
	if !m.resolve(ctx) {
		return
	}
	if m.trunk.KeepAlive == 0 {
		m.mu.Lock()
		m.up = true
		m.mu.Unlock()
		<-ctx.Done()
		return
	}
	o := newOutOfDialog()
	auth := newAuthState(m.trunk.credentials())
	misses := 0
	for {
		start := time.Now()
		cur := m.Current()
		alive := m.probe(ctx, &o, auth, cur)
		if ctx.Err() != nil {
			return
		}
		next := m.trunk.KeepAlive - time.Since(start)
		if alive {
			misses = 0
			m.setUp(true)
		} else if misses++; misses >= downAfter {
			misses = 0
			m.failover(ctx, cur)
			next = 0 // probe the new address at once
		}
		if !sleep(ctx, next) {
			return
		}
	}
}

// resolve fills the address list, retrying with backoff until it works or
// ctx ends.
func (m *TrunkMonitor) resolve(ctx context.Context) bool {
	wait := resolveRetryMin
	for {
		addrs, err := ResolveTrunk(ctx, m.resolver, m.trunk)
		if err == nil {
			if addrs = m.srv.usable(addrs); len(addrs) == 0 {
				err = errors.New("no address of the listener's IP family")
			}
		}
		if err == nil {
			m.mu.Lock()
			m.addrs, m.cur = addrs, 0
			m.notifyLocked()
			m.mu.Unlock()
			m.log.Info("trunk resolved", "addresses", addrs)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		m.log.Warn("trunk resolution failed", "error", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return false
		}
		wait = min(2*wait, resolveRetryMax)
	}
}

// probe sends one OPTIONS (answering a digest challenge once, as some
// carriers log unauthenticated probes) and reports whether any response came.
func (m *TrunkMonitor) probe(ctx context.Context, o *outOfDialog, auth *authState, dest netip.AddrPort) bool {
	ctx, cancel := context.WithTimeout(ctx, min(m.trunk.KeepAlive, maxProbeWait))
	defer cancel()
	t := m.trunk
	build := func() *sipmsg.Request {
		req := m.srv.trunkRequest(t, o, sipmsg.OPTIONS, trunkURI(t), "", dest)
		contact := m.srv.contact(t.Transport)
		contact.Address.User = t.FromUser
		req.AppendHeader(&contact)
		req.AppendHeader(sipmsg.NewHeader("Accept", "application/sdp"))
		return req
	}
	res, err := m.srv.sendChain(ctx, auth, build)
	if res != nil {
		return true
	}
	m.log.Debug("trunk probe unanswered", "address", dest, "error", err)
	return false
}

func (m *TrunkMonitor) setUp(up bool) {
	m.mu.Lock()
	was := m.up
	m.up = up
	m.mu.Unlock()
	if up && !was {
		m.log.Info("trunk address up", "address", m.Current())
	}
}

// failover marks the current address down and moves to the next one; after
// the last, DNS is asked again (the carrier may have moved) and the list
// restarts from the top.
func (m *TrunkMonitor) failover(ctx context.Context, from netip.AddrPort) {
	m.mu.Lock()
	m.up = false
	m.cur++
	wrapped := m.cur >= len(m.addrs)
	if wrapped {
		m.cur = 0
	}
	to := m.addrs[m.cur]
	m.notifyLocked()
	m.mu.Unlock()
	m.log.Warn("trunk address down, failing over", "from", from, "to", to, "unanswered_probes", downAfter)
	if wrapped {
		ctx, cancel := context.WithTimeout(ctx, maxProbeWait)
		defer cancel()
		if addrs, err := ResolveTrunk(ctx, m.resolver, m.trunk); err == nil {
			if addrs = m.srv.usable(addrs); len(addrs) > 0 && !slices.Equal(addrs, m.Addresses()) {
				m.mu.Lock()
				m.addrs, m.cur = addrs, 0
				m.notifyLocked()
				m.mu.Unlock()
				m.log.Info("trunk re-resolved", "addresses", addrs)
			}
		}
	}
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
