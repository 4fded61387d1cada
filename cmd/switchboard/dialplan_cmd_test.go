package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchboard-voice/switchboard/media"
)

// dialplanFixture writes the example dialplan and its prompts to a temporary
// directory and returns the plan's path.
func dialplanFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	example, err := os.ReadFile("../../configs/dialplan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dialplan.yaml")
	if err := os.WriteFile(path, example, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "prompts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"welcome.wav", "menu.wav", "bye.wav", "sorry.wav"} {
		f, err := os.Create(filepath.Join(dir, "prompts", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := media.WriteWAV(f, media.Tone(440, 250*time.Millisecond, 0.3), 8000); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return path
}

// runDialplanCLI runs `switchboard dialplan ARGS...` in-process.
func runDialplanCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &cli.App{
		Name: "switchboard", Writer: &out, ErrWriter: &errOut,
		Commands:       []*cli.Command{dialplanCommand()},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"switchboard", "dialplan"}, args...))
	return out.String(), err
}

func dialplanExitCode(err error) int {
	if ec, ok := err.(cli.ExitCoder); ok {
		return ec.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestDialplanCheck(t *testing.T) {
	path := dialplanFixture(t)
	out, err := runDialplanCLI(t, "check", path)
	if err != nil || !strings.Contains(out, path+": ok (5 rules, 2 menus)") ||
		!strings.Contains(out, "agent names are not checked") {
		t.Fatalf("check without --agents: %v\n%s", err, out)
	}
	out, err = runDialplanCLI(t, "check", path, "--agents", "support,billing,sales,echo")
	if err != nil || strings.Contains(out, "not checked") {
		t.Fatalf("check with all agents: %v\n%s", err, out)
	}
	out, err = runDialplanCLI(t, "check", "--agents", "support,echo", path)
	if dialplanExitCode(err) != 1 || !strings.Contains(err.Error(), "2 problem(s)") {
		t.Fatalf("check with unknown agents: exit %d, %v", dialplanExitCode(err), err)
	}
	for _, want := range []string{
		path + `:86:34: unknown agent "billing" (known: echo, support)`,
		path + `:98:23: unknown agent "sales" (known: echo, support)`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := runDialplanCLI(t, "check"); dialplanExitCode(err) != 2 {
		t.Errorf("check without FILE: %v", err)
	}
}

func TestDialplanTestShowsTheRuleAndSteps(t *testing.T) {
	path := dialplanFixture(t)
	out, err := runDialplanCLI(t, "test", path, "--to", "+15551230000", "--from", "+13125550100",
		"--at", "2026-11-23T10:00", "--digits", "7", "--digits", "0", "--transfer-result", "fail")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"at Mon 2026-11-23 10:00 EST\n",
		"rule: business-hours (line 38)\n",
		"  1. answer\n",
		"  2. play welcome.wav (0.25s)\n",
		"     - goto main-menu\n",
		`caller enters "7"`,
		"     - no branch for \"7\": again (2 of 3)\n",
		"  5. transfer (warm) to +15550100, X-Reason: menu 0 -> the transfer fails\n",
		"  6. play sorry.wav (0.25s)\n",
		"  7. hang up (normal)\n",
		"ended: hangup\n",
		"record: answer, play welcome.wav, goto main-menu, gather 7, gather 0, transfer warm +15550100 failed, play sorry.wav, hangup normal\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// A holiday, in another zone given with --tz, with a VIP header and a failing agent.
	out, err = runDialplanCLI(t, "test", path, "--to", "+15551230000", "--from", "+12125550100",
		"--at", "2026-12-25T16:00", "--tz", "Europe/Paris", "--header", "X-Customer-Tier=gold", "--agent-result", "fail")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"at Fri 2026-12-25 16:00 CET\n",
		"rule: vip (line 25)\n",
		"agent support {caller=+12125550100, tier=gold} -> the agent fails\n",
		"on_failure\n",
		"transfer (cold) to +15550100, caller id +12125550100 -> the transfer completes\n",
		"ended: transferred\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, err = runDialplanCLI(t, "test", path, "--to", "+1999", "--at", "2026-12-25T10:00")
	if err != nil || !strings.Contains(out, "rule: after-hours (line 65), the default: no other rule matches\n") {
		t.Errorf("default rule: %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"test", path, "--at", "tomorrow"},
		{"test", path, "--agent-result", "maybe"},
		{"test", path, "--header", "novalue"},
		{"test", path, "extra"},
	} {
		if _, err := runDialplanCLI(t, bad...); dialplanExitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want 2", bad, dialplanExitCode(err), err)
		}
	}
}

// gatewayConfigFor writes a gateway config that runs the dialplan at plan,
// next to it: agents names the echo agents it defines (the first is the
// default), extra is appended as YAML.
func gatewayConfigFor(t *testing.T, plan string, agents []string, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("agents:\n")
	for _, a := range agents {
		fmt.Fprintf(&b, "  %s: {type: echo}\n", a)
	}
	fmt.Fprintf(&b, "default_agent: %s\ndialplan: %s\n%s", agents[0], plan, extra)
	path := filepath.Join(filepath.Dir(plan), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDialplanCheckAgainstGatewayConfig(t *testing.T) {
	path := dialplanFixture(t)
	dir := filepath.Dir(path)
	trunkPlan := filepath.Join(dir, "trunks.yaml")
	if err := os.WriteFile(trunkPlan, []byte("rules:\n  - name: carrier\n    match: {trunk: carrier}\n    actions: [hangup]\n"+
		"  - name: other\n    match: {trunk: other}\n    actions: [hangup]\n  - name: rest\n    default: true\n    actions: [{agent: {name: echo}}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	trunks := "trunks:\n  - {name: carrier, host: 127.0.0.1}\n"
	full := gatewayConfigFor(t, path, []string{"echo", "support", "billing", "sales"}, trunks)
	fullDir := filepath.Dir(full)
	partial := filepath.Join(t.TempDir(), "partial.yaml")
	if err := os.WriteFile(partial, []byte("agents:\n  echo: {type: echo}\n  support: {type: echo}\ndefault_agent: echo\n"+trunks), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte("agents:\n  echo: {type: echo}\n  greeter: {type: prompt, file: "+filepath.Join(fullDir, "missing.wav")+"}\ndefault_agent: echo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noPlan := filepath.Join(t.TempDir(), "noplan.yaml")
	if err := os.WriteFile(noPlan, []byte("agents:\n  echo: {type: echo}\ndefault_agent: echo\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		code   int
		want   []string // lines (or parts) the output must hold
		reject []string // text it must not
	}{
		{
			name: "the config's own dialplan, every agent known",
			args: []string{"check", "--config", full},
			want: []string{path + ": ok (5 rules, 2 menus)"}, reject: []string{"not checked"},
		},
		{
			name: "FILE after the flag, agents missing from the config",
			args: []string{"check", path, "--config", partial},
			code: 1,
			want: []string{
				path + `:86:34: unknown agent "billing" (known: echo, support)`,
				path + `:98:23: unknown agent "sales" (known: echo, support)`,
			},
		},
		{
			name:   "trunk names come from the config",
			args:   []string{"check", "--config", full, trunkPlan},
			code:   1,
			want:   []string{trunkPlan + `:6:20: unknown trunk "other" (known: carrier)`, "note: checking " + trunkPlan + "; " + full + " runs " + path},
			reject: []string{`"carrier"`},
		},
		{
			name: "--agents replaces the config's list",
			args: []string{"check", "--config", full, "--agents", "echo", path},
			code: 1,
			want: []string{`unknown agent "support" (known: echo)`},
		},
		{
			name: "an invalid config is reported, not half used",
			args: []string{"check", "--config", broken, path},
			code: 1,
			want: []string{broken + `:3: agents.greeter.file: cannot read`},
		},
		{name: "no FILE and none in the config", args: []string{"check", "--config", noPlan}, code: 2},
		{
			name: "dialplan test takes the config too",
			args: []string{"test", "--config", full, "--to", "+1999", "--at", "2026-12-25T10:00"},
			want: []string{"rule: after-hours (line 65), the default"}, reject: []string{"not checked"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runDialplanCLI(t, tc.args...)
			if got := dialplanExitCode(err); got != tc.code {
				t.Fatalf("exit %d (%v), want %d\n%s", got, err, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, r := range tc.reject {
				if strings.Contains(out, r) {
					t.Errorf("output has %q:\n%s", r, out)
				}
			}
		})
	}
}
