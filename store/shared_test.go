package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// impl opens stores of one implementation for the shared behaviour tests.
type impl struct {
	name string
	open func(t *testing.T, instance string) Store
	cdrs func(t *testing.T, s Store) []string // records appended so far, oldest first
}

func impls() []impl {
	return []impl{
		{
			name: "memory",
			open: func(t *testing.T, instance string) Store {
				m := NewMemory(instance)
				t.Cleanup(func() { _ = m.Close() })
				return m
			},
			cdrs: func(_ *testing.T, s Store) []string {
				var out []string
				for _, b := range s.(*Memory).CDRs() {
					out = append(out, string(b))
				}
				return out
			},
		},
		{
			name: "redis",
			open: func(t *testing.T, instance string) Store {
				prefix, _ := redisPrefix(t)
				return openRedis(t, fastOptions(prefix, instance, nil))
			},
			cdrs: func(t *testing.T, s Store) []string {
				r := s.(*Redis)
				msgs, err := r.client.XRange(context.Background(), r.opt.CDRStream, "-", "+").Result()
				if err != nil {
					t.Fatalf("XRANGE: %v", err)
				}
				var out []string
				for _, m := range msgs {
					out = append(out, m.Values["cdr"].(string))
				}
				return out
			},
		},
	}
}

// forEach runs a behaviour test against every implementation, so Memory and
// Redis cannot drift apart in what callers observe.
func forEach(t *testing.T, test func(t *testing.T, im impl)) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) { test(t, im) })
	}
}

func TestCallRegistry(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		ctx := context.Background()
		s := im.open(t, "gw1")
		legs := []string{"leg-1"}
		info := []LegRecord{{CallID: "a", Role: "caller", State: "on_hold"}, {Role: "transfer", Target: "sip:ann@pbx", State: "dialing"}}
		start := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
		if err := s.PutCall(ctx, CallRecord{ID: "a", Trunk: "telnyx", To: "+15551230000", State: "ringing", Legs: legs, LegInfo: info, Started: start}); err != nil {
			t.Fatal(err)
		}
		legs[0] = "mutated" // the store must have its own copy
		info[1].State = "mutated"
		if err := s.PutCall(ctx, CallRecord{ID: "b", State: "answered"}); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.GetCall(ctx, "a")
		if err != nil || !ok {
			t.Fatalf("GetCall a = %v, %v", ok, err)
		}
		if got.Instance != "gw1" || got.Trunk != "telnyx" || got.State != "ringing" || !got.Started.Equal(start) ||
			got.Updated.IsZero() || !slices.Equal(got.Legs, []string{"leg-1"}) ||
			!slices.Equal(got.LegInfo, []LegRecord{{CallID: "a", Role: "caller", State: "on_hold"}, {Role: "transfer", Target: "sip:ann@pbx", State: "dialing"}}) {
			t.Fatalf("GetCall a = %+v", got)
		}
		got.State = "answered"
		if err := s.PutCall(ctx, got); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListCalls(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" || list[0].State != "answered" {
			t.Fatalf("ListCalls = %+v, %v", list, err)
		}
		if err := s.RemoveCall(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.GetCall(ctx, "a"); ok || err != nil {
			t.Fatalf("GetCall after remove = %v, %v", ok, err)
		}
		if list, _ := s.ListCalls(ctx); len(list) != 1 || list[0].ID != "b" {
			t.Fatalf("ListCalls after remove = %+v", list)
		}
		if err := s.PutCall(ctx, CallRecord{ID: "c", Instance: "gw2"}); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("PutCall of another instance's call = %v", err)
		}
		if err := s.PutCall(ctx, CallRecord{}); err == nil {
			t.Fatal("PutCall without id succeeded")
		}
	})
}

func TestLimits(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		ctx := context.Background()
		s := im.open(t, "gw1")
		total, trunk := Limit{Key: "total", Max: 2}, Limit{Key: "trunk:telnyx", Max: 1}
		l1, err := s.Acquire(ctx, "c1", []Limit{total, trunk})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Acquire(ctx, "c2", []Limit{total, trunk})
		var le *LimitError
		if !errors.As(err, &le) || !errors.Is(err, ErrLimitReached) || le.Key != "trunk:telnyx" || le.Max != 1 {
			t.Fatalf("Acquire over trunk limit = %v", err)
		}
		// All or none: the refused call took no slot in "total".
		if _, err := s.Acquire(ctx, "c3", []Limit{total}); err != nil {
			t.Fatalf("Acquire c3 = %v", err)
		}
		if _, err := s.Acquire(ctx, "c4", []Limit{total, trunk}); !errors.As(err, &le) || le.Key != "total" {
			t.Fatalf("Acquire reports first limit hit: %v", err)
		}
		// The same call id holds one slot, however often it asks.
		if _, err := s.Acquire(ctx, "c3", []Limit{total}); err != nil {
			t.Fatalf("re-Acquire c3 = %v", err)
		}
		if err := l1.Release(ctx); err != nil {
			t.Fatal(err)
		}
		l2, err := s.Acquire(ctx, "c2", []Limit{total, trunk})
		if err != nil {
			t.Fatalf("Acquire after release = %v", err)
		}
		_ = l2
		if err := l1.Release(ctx); err != nil { // twice is harmless
			t.Fatal(err)
		}
		if _, err := s.Acquire(ctx, "c5", []Limit{trunk}); !errors.Is(err, ErrLimitReached) {
			t.Fatalf("a second Release freed someone else's slot: %v", err)
		}
		if _, err := s.Acquire(ctx, "c6", []Limit{{Key: "closed", Max: 0}}); !errors.Is(err, ErrLimitReached) {
			t.Fatalf("Max 0 admitted a call: %v", err)
		}
		none, err := s.Acquire(ctx, "c7", nil)
		if err != nil || none.Release(ctx) != nil {
			t.Fatalf("Acquire without limits = %v", err)
		}
		if _, err := s.Acquire(ctx, "c8", []Limit{{Key: "", Max: 1}}); err == nil || errors.Is(err, ErrLimitReached) {
			t.Fatalf("empty limit key = %v", err)
		}
	})
}

func TestCDRs(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		ctx := context.Background()
		s := im.open(t, "gw1")
		for _, rec := range []string{`{"call_id":"a",` + "\n" + ` "secs": 1}`, `{"call_id":"b"}`} {
			if err := s.AppendCDR(ctx, []byte(rec)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AppendCDR(ctx, []byte(`{"call_id":`)); err == nil {
			t.Fatal("invalid JSON accepted")
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel() // a call's context is often over when its CDR is written
		if err := s.AppendCDR(cancelled, []byte(`{"call_id":"c"}`)); err != nil {
			t.Fatal(err)
		}
		want := []string{`{"call_id":"a","secs":1}`, `{"call_id":"b"}`, `{"call_id":"c"}`}
		var got []string
		eventually(t, 3*time.Second, "CDRs stored", func() bool {
			got = im.cdrs(t, s)
			return slices.Equal(got, want)
		})
	})
}

func TestControl(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		s := im.open(t, "gw1")
		ctx, stop := context.WithCancel(context.Background())
		served := make(chan error, 1)
		release := make(chan struct{})
		go func() {
			served <- s.ServeControl(ctx, func(hctx context.Context, req ControlRequest) ControlReply {
				switch req.Action {
				case "hangup":
					return ControlReply{OK: req.CallID == "a" && req.Args["reason"] == "admin"}
				case "stall":
					<-release // answers only after the sender gave up
				}
				return ControlReply{Error: "unknown action"}
			})
		}()
		req := ControlRequest{CallID: "a", Action: "hangup", Args: map[string]string{"reason": "admin"}}
		var rep ControlReply
		eventually(t, 3*time.Second, "control served", func() bool {
			var err error
			rep, err = s.Send(ctx, "gw1", req)
			return err == nil
		})
		if !rep.OK || rep.ID == "" {
			t.Fatalf("reply = %+v", rep)
		}
		if err := s.ServeControl(ctx, nil); err == nil {
			t.Fatal("a second ServeControl was accepted")
		}
		tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		start := time.Now()
		_, err := s.Send(tctx, "gw1", ControlRequest{CallID: "a", Action: "stall"})
		cancel()
		close(release)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
			t.Fatalf("Send to a stalled handler = %v after %v", err, time.Since(start))
		}
		if _, err := s.Send(ctx, "nobody", req); !errors.Is(err, ErrUnknownInstance) {
			t.Fatalf("Send to unknown instance = %v", err)
		}
		stop()
		if err := <-served; err != nil {
			t.Fatalf("ServeControl = %v", err)
		}
		// Nobody serves any more: the request fails instead of hanging.
		tctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if _, err := s.Send(tctx, "gw1", req); !errors.Is(err, ErrUnknownInstance) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send with nobody serving = %v", err)
		}
	})
}

func TestClosed(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		ctx := context.Background()
		s := im.open(t, "gw1")
		served := make(chan error, 1)
		go func() {
			served <- s.ServeControl(ctx, func(context.Context, ControlRequest) ControlReply { return ControlReply{} })
		}()
		time.Sleep(50 * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("ServeControl after Close = %v", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("Close did not end ServeControl")
		}
		if err := s.PutCall(ctx, CallRecord{ID: "a"}); !errors.Is(err, ErrClosed) {
			t.Fatalf("PutCall after Close = %v", err)
		}
		if _, err := s.Acquire(ctx, "a", []Limit{{Key: "total", Max: 1}}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Acquire after Close = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	})
}
