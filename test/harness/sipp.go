package harness

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SIPpTimeout caps any single SIPp run, whatever the caller's context says.
const SIPpTimeout = 2 * time.Minute

// PcapG711A is the A-law capture shipped with Debian's sip-tester package:
// 236 RTP packets, PT 8, 30 ms (240 samples) each, 7.08 s of audio.
const PcapG711A = "/usr/share/sip-tester/g711a.pcap"

// SIPpPath returns the sipp executable, or skips the test when it is missing.
func SIPpPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		t.Skip("sipp not on PATH: run scripts/setup-test-deps.sh (Debian package sip-tester)")
	}
	return p
}

// RequirePcapPlay skips the test unless SIPp can replay pcap audio here: the
// capture must exist and SIPp needs a raw socket (root, or `setcap
// cap_net_raw+ep` on sipp; set SWITCHBOARD_SIPP_PCAP=1 to assert the latter).
func RequirePcapPlay(t testing.TB, pcap string) {
	t.Helper()
	if _, err := os.Stat(pcap); err != nil {
		t.Skipf("pcap %s missing (Debian package sip-tester ships it): %v", pcap, err)
	}
	if os.Geteuid() != 0 && os.Getenv("SWITCHBOARD_SIPP_PCAP") != "1" {
		t.Skip("SIPp play_pcap_audio needs a raw socket: run as root, or setcap cap_net_raw+ep on sipp and set SWITCHBOARD_SIPP_PCAP=1")
	}
}

// ScenarioPath returns the absolute path of test/sipp/<name>.
func ScenarioPath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(MustRepoRoot(t), "test", "sipp", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("harness: SIPp scenario: %v", err)
	}
	return p
}

// RunSIPp runs `sipp args...` in a fresh temporary directory (where SIPp's
// trace and error files land), with -nostdin added, and returns its output
// and exit code (-1 if it could not run or was killed on timeout). It skips the
// test when sipp is not installed. The run ends when ctx ends or after
// SIPpTimeout, killing only the sipp process it started. Scenario paths in
// args must be absolute (see ScenarioPath). When the exit code is not 0, SIPp's
// log files are written to the test log.
func RunSIPp(t testing.TB, ctx context.Context, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	bin := SIPpPath(t)
	ctx, cancel := context.WithTimeout(ctx, SIPpTimeout)
	defer cancel()

	dir := t.TempDir()
	full := append([]string{}, args...)
	if !contains(full, "-nostdin") {
		full = append(full, "-nostdin")
	}
	cmd := exec.CommandContext(ctx, bin, full...) // on ctx end: Kill of this PID only
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	setProcAttr(cmd)
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout = &outBuf
	cmd.Stderr = &errBuf

	start := time.Now()
	err := cmd.Run()
	exitCode = 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			exitCode = ee.ExitCode() // -1 when killed by a signal
		} else {
			exitCode = -1
			errBuf.WriteString("\nharness: " + err.Error())
		}
		if ctx.Err() != nil {
			errBuf.WriteString("\nharness: sipp stopped: " + ctx.Err().Error())
		}
	}
	t.Logf("sipp %s: exit %d after %v", strings.Join(full, " "), exitCode, time.Since(start).Round(time.Millisecond))
	if exitCode != 0 {
		t.Logf("--- sipp stdout (tail) ---\n%s\n--- sipp stderr ---\n%s", tail(outBuf.String(), 6000), errBuf.String())
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, f := range logs {
			if b, err := os.ReadFile(f); err == nil {
				t.Logf("--- %s ---\n%s", filepath.Base(f), tail(string(b), 8000))
			}
		}
	}
	return outBuf.String(), errBuf.String(), exitCode
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}
