package dialplan

import (
	"fmt"
	"strings"
	"testing"
)

// TestLoadFindsRulesShadowedByBroaderOnes: a rule whose every call an
// earlier rule already takes is reported at the later rule, naming the
// earlier one. Only what is provable counts: regexes, headers and time
// windows shadow only through identical conditions (or, for a regex, an
// exact number it matches).
func TestLoadFindsRulesShadowedByBroaderOnes(t *testing.T) {
	const mon9to5 = `{days: mon-fri, from: "09:00", to: "17:00"}`
	tests := []struct {
		name          string
		first, second string // the two rules' matches, in file order
		shadowed      bool
	}{
		{"shorter prefix first", `{to_prefix: "+1"}`, `{to_prefix: "+1555"}`, true},
		{"exact number under an earlier prefix", `{to_prefix: "+1555"}`, `{to: "+15551230000"}`, true},
		{"fewer conditions, the rest identical", `{to: "+1555"}`, `{to: "+1555", from: "+1212"}`, true},
		{"trunk only, then trunk and more", `{trunk: telnyx}`, `{trunk: telnyx, from_prefix: "+1"}`, true},
		{"caller prefix covers caller prefix and regex", `{from_prefix: "+1"}`, `{from_prefix: "+12", from_regex: "5$"}`, true},
		{"identical header, name in another case", `{headers: {X-Tier: "^gold$"}}`, `{headers: {x-tier: "^gold$"}, to: "1"}`, true},
		{"identical window", `{time: ` + mon9to5 + `}`, `{time: ` + mon9to5 + `, to: "1"}`, true},
		{"one of the earlier windows", `{time: [` + mon9to5 + `, {days: sat}]}`, `{time: {days: sat}, to: "1"}`, true},
		{"identical regex", `{to_regex: "^\\+1"}`, `{to_regex: "^\\+1", from: "x"}`, true},
		{"exact number the earlier regex matches", `{to_regex: "^\\+1(555|800)"}`, `{to: "+18005550100"}`, true},
		{"header on the later rule only", `{to: "1"}`, `{to: "1", headers: {X-Tier: "gold"}}`, true},

		{"longer prefix first", `{to_prefix: "+1555"}`, `{to_prefix: "+1"}`, false},
		{"exact first, prefix later", `{to: "+1"}`, `{to_prefix: "+1"}`, false},
		{"more conditions first", `{to: "+1555", from: "x"}`, `{to: "+1555"}`, false},
		{"different numbers", `{to: "+1555"}`, `{to: "+1556"}`, false},
		{"regex is not proven broader than a prefix", `{to_regex: "^\\+1"}`, `{to_prefix: "+1"}`, false},
		{"prefix is not proven broader than a regex", `{to_prefix: "+1"}`, `{to_regex: "^\\+1555"}`, false},
		{"exact number the regex does not match", `{to_regex: "^\\+2"}`, `{to: "+1555"}`, false},
		{"different header regexes", `{headers: {X-Tier: "gold"}}`, `{headers: {X-Tier: "^gold$"}}`, false},
		{"header on the earlier rule only", `{to: "1", headers: {X-Tier: "gold"}}`, `{to: "1"}`, false},
		{"wider window is not proven", `{time: {days: mon-fri}}`, `{time: {days: mon}}`, false},
		{"window on the earlier rule only", `{time: ` + mon9to5 + `}`, `{to: "1"}`, false},
		{"later windows not all earlier ones", `{time: {days: sat}}`, `{time: [{days: sat}, {days: sun}]}`, false},
		{"trunk against caller", `{trunk: telnyx}`, `{from: "1"}`, false},
		{"called prefix does not cover a caller", `{to_prefix: "+1"}`, `{from: "+1555"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := fmt.Sprintf("timezone: UTC\nrules:\n  - name: first\n    match: %s\n    actions: [hangup]\n"+
				"  - name: second\n    match: %s\n    actions: [hangup]\n", tc.first, tc.second) + dpDefault
			got := dpErrors(t, src, dpLoadOptions)
			if !tc.shadowed {
				if len(got) != 0 {
					t.Fatalf("reported a rule that can match:\n%s", strings.Join(got, "\n"))
				}
				return
			}
			want := "6:5: rule second can never match: rule first (line 3) before it is broader and takes every call it would"
			if tc.first == tc.second {
				want = "6:5: rule second can never match: rule first (line 3) has the same match"
			}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
			}
		})
	}
}

// TestShadowNamesTheFirstShadowingRule: with several broader rules before
// it, the report names the first; a catch-all after a narrower rule is
// fine; a rule with a broken match shadows nothing and is not reported
// (its own error is enough).
func TestShadowNamesTheFirstShadowingRule(t *testing.T) {
	src := "rules:\n" +
		"  - name: bad\n    match: {to_regex: \"(\"}\n    actions: [hangup]\n" + // lines 2-4
		"  - name: wide\n    match: {to_prefix: \"+1\"}\n    actions: [hangup]\n" + // 5-7
		"  - name: wider\n    match: {}\n    actions: [hangup]\n" + // 8-10
		"  - name: narrow\n    match: {to_regex: \"(\", to_prefix: \"+155\"}\n    actions: [hangup]\n" + // 11-13
		"  - name: narrower\n    match: {to_prefix: \"+1555\"}\n    actions: [hangup]\n" + dpDefault // 14-16, 17
	got := dpErrors(t, src, dpLoadOptions)
	want := []string{
		"3:23: to_regex: bad regular expression",
		"12:23: to_regex: bad regular expression",
		"14:5: rule narrower can never match: rule wide (line 5) before it is broader",
		"18:5: default rule fallback is never used: rule wider (line 8) matches every call",
	}
	if len(got) != len(want) {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i, got[i], want[i])
		}
	}
}
