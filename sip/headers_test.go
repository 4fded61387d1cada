package sip

import (
	"errors"
	"testing"
)

func TestCheckHeaderValue(t *testing.T) {
	tests := []struct {
		value string
		bad   bool
	}{
		{"", false},
		{"plain value", false},
		{`quoted "text"; param=1`, false},
		{"tab\tis fine", false},
		{"utf-8 ☎", false},
		{"cr\rinside", true},
		{"lf\ninside", true},
		{"crlf\r\nX-Evil: 1", true},
		{"nul\x00inside", true},
		{"trailing\n", true},
		{"\r", true},
	}
	for _, tc := range tests {
		err := CheckHeaderValue(tc.value)
		if (err != nil) != tc.bad {
			t.Errorf("CheckHeaderValue(%q) = %v, want bad=%v", tc.value, err, tc.bad)
		}
		if err != nil && !errors.Is(err, ErrHeaderInjection) {
			t.Errorf("CheckHeaderValue(%q) = %v, not ErrHeaderInjection", tc.value, err)
		}
	}
}

func TestNewSafeHeader(t *testing.T) {
	tests := []struct {
		name, value string
		bad         bool
	}{
		{"X-Agent", "sales", false},
		{"X-Empty", "", false},
		{"", "v", true},
		{"X-Bad Name", "v", true},
		{"X-Colon:", "v", true},
		{"X-Tab\t", "v", true},
		{"X-CR\r", "v", true},
		{"X-LF\nY", "v", true},
		{"X-NUL\x00", "v", true},
		{"X-Val", "a\r\nX-Evil: 1", true},
		{"X-Val", "a\nb", true},
		{"X-Val", "a\x00b", true},
	}
	for _, tc := range tests {
		h, err := NewSafeHeader(tc.name, tc.value)
		if tc.bad {
			if err == nil {
				t.Errorf("NewSafeHeader(%q, %q) accepted", tc.name, tc.value)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewSafeHeader(%q, %q) = %v", tc.name, tc.value, err)
			continue
		}
		if h.Name() != tc.name || h.Value() != tc.value {
			t.Errorf("NewSafeHeader(%q, %q) = %s: %s", tc.name, tc.value, h.Name(), h.Value())
		}
	}
}

func TestReasonString(t *testing.T) {
	tests := []struct {
		reason Reason
		want   string
	}{
		{CauseRTPTimeout.Reason(), `Q.850;cause=102;text="RTP inactivity timeout"`},
		{CauseNormal.Reason(), `Q.850;cause=16;text="Normal call clearing"`},
		{CauseAgentHangup.Reason(), `Q.850;cause=16;text="Agent hung up"`},
		{CauseShutdown.Reason(), `Q.850;cause=41;text="Gateway shutting down"`},
		{CauseError.Reason(), `Q.850;cause=41;text="Temporary failure"`},
		{HangupCause(99).Reason(), `Q.850;cause=16;text="Normal call clearing"`},
		{Reason{Protocol: "SIP", Cause: 488, Text: "Not Acceptable Here"}, `SIP;cause=488;text="Not Acceptable Here"`},
		// Quotes cannot end the quoted string early; CR/LF cannot end the header.
		{Reason{Protocol: "SIP", Cause: 480, Text: `agent said "bye"`}, `SIP;cause=480;text="agent said 'bye'"`},
		{Reason{Protocol: "Q.850", Cause: 16, Text: "a\r\nX-Evil: 1"}, `Q.850;cause=16;text="a  X-Evil: 1"`},
		{Reason{Protocol: "Q.850", Cause: 16}, `Q.850;cause=16;text=""`},
	}
	for _, tc := range tests {
		if got := tc.reason.String(); got != tc.want {
			t.Errorf("%+v.String() = %s, want %s", tc.reason, got, tc.want)
		}
		h := tc.reason.header()
		if h.Name() != "Reason" || h.Value() != tc.want {
			t.Errorf("header() = %s: %s", h.Name(), h.Value())
		}
		if err := CheckHeaderValue(h.Value()); err != nil {
			t.Errorf("Reason header value fails its own check: %v", err)
		}
	}
}

func TestIsSDP(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/sdp":               true,
		"Application/SDP":               true,
		" application/sdp ; charset=x":  true,
		"application/sdpx":              false,
		"text/plain":                    false,
		"":                              false,
		"multipart/mixed;boundary=sdp":  false,
		"application/sdp;version=2;x=1": true,
	} {
		if got := isSDP(ct); got != want {
			t.Errorf("isSDP(%q) = %v", ct, got)
		}
	}
}

func TestWarningHeaderKeepsTextInsideItsQuotes(t *testing.T) {
	h := warningHeader(304, "gw.example", `no "common" codec\r`+"\n")
	if got, want := h.Value(), `304 gw.example "no 'common' codec/r "`; got != want {
		t.Fatalf("Warning = %q, want %q", got, want)
	}
}
