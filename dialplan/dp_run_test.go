package dialplan

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

const dpRunPlan = `rules:
  - name: simple
    match: {to: simple}
    actions:
      - play: welcome.wav
      - agent: {name: support, params: {lang: en, who: "{{caller}}>{{called}}@{{trunk}}#{{call_id}}"}}
  - name: menu
    match: {to: menu}
    actions:
      - answer
      - gather:
          name: choice
          prompt: menu.wav
          retries: 2
          branches: {"1": sales, "2": [{play: sorry.wav}]}
          no_input: [{play: bye.wav}, hangup]
          no_match: [{play: sorry.wav}, {goto: late}]
      - agent: {name: support, params: {choice: "{{digits.choice}}", last: "{{digits}}"}}
  - name: free
    match: {to: free}
    actions:
      - gather: {max_digits: 4, retries: 0}
      - transfer: {target: "+1555{{digits}}", caller_id: "{{caller}}", headers: {X-Tag: "{{header.X-Tag}}"}}
  - name: failing
    match: {to: failing}
    actions:
      - agent:
          name: support
          on_failure:
            - play: sorry.wav
            - transfer: {mode: warm, target: "+15550100", on_failure: [{agent: backup}]}
      - play: bye.wav
  - name: early
    match: {to: early}
    actions: [{reject: {code: 603, reason: Decline}}]
  - name: loop
    match: {to: loop}
    actions: [{gather: {branches: {"1": loop}}}]
  - name: detour
    match: {to: detour}
    actions: [answer, {goto: late}]
  - name: fallback
    default: true
    actions: [{goto: late}]
menus:
  sales: {actions: [{agent: sales}]}
  late: {actions: [{reject: 480}]}
`

func TestRunControlFlow(t *testing.T) {
	p := dpLoad(t, dpRunPlan, LoadOptions{})
	vars := Vars{Caller: "+1212", Called: "+1800", Trunk: "telnyx", CallID: "c1",
		Header: func(n string) string { return map[string]string{"X-Tag": "vip"}[n] }}
	cases := []struct {
		name      string
		to        string
		fake      *dpFake
		calls     []string
		ended     string
		actions   string // Outcome.Actions joined with "|"; "" skips
		digits    string
		wantError bool
	}{
		{name: "implicit answer, agent done, end hangs up", to: "simple",
			calls:   []string{"answer", "play welcome.wav", "agent support lang=en who=+1212>+1800@telnyx#c1", "hangup normal"},
			ended:   EndedCompleted,
			actions: "answer|play welcome.wav|agent support|hangup normal"},
		{name: "agent hangs up", to: "simple", fake: &dpFake{agents: map[string]error{"support": errDPHangup}},
			calls: []string{"answer", "play welcome.wav", "agent support lang=en who=+1212>+1800@telnyx#c1", "hangup agent_hangup"},
			ended: EndedAgentHangup},
		{name: "retry then branch to a menu", to: "menu", fake: &dpFake{digits: []string{"", "9", "1"}},
			calls:   []string{"answer", "gather menu.wav 1", "gather menu.wav 1", "gather menu.wav 1", "agent sales", "hangup normal"},
			ended:   EndedCompleted,
			actions: "answer|gather no_input|gather 9|gather 1|goto sales|agent sales|hangup normal", digits: "1"},
		{name: "inline branch returns after the gather", to: "menu", fake: &dpFake{digits: []string{"2"}},
			calls: []string{"answer", "gather menu.wav 1", "play sorry.wav", "agent support choice=2 last=2", "hangup normal"},
			ended: EndedCompleted, digits: "2"},
		{name: "no input after retries", to: "menu",
			calls: []string{"answer", "gather menu.wav 1", "gather menu.wav 1", "gather menu.wav 1", "play bye.wav", "hangup normal"},
			ended: EndedHangup},
		{name: "no match after retries; reject after answer fails", to: "menu", fake: &dpFake{digits: []string{"7", "", "8"}},
			calls: []string{"answer", "gather menu.wav 1", "gather menu.wav 1", "gather menu.wav 1", "play sorry.wav"},
			ended: EndedFailed, actions: "answer|gather 7|gather no_input|gather 8|play sorry.wav|goto late|reject 480 failed",
			digits: "8", wantError: true},
		{name: "digits and headers in a transfer", to: "free", fake: &dpFake{digits: []string{"0100"}},
			calls: []string{"answer", "gather - 4", "transfer cold +15550100 cid=+1212 X-Tag=vip"},
			ended: EndedTransferred, digits: "0100"},
		{name: "no input: transfer target incomplete is still tried", to: "free", fake: &dpFake{transferErr: errors.New("busy")},
			calls: []string{"answer", "gather - 4", "transfer cold +1555 cid=+1212 X-Tag=vip"},
			ended: EndedFailed, wantError: true},
		{name: "on_failure chain", to: "failing",
			fake:    &dpFake{agents: map[string]error{"support": errDPAgentDown}, transferErr: errors.New("no answer")},
			calls:   []string{"answer", "agent support", "play sorry.wav", "transfer warm +15550100", "agent backup", "play bye.wav", "hangup normal"},
			ended:   EndedCompleted,
			actions: "answer|agent support failed|play sorry.wav|transfer warm +15550100 failed|agent backup|play bye.wav|hangup normal"},
		{name: "failure inside on_failure ends the call", to: "failing",
			fake:  &dpFake{agents: map[string]error{"support": errDPAgentDown, "backup": errDPAgentDown}, transferErr: errors.New("no")},
			calls: []string{"answer", "agent support", "play sorry.wav", "transfer warm +15550100", "agent backup"},
			ended: EndedFailed, wantError: true},
		{name: "failed answer runs the action's on_failure", to: "failing", fake: &dpFake{answerErr: errors.New("cancelled")},
			calls: []string{"answer", "answer"},
			ended: EndedFailed, actions: "agent support failed|play sorry.wav failed", wantError: true},
		{name: "reject before answer", to: "early", calls: []string{"reject 603 Decline"}, ended: EndedReject},
		{name: "goto bound", to: "loop", fake: &dpFake{digits: slices.Repeat([]string{"1"}, 40)},
			ended: EndedFailed, digits: "1", wantError: true},
		{name: "reject reached unanswered", to: "nowhere", calls: []string{"reject 480 "}, ended: EndedReject},
		{name: "reject reached answered fails at run time", to: "detour", calls: []string{"answer"},
			ended: EndedFailed, actions: "answer|goto late|reject 480 failed", wantError: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := tc.fake
			if fake == nil {
				fake = &dpFake{}
			}
			rule := p.Route(Facts{To: tc.to})
			out, err := p.Run(context.Background(), rule, fake, vars)
			if (err != nil) != tc.wantError {
				t.Errorf("err = %v, want error %v", err, tc.wantError)
			}
			if out.Ended != tc.ended || out.Rule != rule.Name {
				t.Errorf("ended %q in rule %q, want %q in %q", out.Ended, out.Rule, tc.ended, rule.Name)
			}
			if tc.calls != nil && !slices.Equal(fake.log(), tc.calls) {
				t.Errorf("runtime calls:\n got %q\nwant %q", fake.log(), tc.calls)
			}
			if got := strings.Join(out.Actions, "|"); tc.actions != "" && got != tc.actions {
				t.Errorf("actions:\n got %s\nwant %s", got, tc.actions)
			}
			if out.Digits != tc.digits {
				t.Errorf("digits %q, want %q", out.Digits, tc.digits)
			}
		})
	}
}

func TestRunGotoBoundCountsJumps(t *testing.T) {
	p := dpLoad(t, dpRunPlan, LoadOptions{})
	fake := &dpFake{digits: slices.Repeat([]string{"1"}, 100)}
	out, err := p.Run(context.Background(), p.Route(Facts{To: "loop"}), fake, Vars{})
	if err == nil || !strings.Contains(err.Error(), "more than 32 gotos") {
		t.Fatalf("err = %v", err)
	}
	if n := strings.Count(strings.Join(fake.log(), "\n"), "gather"); n != MaxGotos+1 {
		t.Errorf("%d gathers, want %d", n, MaxGotos+1)
	}
	if slices.Contains(fake.log(), "hangup error") || out.Ended != EndedFailed {
		t.Errorf("Run hung up itself or ended %q", out.Ended)
	}
}

func TestRunReturnsPromptlyWhenCtxEnds(t *testing.T) {
	p := dpLoad(t, dpRunPlan, LoadOptions{})
	for _, to := range []string{"simple", "menu"} {
		fake := &dpFake{block: true, started: make(chan struct{})}
		started := fake.started
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan Outcome)
		var err error
		go func() {
			out, e := p.Run(ctx, p.Route(Facts{To: to}), fake, Vars{})
			err = e
			done <- out
		}()
		<-started
		cancel()
		select {
		case out := <-done:
			if out.Ended != EndedCtx || !errors.Is(err, context.Canceled) {
				t.Errorf("%s: ended %q, err %v", to, out.Ended, err)
			}
			for _, c := range fake.log() {
				if strings.HasPrefix(c, "hangup") {
					t.Errorf("%s: Run hung up after ctx ended", to)
				}
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: Run did not return after ctx ended", to)
		}
	}
}

func TestRunRefusesLineBreaksFromTemplates(t *testing.T) {
	p := dpLoad(t, dpRunPlan, LoadOptions{})
	fake := &dpFake{digits: []string{"1"}}
	vars := Vars{Caller: "+1\r\nVia: evil", Header: func(string) string { return "" }}
	out, err := p.Run(context.Background(), p.Route(Facts{To: "free"}), fake, vars)
	if err == nil || out.Ended != EndedFailed {
		t.Fatalf("ended %q, err %v", out.Ended, err)
	}
	for _, c := range fake.log() {
		if strings.HasPrefix(c, "transfer") {
			t.Fatalf("transfer attempted with an injected header: %q", c)
		}
	}
}
