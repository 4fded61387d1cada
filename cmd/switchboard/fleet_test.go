package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/dialplan"
	"github.com/switchboard-voice/switchboard/store"
)

// TestFleetRecordCarriesLegs: the registry record of a call in a warm
// transfer has its state, its transfer summary and both legs, and GET
// /calls shows them.
func TestFleetRecordCarriesLegs(t *testing.T) {
	mem := store.NewMemory("gw-a")
	defer mem.Close()
	f := &fleet{st: mem, local: mem, log: slog.New(slog.DiscardHandler)}
	snap := dialplan.CallSnapshot{ID: "c1", From: "+1555", To: "+1666", State: dialplan.StateTransferring,
		Transfer: "warm sip:ann@pbx: dialing", Started: time.Now(),
		Legs: []dialplan.LegSnapshot{
			{CallID: "c1", Role: dialplan.LegCaller, State: dialplan.LegOnHold},
			{Role: dialplan.LegTransfer, Target: "sip:ann@pbx", State: dialplan.LegDialing},
		}}
	rec := f.record(snap)
	if want := []string{"c1"}; !reflect.DeepEqual(rec.Legs, want) {
		t.Errorf("record Legs = %v, want %v (a leg being dialled has no call-id yet)", rec.Legs, want)
	}
	wantInfo := []store.LegRecord{{CallID: "c1", Role: "caller", State: "on_hold"}, {Role: "transfer", Target: "sip:ann@pbx", State: "dialing"}}
	if !reflect.DeepEqual(rec.LegInfo, wantInfo) || rec.State != "transferring" || rec.Transfer != snap.Transfer || rec.Instance != "gw-a" {
		t.Errorf("record = %+v", rec)
	}
	if err := mem.PutCall(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	list, err := (&fleetCalls{fleet: f}).List(context.Background())
	if err != nil || list.Partial || len(list.Calls) != 1 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	v := list.Calls[0]
	wantLegs := []legView{{CallID: "c1", Role: "caller", State: "on_hold"}, {Role: "transfer", Target: "sip:ann@pbx", State: "dialing"}}
	if v.State != "transferring" || v.Transfer != snap.Transfer || !reflect.DeepEqual(v.Legs, wantLegs) {
		t.Errorf("GET /calls entry = %+v", v)
	}
}

// failingList is a store whose registry cannot be read.
type failingList struct {
	store.Store
	err error
}

func (s failingList) ListCalls(context.Context) ([]store.CallRecord, error) { return nil, s.err }

// TestFleetCallsListPartial: with the registry unreachable GET /calls falls
// back to this instance's calls and says so; other errors stay errors.
func TestFleetCallsListPartial(t *testing.T) {
	exec, err := dialplan.NewExecutor(dialplan.Env{DefaultAgent: "echo", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mem := store.NewMemory("gw-a")
	defer mem.Close()
	for _, tc := range []struct {
		name    string
		err     error
		partial bool
	}{
		{"redis outage", fmt.Errorf("store: list calls: %w: dial tcp: connection refused", store.ErrUnavailable), true},
		{"closed store", store.ErrClosed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fleet{st: failingList{Store: mem, err: tc.err}, local: mem, log: slog.New(slog.DiscardHandler)}
			list, err := (&fleetCalls{exec: exec, fleet: f}).List(context.Background())
			if !tc.partial {
				if err == nil {
					t.Fatalf("List = %+v, want the error", list)
				}
				return
			}
			if err != nil || !list.Partial || list.Calls == nil || list.Error == "" {
				t.Fatalf("List = %+v, %v; want a partial list with the reason", list, err)
			}
		})
	}
}

// TestControlTransferRoundTrip: a transfer request crosses instances with
// its custom headers.
func TestControlTransferRoundTrip(t *testing.T) {
	req := agent.TransferRequest{Mode: agent.TransferWarm, Target: "sip:ann@pbx", Context: "billing",
		Headers: map[string]string{"X-Ticket": "42", "X-Queue": "gold"}}
	b, err := json.Marshal(store.ControlRequest{CallID: "c1", Action: "transfer", Args: transferArgs(req)})
	if err != nil {
		t.Fatal(err)
	}
	var got store.ControlRequest
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if back := transferRequest(got.Args); !reflect.DeepEqual(back, req) {
		t.Errorf("transfer request after the trip = %+v, want %+v", back, req)
	}
}

// TestServeControlAnswersWithCodes: the owner's refusals travel back with
// the code that says what kind they are.
func TestServeControlAnswersWithCodes(t *testing.T) {
	exec, err := dialplan.NewExecutor(dialplan.Env{DefaultAgent: "echo", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mem := store.NewMemory("gw-b")
	defer mem.Close()
	f := &fleet{st: mem, local: mem, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); f.serveControl(ctx, exec) }()
	defer func() { cancel(); <-served }()

	send := func(req store.ControlRequest) store.ControlReply {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			rep, err := mem.Send(ctx, "gw-b", req)
			if err == nil {
				return rep
			}
			if !errors.Is(err, store.ErrUnknownInstance) || time.Now().After(deadline) {
				t.Fatalf("Send: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, tc := range []struct {
		action string
		code   string
	}{
		{"hangup", codeNoCall},
		{"transfer", codeNoCall},
		{"mute", ""},
	} {
		rep := send(store.ControlRequest{CallID: "gone", Action: tc.action, Args: transferArgs(agent.TransferRequest{Target: "sip:ann@pbx"})})
		if rep.OK || rep.Code != tc.code || rep.Error == "" {
			t.Errorf("%s of an unknown call: reply %+v, want code %q", tc.action, rep, tc.code)
		}
	}
}

// TestPrintCallsShowsTransfer: `switchboard calls` has a TRANSFER column
// and warns when the list is partial.
func TestPrintCallsShowsTransfer(t *testing.T) {
	now := time.Now()
	list := callList{Partial: true, Error: "store: list calls: redis down", Calls: []callView{
		{ID: "c1", Instance: "gw-a", From: "+1555", To: "+1666", State: "transferring", Agent: "bot",
			Transfer: "warm sip:ann@pbx: briefing", Started: now.Add(-42 * time.Second)},
		{ID: "c2", Instance: "gw-a", From: "+1777", To: "+1666", State: "answered", Started: now.Add(-time.Second)},
	}}
	var out, errOut strings.Builder
	if err := printCalls(&out, &errOut, list, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", out.String())
	}
	header, first, second := strings.Fields(lines[0]), strings.Fields(lines[1]), strings.Fields(lines[2])
	if i := slices.Index(header, "TRANSFER"); i < 0 || !strings.Contains(lines[1], "warm sip:ann@pbx: briefing") {
		t.Errorf("no TRANSFER column with the summary:\n%s", out.String())
	}
	if len(second) != len(header)-1 /* the header's CALL ID is two words */ || first[len(first)-1] != "42s" {
		t.Errorf("rows do not line up with the header:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "registry is unreachable") || !strings.Contains(errOut.String(), "2 call(s)") {
		t.Errorf("stderr = %q", errOut.String())
	}
}

// TestRedisLoggerWritesSlog: go-redis' printf-style lines become slog
// records of ours (debug level: the store reports outages itself).
func TestRedisLoggerWritesSlog(t *testing.T) {
	var buf strings.Builder
	l := redisLogger{slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "go-redis")}
	l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %s\n", 1, "connection refused")
	var rec map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &rec); err != nil {
		t.Fatalf("not one JSON record: %q", buf.String())
	}
	if rec["level"] != "DEBUG" || rec["component"] != "go-redis" || rec["msg"] != "redis: connection pool: failed to dial after 1 attempts: connection refused" {
		t.Errorf("record = %v", rec)
	}
}
