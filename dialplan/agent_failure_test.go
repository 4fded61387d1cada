package dialplan

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/rtp"
	"github.com/switchboard-voice/switchboard/sip"
)

// scriptedAgent fails in Start (startErr) or in Wait (waitErr), or
// finishes normally.
type scriptedAgent struct{ startErr, waitErr error }

func (a scriptedAgent) Start(ctx context.Context, call agent.Call) (agent.Session, error) {
	if a.startErr != nil {
		return nil, a.startErr
	}
	return scriptedSession{err: a.waitErr}, nil
}

type scriptedSession struct{ err error }

func (scriptedSession) OnAudio([]int16)            {}
func (scriptedSession) OnDTMF(rune, time.Duration) {}
func (scriptedSession) OnMark(string)              {}
func (scriptedSession) OnEvent(agent.Event)        {}
func (s scriptedSession) Wait(ctx context.Context) error {
	select {
	case <-time.After(50 * time.Millisecond):
		return s.err
	case <-ctx.Done():
		return nil
	}
}

// cdrObserver keeps the CDRs of ended calls.
type cdrObserver struct{ cdrs chan CDR }

func (o *cdrObserver) CallStarted(CallSnapshot)                  {}
func (o *cdrObserver) CallUpdated(CallSnapshot)                  {}
func (o *cdrObserver) AgentStarted(string, time.Duration, error) {}
func (o *cdrObserver) AgentFailed(string, error)                 {}
func (o *cdrObserver) CallEnded(_ CallSnapshot, c CDR)           { o.cdrs <- c }
func (o *cdrObserver) next(t *testing.T) CDR {
	t.Helper()
	select {
	case c := <-o.cdrs:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no CDR within 5 s")
		return CDR{}
	}
}

// An agent failure is logged once as a warning with the agent's name and
// the failure's cause, and the cause reaches the "call ended" line and the
// CDR, while on_failure carries the call on. A failure without a cause is
// "error"; an agent that did not fail leaves no cause.
func TestAgentFailureCauseInLogAndCDR(t *testing.T) {
	for _, tc := range []struct {
		name   string
		agent  scriptedAgent
		cause  string
		detail string
	}{
		{"unreachable", scriptedAgent{startErr: &agent.Failure{Cause: agent.CauseUnreachable,
			Detail: "ws://bot/media: connection refused", Err: errors.New("dial failed")}}, "unreachable", "connection refused"},
		{"handshake", scriptedAgent{startErr: &agent.Failure{Cause: agent.CauseHandshakeRefused,
			Detail: "HTTP 403", Err: errors.New("403")}}, "handshake_refused", "HTTP 403"},
		{"silent", scriptedAgent{waitErr: &agent.Failure{Cause: agent.CauseSilent,
			Detail: "no message for 30s", Err: errors.New("silent")}}, "silent", "no message for 30s"},
		{"uncaused", scriptedAgent{waitErr: errors.New("something broke")}, "error", "something broke"},
		{"fine", scriptedAgent{}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &dpLogBuffer{}
			log := slog.New(slog.NewJSONHandler(logs, nil))
			obs := &cdrObserver{cdrs: make(chan CDR, 1)}
			plan := dpLoad(t, "rules:\n  - name: main\n    default: true\n    actions:\n"+
				"      - agent: {name: bot, on_failure: [hangup]}\n", LoadOptions{Agents: []string{"bot"}})
			pool, err := rtp.NewPortPool(loopback, 32000, 32099, 0)
			if err != nil {
				t.Fatal(err)
			}
			exec, err := NewExecutor(Env{
				Media:        media.LegConfig{Pool: pool, Latch: true, Logger: testLogger()},
				Answer:       media.AnswerConfig{Codecs: []string{"PCMU"}, LocalAddr: loopback},
				Agents:       map[string]agent.Agent{"bot": tc.agent},
				DefaultAgent: "bot",
				Plans:        fixedPlan{plan},
				Observer:     obs,
				Log:          log,
			})
			if err != nil {
				t.Fatal(err)
			}
			gw := startEndpoint(t, func(ctx context.Context, c *sip.InboundCall) {
				c.Log = log
				exec.HandleCall(ctx, c)
			})
			call := newCaller(t).dial(t, gw.addr, []string{"PCMU"})
			select {
			case <-call.sip.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the gateway did not hang up")
			}
			cdr := obs.next(t)
			if cdr.AgentError != tc.cause || !strings.Contains(cdr.AgentErrorDetail, tc.detail) {
				t.Errorf("CDR agent_error %q, detail %q; want %q, %q", cdr.AgentError, cdr.AgentErrorDetail, tc.cause, tc.detail)
			}
			if cdr.Reason != EndLocalBye || !strings.Contains(strings.Join(cdr.Actions, "; "), "hangup") {
				t.Errorf("CDR reason %q, actions %q: want on_failure's hangup", cdr.Reason, cdr.Actions)
			}
			out := logs.String()
			warns := 0
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, `"msg":"agent failed"`) {
					warns++
					if !strings.Contains(line, `"level":"WARN"`) || !strings.Contains(line, `"agent":"bot"`) ||
						!strings.Contains(line, `"cause":"`+tc.cause+`"`) {
						t.Errorf("agent failed line: %s", line)
					}
				}
				if strings.Contains(line, `"msg":"call ended"`) && tc.cause != "" &&
					!strings.Contains(line, `"agent_error":"`+tc.cause+`"`) {
					t.Errorf("call ended line without agent_error %q: %s", tc.cause, line)
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tc.cause != ""]; warns != want {
				t.Errorf("%d agent failed lines, want %d:\n%s", warns, want, out)
			}
		})
	}
}
