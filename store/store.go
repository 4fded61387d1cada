package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// CallRecord is one live call in the fleet registry.
//
// The JSON names are the stored form in Redis; they are part of the wire
// format between gateway versions running side by side, so change them only
// by adding fields.
type CallRecord struct {
	ID       string    `json:"id"`       // SIP Call-ID
	Instance string    `json:"instance"` // owner gateway instance id
	Trunk    string    `json:"trunk,omitempty"`
	From     string    `json:"from,omitempty"`
	To       string    `json:"to,omitempty"`
	State    string    `json:"state,omitempty"` // ringing|answered|transferring|bridged|ending
	Rule     string    `json:"rule,omitempty"`
	Agent    string    `json:"agent,omitempty"`
	Legs     []string  `json:"legs,omitempty"`     // call-ids of the legs that have one, the caller's first
	Transfer string    `json:"transfer,omitempty"` // transfer state summary
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
	// LegInfo describes every leg, the caller's first, including a
	// transfer leg still being dialled (no call-id yet).
	LegInfo []LegRecord `json:"leg_info,omitempty"`
}

// LegRecord is one SIP leg of a call in the registry.
type LegRecord struct {
	CallID string `json:"call_id,omitempty"`
	Role   string `json:"role"`             // caller | transfer
	Target string `json:"target,omitempty"` // transfer: the target as requested
	State  string `json:"state,omitempty"`  // ringing|answered|on_hold|dialing|briefing|bridged|...
}

// Limit caps concurrent calls that share a key, e.g. "total",
// "trunk:telnyx" or "to:+15551230000". Max <= 0 admits no call: a limit
// that should not apply is one the caller does not pass.
type Limit struct {
	Key string
	Max int
}

// ControlRequest asks the instance owning a call to act on it.
type ControlRequest struct {
	ID     string            `json:"id"` // filled by Send when empty; the reply carries it back
	CallID string            `json:"call_id"`
	Action string            `json:"action"` // hangup|transfer
	Args   map[string]string `json:"args,omitempty"`
}

// ControlReply is the owner's answer to a ControlRequest.
type ControlReply struct {
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Code classifies Error for the sender (e.g. "no_call", "conflict"),
	// so it can answer as the owner would have; the store does not
	// interpret it.
	Code string `json:"code,omitempty"`
}

// Store is the shared state of the gateway. Memory and Redis implement it.
type Store interface {
	// PutCall creates or updates a call owned by this instance; the owner's
	// heartbeat keeps it alive. RemoveCall deletes it. ListCalls returns
	// the live calls of all instances, oldest first.
	PutCall(ctx context.Context, c CallRecord) error
	RemoveCall(ctx context.Context, id string) error
	ListCalls(ctx context.Context) ([]CallRecord, error)
	GetCall(ctx context.Context, id string) (CallRecord, bool, error)

	// Acquire takes one slot in every limit for callID, all or none. When a
	// limit is full it returns a *LimitError (errors.Is ErrLimitReached)
	// naming the first full limit in the order given.
	Acquire(ctx context.Context, callID string, limits []Limit) (Lease, error)

	// AppendCDR records one JSON-encoded call detail record.
	AppendCDR(ctx context.Context, cdr []byte) error

	// Send delivers req to the instance owning a call and waits for its
	// reply, bounded by ctx. ServeControl handles requests addressed to
	// this instance and blocks until ctx ends or the store is closed.
	Send(ctx context.Context, instance string, req ControlRequest) (ControlReply, error)
	ServeControl(ctx context.Context, handle func(context.Context, ControlRequest) ControlReply) error

	Instance() string
	Close() error
}

// Lease is the set of limit slots held for one call. Release frees them; it
// is safe to call more than once.
type Lease interface {
	Release(ctx context.Context) error
}

// CDRSink receives finished call detail records, one JSON document each.
// Store implementations are sinks too, so a gateway can fan out to a file
// and Redis with MultiSink.
type CDRSink interface {
	Write(ctx context.Context, cdr []byte) error
	Close() error
}

// Sentinel errors. They are values callers compare with errors.Is; nothing
// in the package ever reassigns them.
var (
	ErrLimitReached    = errors.New("store: limit reached")
	ErrUnavailable     = errors.New("store: shared state unavailable")
	ErrUnknownInstance = errors.New("store: unknown instance (not live or not serving control)")
	ErrNotOwner        = errors.New("store: call is owned by another instance")
	ErrClosed          = errors.New("store: closed")
)

// LimitError names the limit that refused a call.
type LimitError struct {
	Key string
	Max int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("store: limit reached: %s (max %d)", e.Key, e.Max)
}

// Unwrap makes errors.Is(err, ErrLimitReached) hold for every LimitError.
func (e *LimitError) Unwrap() error { return ErrLimitReached }

// normalizeLimits validates limits and drops repeated keys (the first one
// wins), so "first limit hit" has one meaning for both implementations.
func normalizeLimits(callID string, limits []Limit) ([]Limit, error) {
	if callID == "" {
		return nil, errors.New("store: acquire: empty call id")
	}
	out := make([]Limit, 0, len(limits))
	for _, l := range limits {
		if l.Key == "" {
			return nil, errors.New("store: acquire: limit with empty key")
		}
		if !slices.ContainsFunc(out, func(o Limit) bool { return o.Key == l.Key }) {
			out = append(out, l)
		}
	}
	return out, nil
}

// prepareRecord fills the fields the owner does not have to repeat on every
// update, and refuses records of other instances: only the owner's
// heartbeat keeps a record alive, so writing someone else's record from
// here would make it outlive its owner.
func prepareRecord(c CallRecord, instance string, now time.Time) (CallRecord, error) {
	if c.ID == "" {
		return c, errors.New("store: put call: empty call id")
	}
	switch c.Instance {
	case "":
		c.Instance = instance
	case instance:
	default:
		return c, fmt.Errorf("%w: call %s belongs to %s, not %s", ErrNotOwner, c.ID, c.Instance, instance)
	}
	if c.Started.IsZero() {
		c.Started = now
	}
	if c.Updated.IsZero() {
		c.Updated = now
	}
	c.Legs = slices.Clone(c.Legs) // the caller may reuse its slices
	c.LegInfo = slices.Clone(c.LegInfo)
	return c, nil
}

func sortCalls(calls []CallRecord) {
	slices.SortFunc(calls, func(a, b CallRecord) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// checkCDR rejects what is not one JSON document and returns a compact,
// private copy: the caller may reuse its buffer, and a JSON-lines file
// needs the record on one line.
func checkCDR(cdr []byte) ([]byte, error) {
	if !json.Valid(cdr) {
		return nil, errors.New("store: CDR is not valid JSON")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, cdr); err != nil {
		return nil, fmt.Errorf("store: CDR: %w", err)
	}
	return b.Bytes(), nil
}

// newID returns a random request id; collisions would cross replies.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
