package test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/test/harness"
)

// coldPlan answers and transfers the caller cold; a failed transfer plays a
// prompt and hangs up, so on_failure shows in the CDR's actions.
const coldPlan = `prompts: .
rules:
  - name: xfer
    default: true
    actions:
      - answer
      - transfer:
          mode: cold
          target: sip:+15550199@127.0.0.1:5999
          on_failure: [{play: one.wav}, hangup]
`

// TestColdTransferSIPp: SIPp is the caller and receives the REFER. Each
// variant asserts what the gateway did: leave after a 2xx sipfrag, or take
// the dialplan's on_failure after a 603 or a REFER nobody ever NOTIFYs.
func TestColdTransferSIPp(t *testing.T) {
	tests := []struct {
		scenario  string
		reason    string // the call's end reason
		transfers string // the call-ended line's transfers
		onFailure bool
		minTime   time.Duration // the refer timeout must have run out
	}{
		{"uac_refer_accept.xml", "transferred", "cold sip:+15550199@127.0.0.1:5999 completed 200", false, 0},
		{"uac_refer_decline.xml", "local_bye", "cold sip:+15550199@127.0.0.1:5999 failed 603", true, 0},
		{"uac_refer_silent.xml", "local_bye", "cold sip:+15550199@127.0.0.1:5999 failed 0", true, time.Second},
	}
	for _, tc := range tests {
		t.Run(strings.TrimSuffix(tc.scenario, ".xml"), func(t *testing.T) {
			path := writePlan(t, t.TempDir(), coldPlan)
			sipPort := harness.FreePortPair(t)
			rtpMin, rtpMax := harness.FreeUDPPortRange(t, 20)
			gw := harness.StartGateway(t, harness.ConfigTemplate(sipPort, rtpMin, rtpMax,
				"dialplan: "+path+"\ntransfer:\n  allow: ['@127.0.0.1']\n  refer_timeout: 1s\n"))
			sippPort := harness.FreeUDPPort(t)
			mediaPort, _ := harness.FreeUDPPortRange(t, 4)
			started := time.Now()
			stdout, _, code := harness.RunSIPp(t, t.Context(), gw.SIPAddr,
				"-sf", harness.ScenarioPath(t, tc.scenario), "-s", "+15550100",
				"-m", "1", "-l", "1", "-i", "127.0.0.1", "-p", strconv.Itoa(sippPort),
				"-mp", strconv.Itoa(mediaPort), "-timeout", "30s", "-timeout_error", "-trace_err", "-bind_local")
			if code != 0 {
				t.Fatalf("sipp exit code %d\n%s", code, lastLines(stdout, 40))
			}
			ended := gw.Logs.WaitFor(t, 10*time.Second, harness.MsgIs("call ended"))
			t.Logf("call ended: %s", ended.Line())
			wantStr(t, ended, "reason", tc.reason)
			wantStr(t, ended, "transfers", tc.transfers)
			if got := strings.Contains(ended.Str("actions"), "play one.wav"); got != tc.onFailure {
				t.Errorf("on_failure ran = %v, want %v (actions %q)", got, tc.onFailure, ended.Str("actions"))
			}
			if el := time.Since(started); el < tc.minTime {
				t.Errorf("the call ended after %v, before the %v refer timeout", el, tc.minTime)
			}
		})
	}
}
