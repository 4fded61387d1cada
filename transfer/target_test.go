package transfer

import (
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/sip"
)

func TestAllowlist(t *testing.T) {
	carrier := sip.Trunk{Name: "carrier", Host: "sip.carrier.example"}
	trunks := []sip.Trunk{carrier}
	allow, err := ParseAllowlist([]string{"+15550100", "+1555020*", "@pbx.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target string
		trunk  *sip.Trunk
		uri    string
		ok     bool
	}{
		{"+15550100", &carrier, "sip:+15550100@sip.carrier.example", true},
		{"tel:+15550100", &carrier, "sip:+15550100@sip.carrier.example", true},
		{"+15550207", &carrier, "sip:+15550207@sip.carrier.example", true},
		{"+15550300", &carrier, "sip:+15550300@sip.carrier.example", false},
		{"+4420700", &carrier, "sip:+4420700@sip.carrier.example", false},
		{"sip:support@pbx.example.com", nil, "sip:support@pbx.example.com", true},
		{"sip:support@PBX.example.com", nil, "sip:support@PBX.example.com", true},
		{"sip:support@evil.example", nil, "sip:support@evil.example", false},
		// A number written as a URI at the trunk is judged as a number.
		{"sip:+15550100@sip.carrier.example", nil, "sip:+15550100@sip.carrier.example", true},
		{"sip:+19990000@sip.carrier.example", nil, "sip:+19990000@sip.carrier.example", false},
	}
	for _, tc := range tests {
		tg, err := Resolve(tc.target, tc.trunk, trunks)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.target, err)
			continue
		}
		if tg.URI != tc.uri {
			t.Errorf("Resolve(%q).URI = %q, want %q", tc.target, tg.URI, tc.uri)
		}
		if got := allow.Permits(tg); got != tc.ok {
			t.Errorf("Permits(%q) = %v, want %v", tc.target, got, tc.ok)
		}
	}
}

func TestResolveRefuses(t *testing.T) {
	carrier := sip.Trunk{Name: "carrier", Host: "sip.carrier.example"}
	for _, raw := range []string{"", "hello", "+1555\r\nX-Evil: 1", "sip:", "mailto:a@b"} {
		if _, err := Resolve(raw, &carrier, nil); err == nil {
			t.Errorf("Resolve(%q) = nil error", raw)
		}
	}
	if _, err := Resolve("+15550100", nil, nil); err == nil {
		t.Errorf("a number without a trunk resolved")
	}
}

func TestParseAllowlistErrors(t *testing.T) {
	_, err := ParseAllowlist([]string{"+1555", "bogus", "@", "+1a*"})
	if err == nil {
		t.Fatal("no error for bad entries")
	}
	for _, want := range []string{`"bogus"`, `"@"`, `"+1a*"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), `"+1555"`) {
		t.Errorf("a valid entry reported: %v", err)
	}
}
