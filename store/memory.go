package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// DefaultMemoryCDRs is how many CDRs a Memory store keeps for inspection.
const DefaultMemoryCDRs = 1000

// Memory is the Store of a single gateway process. State lives and dies with
// the process, so there are no TTLs: a slot is held until Release and a
// call until RemoveCall. It keeps the last DefaultMemoryCDRs CDRs for tests
// and the admin API; durable CDRs need a JSONLSink next to it.
type Memory struct {
	instance string

	mu     sync.Mutex
	closed bool
	calls  map[string]CallRecord
	limits map[string]map[string]struct{} // limit key -> call ids holding a slot
	cdrs   [][]byte
	server *memoryServer // nil when nobody serves control

	done chan struct{} // closed by Close; ends ServeControl
}

// memoryServer is one ServeControl call: its handler and the handler runs it
// must wait for. A WaitGroup per server, so a later ServeControl never adds
// to a group an earlier one is still waiting on.
type memoryServer struct {
	handle  func(context.Context, ControlRequest) ControlReply
	running sync.WaitGroup
}

var (
	_ Store   = (*Memory)(nil)
	_ CDRSink = (*Memory)(nil)
)

// NewMemory returns an empty in-process store for instance.
func NewMemory(instance string) *Memory {
	return &Memory{
		instance: instance,
		calls:    make(map[string]CallRecord),
		limits:   make(map[string]map[string]struct{}),
		done:     make(chan struct{}),
	}
}

// Instance returns the id this store acts for.
func (m *Memory) Instance() string { return m.instance }

// PutCall creates or updates a call; see Store.
func (m *Memory) PutCall(_ context.Context, c CallRecord) error {
	c, err := prepareRecord(c, m.instance, time.Now())
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.calls[c.ID] = c
	return nil
}

// RemoveCall deletes a call; removing an unknown call is not an error.
func (m *Memory) RemoveCall(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	delete(m.calls, id)
	return nil
}

// GetCall returns a copy of the call, so callers cannot race the store.
func (m *Memory) GetCall(_ context.Context, id string) (CallRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return CallRecord{}, false, ErrClosed
	}
	c, ok := m.calls[id]
	c.Legs, c.LegInfo = slices.Clone(c.Legs), slices.Clone(c.LegInfo)
	return c, ok, nil
}

// ListCalls returns all calls, oldest first.
func (m *Memory) ListCalls(_ context.Context) ([]CallRecord, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	out := make([]CallRecord, 0, len(m.calls))
	for _, c := range m.calls {
		c.Legs, c.LegInfo = slices.Clone(c.Legs), slices.Clone(c.LegInfo)
		out = append(out, c)
	}
	m.mu.Unlock()
	sortCalls(out)
	return out, nil
}

// Acquire takes a slot in every limit or in none. A call id that already
// holds a slot in a limit is not counted twice there.
func (m *Memory) Acquire(_ context.Context, callID string, limits []Limit) (Lease, error) {
	limits, err := normalizeLimits(callID, limits)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	for _, l := range limits {
		held := m.limits[l.Key]
		if _, ok := held[callID]; !ok && len(held) >= l.Max {
			return nil, &LimitError{Key: l.Key, Max: l.Max}
		}
	}
	keys := make([]string, len(limits))
	for i, l := range limits {
		if m.limits[l.Key] == nil {
			m.limits[l.Key] = make(map[string]struct{})
		}
		m.limits[l.Key][callID] = struct{}{}
		keys[i] = l.Key
	}
	return &memoryLease{m: m, callID: callID, keys: keys}, nil
}

type memoryLease struct {
	m      *Memory
	callID string
	keys   []string
	once   sync.Once
}

// Release frees the slots; later calls do nothing, so a stale lease cannot
// free a slot that the same call id acquired again.
func (l *memoryLease) Release(context.Context) error {
	l.once.Do(func() {
		l.m.mu.Lock()
		defer l.m.mu.Unlock()
		for _, k := range l.keys {
			delete(l.m.limits[k], l.callID)
			if len(l.m.limits[k]) == 0 {
				delete(l.m.limits, k) // keys like "to:<number>" are unbounded
			}
		}
	})
	return nil
}

// AppendCDR keeps the record among the last DefaultMemoryCDRs.
func (m *Memory) AppendCDR(_ context.Context, cdr []byte) error {
	b, err := checkCDR(cdr)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if len(m.cdrs) >= DefaultMemoryCDRs {
		m.cdrs = slices.Delete(m.cdrs, 0, len(m.cdrs)-DefaultMemoryCDRs+1)
	}
	m.cdrs = append(m.cdrs, b)
	return nil
}

// Write makes Memory a CDRSink.
func (m *Memory) Write(ctx context.Context, cdr []byte) error { return m.AppendCDR(ctx, cdr) }

// CDRs returns the records kept, oldest first.
func (m *Memory) CDRs() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.cdrs) // records are never modified in place
}

// Send calls the local handler directly; any other instance is unknown to a
// single process. The handler runs in its own goroutine so that Send stays
// bounded by ctx even when the handler is slow.
func (m *Memory) Send(ctx context.Context, instance string, req ControlRequest) (ControlReply, error) {
	if req.ID == "" {
		req.ID = newID()
	}
	m.mu.Lock()
	srv, closed := m.server, m.closed
	if !closed && srv != nil && instance == m.instance {
		srv.running.Add(1) // under mu, so ServeControl's Wait cannot start first
	}
	m.mu.Unlock()
	switch {
	case closed:
		return ControlReply{}, ErrClosed
	case srv == nil || instance != m.instance:
		return ControlReply{}, fmt.Errorf("%w: %s", ErrUnknownInstance, instance)
	}
	if _, ok := ctx.Deadline(); !ok { // as Redis does: a stuck handler must not hang the caller
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultControlTimeout)
		defer cancel()
	}
	ch := make(chan ControlReply, 1)
	go func() {
		defer srv.running.Done()
		ch <- srv.handle(ctx, req)
	}()
	select {
	case rep := <-ch:
		rep.ID = req.ID
		return rep, nil
	case <-ctx.Done():
		return ControlReply{}, fmt.Errorf("store: control %s %s: %w", req.Action, req.CallID, ctx.Err())
	}
}

// ServeControl installs handle until ctx ends or the store closes, then waits
// for handlers still running. One server at a time.
func (m *Memory) ServeControl(ctx context.Context, handle func(context.Context, ControlRequest) ControlReply) error {
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return ErrClosed
	case m.server != nil:
		m.mu.Unlock()
		return errors.New("store: control is already being served")
	}
	srv := &memoryServer{handle: handle}
	m.server = srv
	m.mu.Unlock()

	var err error
	select {
	case <-ctx.Done():
	case <-m.done:
		err = ErrClosed
	}
	m.mu.Lock()
	m.server = nil
	m.mu.Unlock()
	srv.running.Wait()
	return err
}

// Close ends ServeControl; later operations return ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		close(m.done)
	}
	return nil
}
