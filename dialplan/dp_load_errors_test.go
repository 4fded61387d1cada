package dialplan

import (
	"strings"
	"testing"
)

// dpDefault is a default rule to append to plans under test.
const dpDefault = `
  - name: fallback
    default: true
    actions: [hangup]
`

// dpLoadOptions are the names the error cases know.
var dpLoadOptions = LoadOptions{Agents: []string{"echo", "support"}, Trunks: []string{"telnyx"}}

// dpLoadErrorCases are plans with mistakes; FuzzLoad seeds from them too.
var dpLoadErrorCases = []struct {
	name string
	src  string
	want []string // "line:col: message prefix", all of them, in order
}{
	{"unknown top key", "rulez: []\n", []string{
		`1:1: dialplan: unknown key "rulez" (allowed: timezone, holidays, prompts, rules, menus)`,
		`1:1: dialplan: no rules`}},
	{"unknown rule key", "rules:\n  - name: a\n    default: true\n    actoins: [hangup]\n", []string{
		`2:5: rule a: no actions`,
		`4:5: rule: unknown key "actoins" (allowed: name, default, match, actions)`}},
	{"unknown match key", "rules:\n  - name: a\n    match: {too: \"+1\"}\n    actions: [hangup]\n" + dpDefault, []string{
		`3:13: match: unknown key "too" (allowed: to, to_prefix, to_regex, from, from_prefix, from_regex, trunk, time, headers)`}},
	{"unknown action", "rules:\n  - name: a\n    default: true\n    actions: [answr]\n", []string{
		`4:15: unknown action "answr" (expected one of answer, play, gather, agent, transfer, hangup, reject, goto)`}},
	{"unknown action option", "rules:\n  - name: a\n    default: true\n    actions: [{play: {file: welcome.wav, loop: 2}}]\n", []string{
		`4:42: play: unknown key "loop" (allowed: file, on_failure)`}},
	{"unknown agent", "rules:\n  - name: a\n    default: true\n    actions: [{agent: suport}]\n", []string{
		`4:23: unknown agent "suport" (known: echo, support)`}},
	{"unknown trunk", "rules:\n  - name: a\n    match: {trunk: telnix}\n    actions: [hangup]\n" + dpDefault, []string{
		`3:20: unknown trunk "telnix" (known: telnyx)`}},
	{"missing prompt", "rules:\n  - name: a\n    default: true\n    actions: [{play: nope.wav}]\n", []string{
		`4:22: play: prompt file testdata/prompts/nope.wav does not exist`}},
	{"not a WAV", "rules:\n  - name: a\n    default: true\n    actions: [{play: not-a-wav.wav}]\n", []string{
		`4:22: play: prompt not-a-wav.wav is not a usable WAV file: read WAV: not a RIFF/WAVE file`}},
	{"prompt outside the directory", "rules:\n  - name: a\n    default: true\n    actions: [{play: ../x.wav}]\n", []string{
		`4:22: play: "../x.wav" must be a path inside the prompts directory`}},
	{"missing prompts directory", "prompts: nowhere\nrules:\n  - name: a\n    default: true\n    actions: [{play: welcome.wav}]\n", []string{
		`1:10: prompts: testdata/prompts/nowhere is not a readable directory`}},
	{"bad regex", "rules:\n  - name: a\n    match: {to_regex: \"(+1\"}\n    actions: [hangup]\n" + dpDefault, []string{
		`3:23: to_regex: bad regular expression: error parsing regexp: missing argument to repetition operator`}},
	{"bad header regex and name", "rules:\n  - name: a\n    match: {headers: {X-A: \"[\", \"X B\": x}}\n    actions: [hangup]\n" + dpDefault, []string{
		`3:28: header X-A: bad regular expression`,
		`3:33: headers: "X B" is not a SIP header name`}},
	{"bad zone", "timezone: Europe/Pariss\nrules:" + dpDefault, []string{
		`1:11: unknown time zone "Europe/Pariss" (expected an IANA name such as America/New_York or UTC)`}},
	{"bad window", "timezone: UTC\nrules:\n  - name: a\n    match: {time: {days: [mon-funday], from: \"25:00\", to: \"9\", dayz: x}}\n    actions: [hangup]\n" + dpDefault, []string{
		`4:27: days: unknown day range "mon-funday" (expected a range like mon-fri or fri-mon)`,
		`4:46: from: bad time "25:00" (expected HH:MM from 00:00 to 23:59)`,
		`4:59: to: bad time "9" (expected HH:MM from 00:00 to 24:00)`,
		`4:64: time window: unknown key "dayz" (allowed: days, from, to, timezone, holidays)`}},
	{"window zone", "rules:\n  - name: a\n    match: {time: {days: sat, timezone: Mars/Olympus}}\n    actions: [hangup]\n  - name: b\n    match: {time: {days: sun}}\n    actions: [hangup]\n" + dpDefault, []string{
		`3:41: unknown time zone "Mars/Olympus"`,
		`6:19: time window has no time zone: set timezone at the top of the file or in the window`}},
	{"half a window", "timezone: UTC\nrules:\n  - name: a\n    match: {time: {from: \"09:00\"}}\n    actions: [hangup]\n" + dpDefault, []string{
		`4:19: time window: give both from and to (HH:MM), or neither for the whole day`}},
	{"bad holiday", "holidays: [2026-12-25, 2026-02-30, soon]\nrules:" + dpDefault, []string{
		`1:24: holiday "2026-02-30": expected a date like 2026-12-25`,
		`1:36: holiday "soon": expected a date like 2026-12-25`}},
	{"holidays only without holidays", "timezone: UTC\nrules:\n  - name: a\n    match: {time: {holidays: only}}\n    actions: [hangup]\n" + dpDefault, []string{
		`4:30: holidays: only, but the plan lists no holidays: this window never matches`}},
	{"unreachable after catch-all", "rules:\n  - name: all\n    actions: [hangup]\n  - name: later\n    match: {to: \"1\"}\n    actions: [hangup]\n" + dpDefault, []string{
		`4:5: rule later can never match: rule all (line 2) before it matches every call`,
		`8:5: default rule fallback is never used: rule all (line 2) matches every call`}},
	{"duplicate match", "rules:\n  - name: a\n    match: {to: \"1\", from_prefix: \"+1\"}\n    actions: [hangup]\n  - name: b\n    match: {from_prefix: \"+1\", to: \"1\"}\n    actions: [hangup]\n" + dpDefault, []string{
		`5:5: rule b can never match: rule a (line 2) has the same match`}},
	{"goto unknown", "rules:\n  - name: a\n    default: true\n    actions: [answer, {goto: nowhere}]\n", []string{
		`4:24: goto: no rule or menu is named "nowhere" (known: a)`}},
	{"goto loop", "rules:\n  - name: a\n    default: true\n    actions: [{play: welcome.wav}, {goto: m}]\nmenus:\n  m: {actions: [{agent: echo}, {goto: a}]}\n", []string{
		`4:37: goto loop a -> m -> a: no gather in between, so the call would jump forever`}},
	{"no default", "rules:\n  - name: a\n    match: {to: \"1\"}\n    actions: [hangup]\n", []string{
		`1:1: rules: no default rule: mark the rule for calls nothing else matches with default: true`}},
	{"two defaults", "rules:" + dpDefault + "  - name: second\n    default: true\n    actions: [hangup]\n", []string{
		`5:5: rule second: a second default rule (the first is fallback at line 2)`}},
	{"default with match", "rules:\n  - name: d\n    default: true\n    match: {to: \"1\"}\n    actions: [hangup]\n", []string{
		`4:5: rule d: a default rule has no match (it runs when no other rule matches)`}},
	{"reject after answer", "rules:\n  - name: a\n    default: true\n    actions: [{play: welcome.wav}, {reject: 486}]\n", []string{
		`4:37: reject after the call is answered`}},
	{"reject in a menu only reached answered", "rules:\n  - name: a\n    default: true\n    actions: [{gather: {branches: {\"1\": m}}}]\nmenus:\n  m: {actions: [{reject: 486}]}\n", []string{
		`6:18: reject after the call is answered`}},
	{"bad SIP code", "rules:\n  - name: a\n    default: true\n    actions: [{reject: {code: 200}}]\n", []string{
		`4:31: reject: SIP code: 200 is out of range (expected 400 to 699)`}},
	{"gather limits", "rules:\n  - name: a\n    default: true\n    actions: [{gather: {max_digits: 0, timeout: soon, retries: -1}}]\n", []string{
		`4:37: gather: max_digits: 0 is out of range (expected 1 to 32)`,
		`4:49: gather: timeout: expected a duration from 1ms to 5m such as 5s or 1500ms, got "soon"`,
		`4:64: gather: retries: -1 is out of range (expected 0 to 10)`}},
	{"branches that cannot be chosen", "rules:\n  - name: a\n    default: true\n    actions: [{gather: {max_digits: 1, branches: {\"12\": a, \"#\": a, x: a}, no_input: [hangup]}}]\n", []string{
		`4:51: gather: branch "12" can never be chosen: max_digits is 1`,
		`4:60: gather: branch "#" can never be chosen: # is the terminator`,
		`4:68: gather: branch "x": expected digits (0-9 * # A-D)`}},
	{"terminator", "rules:\n  - name: a\n    default: true\n    actions:\n      - gather:\n          terminator: #\n      - gather: {terminator: \"x\"}\n", []string{
		`6:22: gather: terminator is empty: quote it ("#"; a bare # starts a YAML comment), or write "" for none`,
		`7:30: gather: terminator: expected one key of 0-9 * # A-D, or "" for none, got "x"`}},
	{"template", "rules:\n  - name: a\n    default: true\n    actions: [{agent: {name: echo, params: {a: \"{{caler}}\", b: \"{{digits.pin}}\", c: \"{{x\"}}}]\n", []string{
		`4:48: params: a: unknown template variable {{caler}} (known: caller, called, trunk, call_id, digits, digits.NAME, header.NAME)`,
		`4:64: {{digits.pin}}: no gather is named "pin" (known: none)`,
		`4:85: params: c: unclosed {{ in "{{x"`}},
	{"transfer", "rules:\n  - name: a\n    default: true\n    actions: [{transfer: {mode: lukewarm, target: \"+1\", headers: {Via: x}}}]\n", []string{
		`4:33: transfer: unknown mode "lukewarm" (expected cold or warm)`,
		`4:67: transfer: headers: Via is set by the gateway and cannot be given here`}},
	{"never run after hangup", "rules:\n  - name: a\n    default: true\n    actions: [hangup, {play: welcome.wav}]\n", []string{
		`4:24: play is never run: it follows hangup at line 4`}},
	{"on_failure beside the action", "rules:\n  - name: a\n    default: true\n    actions:\n      - agent: echo\n        on_failure: [hangup]\n", []string{
		`5:9: action: on_failure goes inside the action's options, e.g. play: {file: x.wav, on_failure: [...]}`}},
	{"alias", "x: &h [hangup]\nrules:\n  - name: a\n    default: true\n    actions: *h\n", []string{
		`1:1: dialplan: unknown key "x"`,
		`5:14: YAML aliases (*h) are not supported`}},
	{"duplicate names", "rules:\n  - name: a\n    match: {to: \"1\"}\n    actions: [hangup]\n  - name: a\n    default: true\n    actions: [hangup]\nmenus:\n  a: {actions: [hangup]}\n", []string{
		`2:11: rule name "a" is already used by the menu at line 9`,
		`5:11: rule name "a" is already used by the menu at line 9`}},
	{"syntax", "rules: [\n", []string{
		`1:9: invalid YAML: did not find expected node content at the end of the file`}},
	{"empty", "", []string{`0:0: the dialplan is empty`}},
}

func TestLoadReportsEveryProblemWithItsPlace(t *testing.T) {
	for _, tc := range dpLoadErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			got := dpErrors(t, tc.src, dpLoadOptions)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d:\n got %s\nwant %s...", i, got[i], w)
				}
			}
		})
	}
}

func TestLoadErrorFormat(t *testing.T) {
	e := LoadErrors{{File: "d.yaml", Line: 3, Column: 7, Msg: "bad"}, {File: "d.yaml", Msg: "worse"}}
	if got, want := e.Error(), "d.yaml:3:7: bad\nd.yaml: worse"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	_, err := LoadFile("testdata/does-not-exist.yaml", LoadOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "testdata/does-not-exist.yaml: cannot read the dialplan") {
		t.Fatalf("LoadFile of a missing file: %v", err)
	}
	if _, ok := err.(*LoadErrors); !ok {
		t.Fatalf("error is %T, want *LoadErrors", err)
	}
}
