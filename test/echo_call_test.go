package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/test/harness"
)

// TestEchoRoundTripWithSwitchboardCall is the README's first call: the
// built-in caller plays a 1 kHz tone at the gateway's echo agent, records
// what comes back, and the recording must be that tone with no packet lost.
func TestEchoRoundTripWithSwitchboardCall(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()
	sipPort := harness.FreePortPair(t)
	rtpMin, rtpMax := harness.FreeUDPPortRange(t, 20)
	gw := harness.StartGateway(t, harness.ConfigTemplate(sipPort, rtpMin, rtpMax, ""))

	callMin, callMax := harness.FreeUDPPortRange(t, 4)
	recording := filepath.Join(t.TempDir(), "heard.wav")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.BuildBinary(t), "call",
		"--tone", "1000", "--duration", "3s", "--record", recording, "--dtmf", "5@1s",
		"--rtp-ports", fmt.Sprintf("%d-%d", callMin, callMax), "--json",
		"sip:echo@"+gw.SIPAddr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard call: %v\n%s", err, out)
	}
	events := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			events[fmt.Sprint(ev["event"])] = ev
		}
	}
	answered, ok := events["answered"]
	if !ok || answered["codec"] != "PCMU" {
		t.Fatalf("call not answered with PCMU; output:\n%s", out)
	}
	if _, ok := events["dtmf_sent"]; !ok {
		t.Errorf("no dtmf_sent event; output:\n%s", out)
	}
	ended := events["ended"]
	if ended["rtp_lost"] != float64(0) {
		t.Errorf("rtp_lost = %v on loopback, want 0", ended["rtp_lost"])
	}
	if rx, _ := ended["rtp_received"].(float64); rx < 100 {
		t.Errorf("rtp_received = %v, want about 150 for 3 s", ended["rtp_received"])
	}

	heard, err := media.ReadWAVFile(recording)
	if err != nil {
		t.Fatal(err)
	}
	if len(heard) < 8000*2 {
		t.Fatalf("recording holds %d samples, want at least 2 s", len(heard))
	}
	// Skip the first half second: the echo starts one round trip late.
	if f := media.DominantFrequency(heard[4000:12000], 300, 3400, 5); f < 990 || f > 1010 {
		t.Fatalf("recording's dominant frequency = %.0f Hz, want 1000 Hz", f)
	}

	end := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call ended"))
	if end.Str("reason") != "remote_bye" || end.Int("rtp_packets_lost") != 0 || end.Int("agent_frames_in") < 100 {
		t.Errorf("gateway's call record = %s", end.Line())
	}
	if _, ok := gw.Logs.Find(func(e harness.Entry) bool { return e.Msg() == "dtmf" && e.Str("digit") == "5" }); !ok {
		t.Errorf("the echo agent never heard DTMF 5")
	}
}
