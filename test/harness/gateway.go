package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Timeouts of a gateway's life in a test.
const (
	ReadyTimeout    = 15 * time.Second // start -> "gateway ready"
	ShutdownTimeout = 10 * time.Second // SIGTERM -> exit, then SIGKILL
)

// Gateway is a running switchboard process.
type Gateway struct {
	SIPAddr    string   // host:port the gateway listens on for SIP (UDP and TCP)
	AdminAddr  string   // host:port of the admin HTTP listener ("" when off)
	Logs       *LogTail // everything it wrote on stdout and stderr
	ConfigPath string
	PID        int
	Ready      Entry // the "gateway ready" line

	cmd    *exec.Cmd
	proc   *os.Process
	exited chan struct{} // closed when the process has been reaped
	state  *os.ProcessState
	werr   error
}

// ConfigTemplate returns a gateway configuration for tests: SIP on
// 127.0.0.1:sipPort (UDP and TCP), RTP on 127.0.0.1 ports rtpMin..rtpMax,
// PCMU and PCMA, JSON logs at info level. extra is appended verbatim:
// further top-level YAML sections. The gateway rejects duplicate keys, so
// the replaceable sections below (the echo agent as default, the admin
// listener on a free port, a short drain) are left out when extra has its
// own; sip, media and log must not be repeated.
func ConfigTemplate(sipPort, rtpMin, rtpMax int, extra string) string {
	cfg := fmt.Sprintf(`sip:
  listen: 127.0.0.1:%d
  public_address: 127.0.0.1
media:
  rtp_address: 127.0.0.1
  rtp_port_min: %d
  rtp_port_max: %d
  codecs: [PCMU, PCMA]
  inactivity_timeout: 30s
log:
  level: info
  format: json
`, sipPort, rtpMin, rtpMax)
	extra = strings.TrimSpace(extra)
	for _, d := range replaceableSections {
		if !regexp.MustCompile(`(?m)^` + d.key + `:`).MatchString(extra) {
			cfg += d.yaml
		}
	}
	if extra != "" {
		cfg += extra + "\n"
	}
	return cfg
}

// replaceableSections are ConfigTemplate's defaults a test may replace.
var replaceableSections = []struct{ key, yaml string }{
	{"agents", "agents:\n  echo: {type: echo}\n"},
	{"default_agent", "default_agent: echo\n"},
	{"admin", "admin:\n  listen: 127.0.0.1:0\n"}, // a free port, logged at start
	{"drain", "drain:\n  timeout: 2s\n"},         // calls still up at Stop end quickly
}

var listenRE = regexp.MustCompile(`(?m)^sip:\s*\n(?:[ \t]+.*\n)*?[ \t]+listen:\s*"?([^\s"#]+)`)

// StartGateway writes yamlConfig to t.TempDir()/switchboard.yaml, starts
// `switchboard run --config PATH` (built by BuildBinary, with -race) and waits
// up to ReadyTimeout for the "gateway ready" log line. On failure it stops
// the test with the captured output. t.Cleanup stops the process (SIGTERM,
// then SIGKILL after ShutdownTimeout) and fails the test if the gateway
// panicked, raced, or did not exit in time.
func StartGateway(t testing.TB, yamlConfig string) *Gateway {
	t.Helper()
	bin := BuildBinary(t)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(cfgPath, []byte(yamlConfig), 0o600); err != nil {
		t.Fatal(err)
	}

	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Dir = dir
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.Env = append(os.Environ(),
		// Make a data race fatal and loud, with the log kept in our capture.
		"GORACE=halt_on_error=1 exitcode=66",
		"GOTRACEBACK=all",
	)
	setProcAttr(cmd)

	g := &Gateway{
		Logs:       NewLogTail(),
		ConfigPath: cfgPath,
		cmd:        cmd,
		exited:     make(chan struct{}),
	}
	if err := cmd.Start(); err != nil {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			_ = f.Close()
		}
		t.Fatalf("harness: start %s: %v", bin, err)
	}
	// The child holds its own copies of the write ends.
	_ = outW.Close()
	_ = errW.Close()
	g.proc = cmd.Process
	g.PID = cmd.Process.Pid
	g.Logs.Consume(outR, "stdout")
	g.Logs.Consume(errR, "stderr")
	go func() {
		g.werr = cmd.Wait()
		g.state = cmd.ProcessState
		close(g.exited)
	}()
	go func() {
		<-g.exited
		g.Logs.WaitClosed(5 * time.Second)
		_ = outR.Close()
		_ = errR.Close()
	}()

	t.Cleanup(func() { g.stop(t) })

	ready, err := g.Logs.waitFor(ReadyTimeout, MsgIs("gateway ready"))
	if err != nil {
		t.Fatalf("%v (gateway pid %d, config %s)\n--- config ---\n%s--- captured output ---\n%s--- end of output ---",
			err, g.PID, cfgPath, yamlConfig, g.Logs.Text())
	}
	g.Ready = ready
	g.AdminAddr = ready.Str("admin")
	g.SIPAddr = ready.Str("sip")
	if g.SIPAddr == "" {
		if m := listenRE.FindStringSubmatch(yamlConfig); m != nil {
			g.SIPAddr = m[1]
		}
	}
	if g.SIPAddr == "" {
		t.Fatalf("harness: SIP address neither in the ready line nor in the config:\n%s", ready.Line())
	}
	return g
}

// Exited reports whether the process has ended.
func (g *Gateway) Exited() bool {
	select {
	case <-g.exited:
		return true
	default:
		return false
	}
}

// Stop ends the gateway now (as the cleanup would) and checks its output.
// Safe to call more than once; later calls do nothing.
func (g *Gateway) Stop(t testing.TB) {
	t.Helper()
	g.stop(t)
}

func (g *Gateway) stop(t testing.TB) {
	t.Helper()
	if g.cmd == nil {
		return
	}
	g.cmd = nil // the checks below run once

	killed := false
	if !g.Exited() {
		// Signal our own child only (os.Process never signals a reaped PID).
		if err := g.proc.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("harness: SIGTERM gateway pid %d: %v", g.PID, err)
		}
		select {
		case <-g.exited:
		case <-time.After(ShutdownTimeout):
			killed = true
			_ = g.proc.Kill()
			select {
			case <-g.exited:
			case <-time.After(5 * time.Second):
				t.Errorf("harness: gateway pid %d still running after SIGKILL", g.PID)
			}
		}
	}
	g.Logs.WaitClosed(5 * time.Second)

	out := g.Logs.Text()
	var problems []string
	if killed {
		problems = append(problems, fmt.Sprintf("did not exit within %v of SIGTERM (killed)", ShutdownTimeout))
	}
	if strings.Contains(out, "panic:") {
		problems = append(problems, "panicked")
	}
	if strings.Contains(out, "DATA RACE") {
		problems = append(problems, "has a data race")
	}
	if strings.Contains(out, "fatal error:") {
		problems = append(problems, "hit a fatal runtime error")
	}
	status := "still running"
	var state *os.ProcessState
	if g.Exited() { // g.state and g.werr are set before exited is closed
		state = g.state
		if state != nil {
			status = state.String()
		} else if g.werr != nil {
			status = g.werr.Error()
		}
	}
	if len(problems) > 0 {
		t.Errorf("harness: gateway pid %d %s (exit: %s)\n--- captured output ---\n%s--- end of output ---",
			g.PID, strings.Join(problems, ", "), status, out)
		return
	}
	if t.Failed() {
		t.Logf("gateway pid %d exit: %s\n--- captured output ---\n%s--- end of output ---", g.PID, status, out)
	} else if state != nil && !state.Success() {
		// A clean SIGTERM shutdown should exit 0; report, do not fail.
		t.Logf("harness: gateway pid %d exited after SIGTERM with %s", g.PID, status)
	}
}

// WaitExit waits up to timeout for the process to end on its own and
// returns its exit status (-1 when a signal ended it); ok is false when it
// is still running.
func (g *Gateway) WaitExit(timeout time.Duration) (code int, ok bool) {
	select {
	case <-g.exited: // g.state is set before exited is closed
	case <-time.After(timeout):
		return 0, false
	}
	if g.state == nil {
		return -1, true
	}
	return g.state.ExitCode(), true
}
