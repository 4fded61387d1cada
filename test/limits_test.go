package test

// Concurrent-call limits in total and per trunk (the per-number limit is in
// fleet_test.go, across two instances), and the main metric families after
// a call. Calls are raw UACs from 127.0.0.1 and 127.0.0.2, so that a trunk
// (inbound_networks) can be told from a source that is not one.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/test/harness"
)

// limitTrunk tags calls from 127.0.0.1 with the trunk "carrier"; 127.0.0.2
// may call too, on no trunk.
const limitTrunk = `trunks:
  - name: carrier
    host: 127.0.0.1
    port: 9
    inbound_networks: [127.0.0.1/32]
access:
  allow: [127.0.0.2/32]
`

// TestLimitsTotalAndPerTrunk: a call over the total limit, or over its
// trunk's, is refused before answer with the configured code, counted, and
// logged with the limit as reason; a call the limit does not cover goes
// through; the slot is free again once the call holding it hangs up.
func TestLimitsTotalAndPerTrunk(t *testing.T) {
	fleetSkipShort(t)
	tests := []struct {
		name   string
		limits string
		code   int
		// second is where the refused call comes from; other, when set, a
		// source the limit does not cover.
		second, other string
		retryAfter    string // the refusal's Retry-After
	}{
		{"total", "limits:\n  max_calls: 1\n  reject_code: 486\n", 486, "127.0.0.2", "", ""},
		{"per trunk", "limits:\n  per_trunk: 1\n  retry_after: 7\n", 503, "127.0.0.1", "127.0.0.2", "7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw := startFleetGateway(t, limitTrunk+tc.limits)
			first := harness.Dial(t, "127.0.0.1", gw.SIPAddr)
			received := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call received"))
			if received.Str("trunk") != "carrier" {
				t.Fatalf("a call from 127.0.0.1 is on trunk %q, want carrier (test broken?)", received.Str("trunk"))
			}

			over, res := harness.Invite(t, tc.second, gw.SIPAddr)
			over.Refused(t, res)
			if res.Code != tc.code {
				t.Fatalf("second call from %s answered %q, want %d", tc.second, res.StartLine, tc.code)
			}
			if got := res.Header("Retry-After"); got != tc.retryAfter {
				t.Errorf("refusal's Retry-After = %q, want %q", got, tc.retryAfter)
			}
			ended := gw.Logs.WaitFor(t, 5*time.Second, func(e harness.Entry) bool {
				return e.Msg() == "call ended" && e.Str("call_id") == over.D.CallID
			})
			if ended.Str("reason") != "limit" || ended.Int("status") != int64(tc.code) {
				t.Errorf("refused call's end line = %s, want reason limit, status %d", ended.Line(), tc.code)
			}
			waitMetric(t, gw, `switchboard_calls_rejected_total{reason="limit"}`, 1, 1)

			if tc.other != "" {
				free := harness.Dial(t, tc.other, gw.SIPAddr) // fails the test unless 200
				free.Hangup(t)
			}
			first.Hangup(t)
			gw.Logs.WaitFor(t, 5*time.Second, func(e harness.Entry) bool {
				return e.Msg() == "call ended" && e.Str("call_id") == first.D.CallID
			})
			again := harness.Dial(t, tc.second, gw.SIPAddr)
			again.Hangup(t)
		})
	}
}

// TestMetricsAfterCall: one answered call with media and a refused
// transfer shows in every main metric family.
func TestMetricsAfterCall(t *testing.T) {
	fleetSkipShort(t)
	t.Parallel()
	gw := startFleetGateway(t, "")
	call := harness.Dial(t, "127.0.0.1", gw.SIPAddr)
	frame := []byte(strings.Repeat("\x55", 160))
	const sent = 50
	for range sent {
		call.SendRTP(t, 0, frame)
		time.Sleep(20 * time.Millisecond)
	}
	echoed := call.CountPayload(0x55, 160, 500*time.Millisecond)
	// transfer.allow is empty: every transfer is refused, and counted.
	code, body := fleetAdmin(t, gw, http.MethodPost, "/calls/"+url.PathEscape(call.D.CallID)+"/transfer", `{"target":"sip:someone@192.0.2.1"}`)
	if code != http.StatusForbidden {
		t.Errorf("transfer to a target off the allowlist = %d %s, want 403", code, body)
	}
	call.Hangup(t)
	// The end line is logged before the metrics are counted.
	waitMetric(t, gw, `switchboard_calls_total{outcome="remote_bye"}`, 1, 1)

	m := gw.Metrics(t)
	for _, c := range []struct {
		series string
		min    float64
		max    float64
	}{
		{`switchboard_calls_total{outcome="remote_bye"}`, 1, 1},
		{`switchboard_calls_active`, 0, 0},
		{`switchboard_call_setup_seconds_count`, 1, 1},
		{`switchboard_call_duration_seconds_count`, 1, 1},
		{`switchboard_rtp_packets_total{direction="in"}`, sent - 5, sent},
		{`switchboard_rtp_packets_total{direction="out"}`, float64(max(echoed, 1)), 1000},
		{`switchboard_rtp_packets_lost_total`, 0, 0},
		{`switchboard_rtp_jitter_seconds_count`, 1, 1},
		{`switchboard_agent_connect_seconds_count{agent="echo"}`, 1, 1},
		{`switchboard_transfers_total{outcome="failed",type="cold"}`, 1, 1},
	} {
		v, ok := m[c.series]
		if !ok || v < c.min || v > c.max {
			t.Errorf("%s = %v (present %v), want %v..%v", c.series, v, ok, c.min, c.max)
		}
	}
	if echoed < sent/2 {
		t.Errorf("the echo agent returned %d of %d frames", echoed, sent)
	}
}

// waitMetric polls /metrics until series is within [lo, hi], and fails the
// test after a few seconds.
func waitMetric(t *testing.T, gw *harness.Gateway, series string, lo, hi float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, ok := gw.Metrics(t)[series]
		if ok && v >= lo && v <= hi {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v), want %v..%v", series, v, ok, lo, hi)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
