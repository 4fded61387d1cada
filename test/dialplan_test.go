package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/test/harness"
)

// menuPlan is a one-digit IVR: each branch plays its own prompt and hangs
// up, so the branch taken shows in the CDR's actions.
const menuPlan = `prompts: .
rules:
  - name: menu
    default: true
    actions:
      - gather:
          prompt: menu.wav
          max_digits: 1
          timeout: 5s
          retries: 0
          branches:
            "1": [{play: one.wav}, hangup]
            "2": [{play: two.wav}, hangup]
            "3": [{play: three.wav}, hangup]
          no_input: [hangup]
          no_match: [hangup]
`

// writePlan writes plan and the prompts it uses into dir.
func writePlan(t *testing.T, dir, plan string) string {
	t.Helper()
	for name, hz := range map[string]float64{"menu.wav": 440, "one.wav": 600, "two.wav": 700, "three.wav": 800} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := media.WriteWAV(f, media.Tone(hz, 2*time.Second/5, 0.3), 8000); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	path := filepath.Join(dir, "dialplan.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startPlanGateway(t *testing.T, plan string) (*harness.Gateway, string) {
	t.Helper()
	path := writePlan(t, t.TempDir(), plan)
	sipPort := harness.FreePortPair(t)
	rtpMin, rtpMax := harness.FreeUDPPortRange(t, 20)
	gw := harness.StartGateway(t, harness.ConfigTemplate(sipPort, rtpMin, rtpMax, "dialplan: "+path))
	return gw, path
}

// wantBranch checks the gateway's record of a menu call: the digit pressed,
// the branch's prompt played, and the gateway (not the caller) hanging up.
func wantBranch(t *testing.T, gw *harness.Gateway, digit, prompt string) {
	t.Helper()
	wantNthBranch(t, gw, 1, digit, prompt)
}

// wantNthBranch is wantBranch for the nth call the gateway ended (from 1).
func wantNthBranch(t *testing.T, gw *harness.Gateway, n int, digit, prompt string) {
	t.Helper()
	ended := waitCount(t, gw, "call ended", n)[n-1]
	t.Logf("call ended: %s", ended.Line())
	wantStr(t, ended, "rule", "menu")
	wantStr(t, ended, "digits", digit)
	if actions := ended.Str("actions"); !strings.Contains(actions, "gather "+digit) || !strings.Contains(actions, "play "+prompt) {
		t.Errorf("actions = %q, want gather %s then play %s", actions, digit, prompt)
	}
	wantStr(t, ended, "hung_up_by", "gateway")
}

func runGatherSIPp(t *testing.T, gw *harness.Gateway, scenario string) {
	t.Helper()
	runGatherSIPpFile(t, gw, harness.ScenarioPath(t, scenario))
}

// runGatherSIPpFile runs a scenario given by its absolute path.
func runGatherSIPpFile(t *testing.T, gw *harness.Gateway, scenario string) {
	t.Helper()
	sippPort := harness.FreeUDPPort(t)
	mediaPort, _ := harness.FreeUDPPortRange(t, 4)
	stdout, _, code := harness.RunSIPp(t, t.Context(), gw.SIPAddr,
		"-sf", scenario, "-s", "+15550100",
		"-m", "1", "-l", "1", "-i", "127.0.0.1", "-p", strconv.Itoa(sippPort),
		"-mp", strconv.Itoa(mediaPort), "-timeout", "30s", "-timeout_error", "-trace_err", "-bind_local")
	if code != 0 {
		t.Fatalf("sipp exit code %d, want 0 (the gateway must hang up after the branch)\n%s", code, lastLines(stdout, 40))
	}
}

// TestGatherRFC2833FromSIPp: RFC 2833 events replayed from sip-tester's own
// capture choose the menu branch.
func TestGatherRFC2833FromSIPp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	harness.SIPpPath(t)
	harness.RequirePcapPlay(t, "/usr/share/sip-tester/dtmf_2833_1.pcap")
	t.Parallel()
	gw, _ := startPlanGateway(t, menuPlan)
	runGatherSIPp(t, gw, "uac_gather_2833.xml")
	wantBranch(t, gw, "1", "one.wav")
}

// TestGatherSIPInfoFromSIPp: a SIP INFO digit chooses the branch, in both
// bodies carriers send: application/dtmf-relay (Signal=2) and
// application/dtmf (the digit alone).
func TestGatherSIPInfoFromSIPp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	harness.SIPpPath(t)
	t.Parallel()
	gw, _ := startPlanGateway(t, menuPlan)
	for i, tc := range []struct{ scenario, digit, prompt string }{
		{"uac_gather_info.xml", "2", "two.wav"},
		{"uac_gather_info_dtmf.xml", "3", "three.wav"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			runGatherSIPp(t, gw, tc.scenario)
			wantNthBranch(t, gw, i+1, tc.digit, tc.prompt)
		})
	}
}

// anyKeyPlan accepts any one key (no terminator) and says so by playing
// one.wav.
const anyKeyPlan = `prompts: .
rules:
  - name: menu
    default: true
    actions:
      - gather: {prompt: menu.wav, max_digits: 1, timeout: 5s, retries: 0, terminator: "", no_input: [hangup]}
      - play: one.wav
      - hangup
`

// TestGatherRFC2833EveryKeyFromSIPp: each of sip-tester's dtmf_2833_*.pcap
// captures (0-9, star, pound), replayed by SIPp, is the key the gather
// collects. The scenario is uac_gather_2833.xml with the capture swapped.
func TestGatherRFC2833EveryKeyFromSIPp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	harness.SIPpPath(t)
	const pcapDir = "/usr/share/sip-tester/"
	harness.RequirePcapPlay(t, pcapDir+"dtmf_2833_0.pcap")
	template, err := os.ReadFile(harness.ScenarioPath(t, "uac_gather_2833.xml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Parallel()
	gw, _ := startPlanGateway(t, anyKeyPlan)
	keys := []struct{ pcap, key string }{
		{"0", "0"}, {"1", "1"}, {"2", "2"}, {"3", "3"}, {"4", "4"}, {"5", "5"},
		{"6", "6"}, {"7", "7"}, {"8", "8"}, {"9", "9"}, {"star", "*"}, {"pound", "#"},
	}
	dir := t.TempDir()
	for i, k := range keys {
		t.Run(k.pcap, func(t *testing.T) {
			pcap := pcapDir + "dtmf_2833_" + k.pcap + ".pcap"
			if _, err := os.Stat(pcap); err != nil {
				t.Fatalf("sip-tester ships %s: %v", pcap, err)
			}
			scenario := filepath.Join(dir, "uac_gather_2833_"+k.pcap+".xml")
			body := strings.ReplaceAll(string(template), pcapDir+"dtmf_2833_1.pcap", pcap)
			if err := os.WriteFile(scenario, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			runGatherSIPpFile(t, gw, scenario)
			wantNthBranch(t, gw, i+1, k.key, "one.wav")
		})
	}
}

// TestGatherInbandTones: a caller that negotiated no telephone-event sends
// DTMF as audio tones; the gateway detects them in the decoded audio.
func TestGatherInbandTones(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()
	gw, _ := startPlanGateway(t, menuPlan)
	out := placeCall(t, gw, "--inband", "--dtmf", "3@800ms", "--duration", "10s")
	if !strings.Contains(out, `"telephone_event":false`) {
		t.Errorf("the call negotiated telephone-event; the test needs in-band:\n%s", out)
	}
	wantBranch(t, gw, "3", "three.wav")
}

// gatherPlan collects up to four digits: "12" and "1234" have branches, and
// each way the gather can end (terminator, inter-digit timeout, max_digits,
// no input) is told apart by the branch and by when the gateway hangs up.
const gatherPlan = `prompts: .
rules:
  - name: menu
    default: true
    actions:
      - gather:
          prompt: menu.wav
          max_digits: 4
          timeout: 1500ms
          inter_digit_timeout: 3s
          retries: 0
          branches:
            "12": [{play: one.wav}, hangup]
            "1234": [{play: two.wav}, hangup]
          no_input: [{play: three.wav}, hangup]
          no_match: [hangup]
`

// TestGatherEndToEnd drives the real call's gather with `switchboard call
// --dtmf` (RFC 4733 events, 100 ms each, offsets from the answer). The
// prompt lasts 0.4 s, so the first-digit timeout ends at 1.9 s; the
// gateway's BYE comes 0.4 s (the branch's prompt) after the gather ends.
func TestGatherEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()
	gw, _ := startPlanGateway(t, gatherPlan)
	for i, tc := range []struct {
		name, dtmf     string
		gathered       string // the gather's record in the actions
		prompt         string // the branch's prompt
		pressed        string // every key the CDR saw
		endedBy        string // the "gather ended" line's
		durations      string // of the digits collected, in ms, as logged
		minBye, maxBye time.Duration
	}{
		// '#' ends input at once: waiting the 3 s inter-digit timeout
		// instead would put the BYE at 4.6 s, and '#' kept as a digit would
		// be no_match.
		{"terminator", "1@800ms,2@1100ms,#@1400ms", "gather 12", "one.wav", "12#", "terminator", "[100 100]", 1500 * time.Millisecond, 3400 * time.Millisecond},
		// Two of four digits, then silence: the gather waits the 3 s
		// inter-digit timeout (BYE at 4.6 s), not the 1.5 s first-digit one.
		{"inter-digit timeout", "1@800ms,2@1100ms", "gather 12", "one.wav", "12", "inter_digit_timeout", "[100 100]", 4 * time.Second, 8 * time.Second},
		// The fourth digit ends input without waiting for more.
		{"max digits", "1@800ms,2@1000ms,3@1200ms,4@1400ms", "gather 1234", "two.wav", "1234", "max_digits", "[100 100 100 100]", 1500 * time.Millisecond, 3400 * time.Millisecond},
		{"no input", "", "gather no_input", "three.wav", "", "timeout", "", 2 * time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--duration", "15s"}
			if tc.dtmf != "" {
				args = append(args, "--dtmf", tc.dtmf)
			}
			call := runCall(t, gw, args...)
			ended := waitCount(t, gw, "call ended", i+1)[i]
			t.Logf("call ended: %s", ended.Line())
			if r := call.str("ended", "reason"); r != "remote_hangup" {
				t.Fatalf("the caller ended with %q, want the gateway's BYE:\n%s", r, call.out)
			}
			bye := time.Duration(call.num("ended", "duration_ms")) * time.Millisecond
			if bye < tc.minBye || bye > tc.maxBye {
				t.Errorf("the gateway hung up %v after answering, want %v to %v", bye, tc.minBye, tc.maxBye)
			}
			wantStr(t, ended, "rule", "menu")
			if actions := ended.Str("actions"); !strings.Contains(actions, tc.gathered+"; play "+tc.prompt+"; hangup") {
				t.Errorf("actions = %q, want %s then play %s", actions, tc.gathered, tc.prompt)
			}
			if got := ended.Str("digits"); got != tc.pressed {
				t.Errorf("digits = %q, want %q", got, tc.pressed)
			}
			g := waitCount(t, gw, "gather ended", i+1)[i]
			if g.Str("ended_by") != tc.endedBy || g.Str("durations_ms") != tc.durations {
				t.Errorf("gather ended by %q with durations %q, want %q with %q (the sender holds each key 100 ms)",
					g.Str("ended_by"), g.Str("durations_ms"), tc.endedBy, tc.durations)
			}
		})
	}
}

// placeCall runs `switchboard call` against the gateway and returns its
// JSON event output.
func placeCall(t *testing.T, gw *harness.Gateway, args ...string) string {
	t.Helper()
	return runCall(t, gw, args...).out
}

// reloadPlan is a one-key menu whose branch jumps to the menu "pick":
// plans told apart by rule name and by the prompt "pick" plays.
func reloadPlan(rule, prompt string) string {
	return fmt.Sprintf(`prompts: .
rules:
  - name: %s
    default: true
    actions:
      - gather: {prompt: menu.wav, max_digits: 1, timeout: 10s, retries: 0, branches: {"1": pick}, no_input: [hangup]}
menus:
  pick:
    actions: [{play: %s}, hangup]
`, rule, prompt)
}

// TestDialplanReloadKeepsCallsOnTheirPlan: a call waiting in a gather while
// the plan is replaced goes on, after the reload, to its old plan's menu;
// the next call follows the new plan; an invalid file changes nothing; and
// reloads from SIGHUP and from a file change are both counted.
func TestDialplanReloadKeepsCallsOnTheirPlan(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()
	gw, path := startPlanGateway(t, reloadPlan("old", "one.wav"))
	replace := func(body string, hup bool) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if hup {
			if err := syscall.Kill(gw.PID, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The first call presses 1 four seconds after the answer: after the
	// reload below, so its jump to "pick" comes after the file has changed.
	const pressAt = 4 * time.Second
	first := make(chan string, 1)
	go func() {
		callMin, callMax := harness.FreeUDPPortRange(t, 4)
		out, _ := exec.Command(harness.BuildBinary(t), "call", "--json", "--duration", "15s",
			"--dtmf", "1@"+pressAt.String(), "--rtp-ports", fmt.Sprintf("%d-%d", callMin, callMax),
			"sip:+15550100@"+gw.SIPAddr).CombinedOutput()
		first <- string(out)
	}()
	gw.Logs.WaitFor(t, 10*time.Second, harness.MsgIs("call received"))
	received := time.Now()
	replace(reloadPlan("new", "two.wav"), true)
	waitCount(t, gw, "dialplan loaded", 2) // the first is the start-up load
	if took := time.Since(received); took > pressAt-time.Second {
		t.Fatalf("the reload took %v after the call came in: too late for a digit at %v", took, pressAt)
	}
	if n := len(gw.Logs.Filter(harness.MsgIs("call ended"))); n != 0 {
		t.Fatalf("the first call ended before the reload; the test needs it up")
	}

	placeCall(t, gw, "--dtmf", "1@800ms", "--duration", "15s")
	out := <-first
	byRule := map[string]harness.Entry{}
	for _, e := range waitCount(t, gw, "call ended", 2) {
		byRule[e.Str("rule")] = e
	}
	if a := byRule["old"].Str("actions"); !strings.Contains(a, "gather 1; goto pick; play one.wav") {
		t.Errorf("the call up during the reload: actions %q, want its old plan's menu (play one.wav)\n%s", a, out)
	}
	if a := byRule["new"].Str("actions"); !strings.Contains(a, "gather 1; goto pick; play two.wav") {
		t.Errorf("the call after the reload: actions %q, want the new plan's menu (play two.wav)", a)
	}

	// An invalid file is refused and routing stays on "new".
	replace("rules:\n  - name: broken\n    actions: [{agent: nobody}]\n", true)
	gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("dialplan reload refused"))
	placeCall(t, gw, "--duration", "500ms")
	if e := waitCount(t, gw, "call ended", 3)[2]; e.Str("rule") != "new" {
		t.Errorf("after a refused reload the call took rule %q, want new", e.Str("rule"))
	}

	// A change without SIGHUP is picked up by the watcher (2 s polls, and
	// the file must hold still for one) and counted like SIGHUP reloads.
	replace(reloadPlan("newer", "three.wav"), false)
	deadline := time.Now().Add(10 * time.Second)
	for len(gw.Logs.Filter(harness.MsgIs("dialplan loaded"))) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the changed file was not reloaded:\n%s", gw.Logs.Text())
		}
		time.Sleep(100 * time.Millisecond)
	}
	placeCall(t, gw, "--duration", "500ms")
	if e := waitCount(t, gw, "call ended", 4)[3]; e.Str("rule") != "newer" {
		t.Errorf("after the file changed the call took rule %q, want newer", e.Str("rule"))
	}
	m := gw.Metrics(t)
	if ok, refused := m[`switchboard_dialplan_reloads_total{result="ok"}`], m[`switchboard_dialplan_reloads_total{result="refused"}`]; ok != 2 || refused != 1 {
		t.Errorf("reloads counted: ok %v, refused %v; want ok 2 (SIGHUP, file change), refused 1", ok, refused)
	}
}

// waitCount waits until the gateway has logged msg at least n times.
func waitCount(t *testing.T, gw *harness.Gateway, msg string, n int) []harness.Entry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := gw.Logs.Filter(harness.MsgIs(msg))
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %q lines, want %d:\n%s", len(got), msg, n, gw.Logs.Text())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
