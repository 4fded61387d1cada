package dialplan

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// FuzzLoad feeds arbitrary bytes to Load (prompts from testdata, as the
// example's ./prompts) and runs whatever loads: nothing may panic, and every
// refusal must be a non-empty LoadErrors. The seed corpus in
// testdata/fuzz/FuzzLoad holds the example plan and the error cases.
func FuzzLoad(f *testing.F) {
	if data, err := os.ReadFile("../configs/dialplan.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("prompts: prompts\n" + dpRunPlan))
	f.Add([]byte("prompts: prompts\n" + dpRoutePlan))
	for _, tc := range dpLoadErrorCases {
		f.Add([]byte(tc.src))
	}
	at := time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC)
	opts := LoadOptions{Agents: []string{"echo", "support", "billing", "sales", "backup"}, Now: func() time.Time { return at }}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Load("fuzz.yaml", data, "testdata", opts)
		if err != nil {
			var errs LoadErrors
			if p != nil || !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("plan %v, error %T %v", p, err, err)
			}
			for _, e := range errs {
				if e.Msg == "" || e.File != "fuzz.yaml" {
					t.Fatalf("bad error %+v", e)
				}
			}
			return
		}
		if p.Default == nil || len(p.Hash) != 64 {
			t.Fatalf("loaded plan without default rule or hash")
		}
		for _, to := range []string{"", "+15551230000", "menu", "1"} {
			r := p.Route(Facts{To: to, From: "+12125550100", Trunk: "telnyx", Headers: func(string) string { return "x" }})
			if r == nil {
				t.Fatal("Route returned nil")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			fake := &dpFake{digits: []string{"1", "", "2", "12", "#"}, agents: map[string]error{"support": errDPAgentDown}}
			out, _ := p.Run(ctx, r, fake, Vars{Caller: "+1", Header: func(string) string { return "\r\n" }})
			cancel()
			if out.Ended == "" {
				t.Fatalf("Run ended without saying how: %+v", out)
			}
		}
	})
}
