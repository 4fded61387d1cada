package dialplan

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestTemplateParseAndExpand(t *testing.T) {
	r := &runner{
		vars: Vars{Caller: "+1212", Called: "+1800", Trunk: "telnyx", CallID: "abc",
			Header: func(n string) string {
				if n == "X-Foo" {
					return "bar"
				}
				return ""
			}},
		digits: "42",
		named:  map[string]string{"pin": "1234"},
	}
	good := map[string]string{
		"":                                    "",
		"plain":                               "plain",
		"{{caller}}":                          "+1212",
		"{{ called }}/{{trunk}}":              "+1800/telnyx",
		"id={{call_id}} d={{digits}}":         "id=abc d=42",
		"{{digits.pin}}{{digits.other}}":      "1234",
		"{{header.X-Foo}}|{{header.X-None}}|": "bar||",
		"}} {":                                "}} {",
	}
	for src, want := range good {
		tp, err := parseTemplate(src)
		if err != nil {
			t.Errorf("parseTemplate(%q): %v", src, err)
			continue
		}
		if got := tp.expand(r.lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", src, got, want)
		}
	}
	bad := map[string]string{
		"{{caler}}":      "unknown template variable {{caler}}",
		"{{digits.}}":    "unknown template variable {{digits.}}",
		"{{header.a b}}": "unknown template variable {{header.a b}}",
		"x {{caller":     "unclosed {{",
		"{{}}":           "unknown template variable {{}}",
	}
	for src, want := range bad {
		if _, err := parseTemplate(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseTemplate(%q) = %v, want %q", src, err, want)
		}
	}
}

func TestTemplateNamesOfGathersAnywhereInThePlan(t *testing.T) {
	src := "rules:\n  - name: a\n    default: true\n    actions:\n      - agent: {name: x, params: {pin: \"{{digits.pin}}\"}}\n      - goto: m\nmenus:\n  m: {actions: [{gather: {name: pin, max_digits: 4}}]}\n"
	dpLoad(t, src, LoadOptions{}) // the gather comes later in the file: still known
}

func TestDryRunPrintsEachStep(t *testing.T) {
	p := dpLoad(t, dpRunPlan, LoadOptions{})
	var out bytes.Buffer
	dry := &DryRun{Out: &out, Digits: []string{"-", "1"}}
	res, err := p.Run(context.Background(), p.Route(Facts{To: "menu"}), dry, Vars{})
	if err != nil || res.Ended != EndedCompleted {
		t.Fatalf("ended %q, %v", res.Ended, err)
	}
	for _, want := range []string{
		"  1. answer\n",
		"  2. gather: prompt menu.wav, up to 1 digit(s), timeout 5s, inter-digit 3s, terminator # -> no input (timeout)\n",
		"     - no input: again (2 of 3)\n",
		`  3. gather: prompt menu.wav, up to 1 digit(s), timeout 5s, inter-digit 3s, terminator # -> caller enters "1"`,
		"     - branch 1: goto sales\n",
		"  4. agent sales -> the agent is done\n",
		"  5. hang up (normal)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	dry = &DryRun{Out: &out, AgentResult: "fail", TransferResult: "fail"}
	res, _ = p.Run(context.Background(), p.Route(Facts{To: "failing"}), dry, Vars{})
	if res.Ended != EndedFailed || !strings.Contains(out.String(), "agent backup -> the agent fails") ||
		!strings.Contains(out.String(), "on_failure") {
		t.Errorf("ended %q:\n%s", res.Ended, out.String())
	}
}
