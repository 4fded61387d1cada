package dialplan

import (
	"os"
	"testing"
	"time"
)

// dpRoutePlan gives each rule its own called number, so that each test
// exercises one condition.
const dpRoutePlan = `timezone: America/New_York
holidays: [2026-12-25]
rules:
  - name: business
    match: {to: "+1000", time: {days: [mon-fri], from: "09:00", to: "17:00"}}
    actions: [hangup]
  - name: friday-night
    match: {to: "+1001", time: {days: fri, from: "22:00", to: "06:00"}}
    actions: [hangup]
  - name: sunday-early
    match: {to: "+1002", time: {days: sun, from: "01:00", to: "02:00"}}
    actions: [hangup]
  - name: paris-morning
    match: {to: "+1003", time: {from: "09:00", to: "10:00", timezone: Europe/Paris, holidays: ignore}}
    actions: [hangup]
  - name: christmas
    match: {to: "+1004", time: {holidays: only}}
    actions: [hangup]
  - name: weekend-or-evening
    match:
      to: "+1005"
      time:
        - {days: sat-sun}
        - {from: "18:00", to: "24:00"}
    actions: [hangup]
  - name: uk
    match: {to_prefix: "+44", from_regex: "^\\+1(212|646)"}
    actions: [hangup]
  - name: campaign
    match: {to: "+1006", headers: {X-Campaign: "^spring"}}
    actions: [hangup]
  - name: telnyx
    match: {to: "+1007", trunk: telnyx, from: "+15550001"}
    actions: [hangup]
  - name: fallback
    default: true
    actions: [hangup]
`

func TestRouteMatchesTimeNumbersAndHeaders(t *testing.T) {
	clock := time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC) // Monday 10:00 in New York
	p := dpLoad(t, dpRoutePlan, LoadOptions{Now: func() time.Time { return clock }})
	ny, _ := time.LoadLocation("America/New_York")
	at := func(s string) time.Time { // wall clock in New York
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, ny)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	utc := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	headers := func(kv ...string) func(string) string {
		return func(name string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == name {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	cases := []struct {
		name string
		f    Facts
		want string
	}{
		{"business hours", Facts{To: "+1000", At: at("2026-11-23 09:00")}, "business"},
		{"before opening", Facts{To: "+1000", At: at("2026-11-23 08:59")}, "fallback"},
		{"closing time is exclusive", Facts{To: "+1000", At: at("2026-11-23 17:00")}, "fallback"},
		{"saturday", Facts{To: "+1000", At: at("2026-11-21 10:00")}, "fallback"},
		{"holiday excluded by default", Facts{To: "+1000", At: at("2026-12-25 10:00")}, "fallback"},
		{"zero time is the plan's clock", Facts{To: "+1000"}, "business"},
		// DST: the window is read on the local wall clock.
		{"first EDT morning", Facts{To: "+1000", At: utc("2026-03-09 13:30")}, "business"}, // 09:30 EDT
		{"last EDT hour before opening", Facts{To: "+1000", At: utc("2026-03-09 12:59")}, "fallback"},
		{"first EST morning", Facts{To: "+1000", At: utc("2026-11-02 14:30")}, "business"},    // 09:30 EST
		{"an hour early in EST", Facts{To: "+1000", At: utc("2026-11-02 13:30")}, "fallback"}, // 08:30 EST
		{"spring forward, 01:30 EST", Facts{To: "+1002", At: utc("2026-03-08 06:30")}, "sunday-early"},
		{"spring forward, 03:00 EDT", Facts{To: "+1002", At: utc("2026-03-08 07:00")}, "fallback"},
		{"fall back, first 01:30 (EDT)", Facts{To: "+1002", At: utc("2026-11-01 05:30")}, "sunday-early"},
		{"fall back, second 01:30 (EST)", Facts{To: "+1002", At: utc("2026-11-01 06:30")}, "sunday-early"},
		{"fall back, 02:00 EST", Facts{To: "+1002", At: utc("2026-11-01 07:00")}, "fallback"},
		// Windows over midnight belong to the day they start on.
		{"friday 23:00", Facts{To: "+1001", At: at("2026-11-20 23:00")}, "friday-night"},
		{"saturday 05:59", Facts{To: "+1001", At: at("2026-11-21 05:59")}, "friday-night"},
		{"saturday 06:00", Facts{To: "+1001", At: at("2026-11-21 06:00")}, "fallback"},
		{"saturday 23:00", Facts{To: "+1001", At: at("2026-11-21 23:00")}, "fallback"},
		{"friday 05:00 (thursday night)", Facts{To: "+1001", At: at("2026-11-20 05:00")}, "fallback"},
		{"holiday night starts on the holiday", Facts{To: "+1001", At: at("2026-12-26 02:00")}, "fallback"},
		{"paris 09:30 CET", Facts{To: "+1003", At: utc("2026-11-23 08:30")}, "paris-morning"},
		{"paris 10:30 CET", Facts{To: "+1003", At: utc("2026-11-23 09:30")}, "fallback"},
		{"paris 09:30 CEST", Facts{To: "+1003", At: utc("2026-07-01 07:30")}, "paris-morning"},
		{"holidays only", Facts{To: "+1004", At: at("2026-12-25 03:00")}, "christmas"},
		{"holidays only, other day", Facts{To: "+1004", At: at("2026-12-24 03:00")}, "fallback"},
		{"list of windows: weekend", Facts{To: "+1005", At: at("2026-11-22 08:00")}, "weekend-or-evening"},
		{"list of windows: evening", Facts{To: "+1005", At: at("2026-11-23 23:59")}, "weekend-or-evening"},
		{"list of windows: neither", Facts{To: "+1005", At: at("2026-11-23 12:00")}, "fallback"},
		{"prefix and regex", Facts{To: "+442071234567", From: "+12125550100"}, "uk"},
		{"regex fails", Facts{To: "+442071234567", From: "+13125550100"}, "fallback"},
		{"prefix fails", Facts{To: "+452071234567", From: "+12125550100"}, "fallback"},
		{"header matches", Facts{To: "+1006", Headers: headers("X-Campaign", "spring-2026")}, "campaign"},
		{"header differs", Facts{To: "+1006", Headers: headers("X-Campaign", "autumn")}, "fallback"},
		{"header absent", Facts{To: "+1006"}, "fallback"},
		{"trunk and caller", Facts{To: "+1007", Trunk: "telnyx", From: "+15550001"}, "telnyx"},
		{"other trunk", Facts{To: "+1007", Trunk: "signalwire", From: "+15550001"}, "fallback"},
		{"exact caller only", Facts{To: "+1007", Trunk: "telnyx", From: "+155500012"}, "fallback"},
	}
	for _, tc := range cases {
		if got := p.Route(tc.f).Name; got != tc.want {
			t.Errorf("%s: routed to %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestMatchDaysAndClock(t *testing.T) {
	days := map[string]uint8{
		"mon": 1 << time.Monday, "Sunday": 1 << time.Sunday, "mon-fri": 0x3e, "fri-mon": 0x63,
		"sat-sun": 0x41, "sun-sat": 0x7f, "wed-wed": 1 << time.Wednesday,
	}
	for s, want := range days {
		if got, err := parseDays(s); err != nil || got != want {
			t.Errorf("parseDays(%q) = %#x, %v; want %#x", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "mo", "mon-", "-fri", "mon-xyz", "mon-fri-sat"} {
		if _, err := parseDays(bad); err == nil {
			t.Errorf("parseDays(%q) accepted", bad)
		}
	}
	clocks := map[string]int{"00:00": 0, "9:05": 545, "23:59": 1439}
	for s, want := range clocks {
		if got, err := parseClock(s, false); err != nil || got != want {
			t.Errorf("parseClock(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	if got, err := parseClock("24:00", true); err != nil || got != 1440 {
		t.Errorf("parseClock(24:00, end) = %d, %v", got, err)
	}
	for _, bad := range []string{"24:00", "12:60", "12", "1:2", "+1:00", "12:00:00", "ab:cd", "-1:00"} {
		if _, err := parseClock(bad, false); err == nil {
			t.Errorf("parseClock(%q) accepted", bad)
		}
	}
}

func TestExampleDialplanLoadsAndRoutes(t *testing.T) {
	data, err := os.ReadFile("../configs/dialplan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example's prompts directory is ./prompts; here testdata/prompts.
	p, err := Load("configs/dialplan.yaml", data, "testdata", LoadOptions{Agents: []string{"support", "billing", "sales", "echo"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 5 || len(p.Menus) != 2 || p.Default.Name != "after-hours" {
		t.Fatalf("rules %d, menus %d, default %v", len(p.Rules), len(p.Menus), p.Default.Name)
	}
	monday10 := time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)
	if r := p.Route(Facts{To: "+15551230000", From: "+13125550100", At: monday10}); r.Name != "business-hours" {
		t.Errorf("main number on Monday 10:00 went to %s", r.Name)
	}
	thanksgiving := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	if r := p.Route(Facts{To: "+15551230000", At: thanksgiving}); r.Name != "after-hours" {
		t.Errorf("main number on a holiday went to %s", r.Name)
	}
}
