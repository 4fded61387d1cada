package harness

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a stand-in gateway (re-executed with
// HARNESS_FAKE_GATEWAY=mode) so the harness's process handling is tested
// without the real gateway.
func TestMain(m *testing.M) {
	if mode := os.Getenv("HARNESS_FAKE_GATEWAY"); mode != "" {
		fakeGateway(mode)
		return
	}
	os.Exit(m.Run())
}

func fakeGateway(mode string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	fmt.Fprintln(os.Stdout, "plain text on stdout")
	fmt.Fprintln(os.Stderr, `{"level":"INFO","msg":"gateway ready","sip":"127.0.0.1:5999"}`)
	fmt.Fprintln(os.Stderr, `{"msg":"call ended","agent_frames_in":354,"reason":"remote_bye"}`)
	switch mode {
	case "panic":
		<-sig
		fmt.Fprintln(os.Stderr, "panic: boom")
		os.Exit(2)
	default:
		<-sig
	}
}

// recorder is a testing.TB that records Errorf instead of failing.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func useFake(t *testing.T, mode string) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	buildOnce.Do(func() {}) // no real build in this package's tests
	buildPath = exe
	t.Setenv("HARNESS_FAKE_GATEWAY", mode)
}

func TestStartGatewayCleanAndPanic(t *testing.T) {
	useFake(t, "clean")
	rec := &recorder{TB: t}
	g := StartGateway(rec, ConfigTemplate(5999, 20000, 20019, ""))
	if g.SIPAddr != "127.0.0.1:5999" {
		t.Errorf("SIPAddr = %q", g.SIPAddr)
	}
	e := g.Logs.WaitFor(t, time.Second, MsgIs("call ended"))
	if e.Int("agent_frames_in") != 354 || e.Str("reason") != "remote_bye" {
		t.Errorf("entry = %v", e)
	}
	// The fake prints the plain line after "call ended": wait for it too.
	g.Logs.WaitFor(t, 2*time.Second, func(e Entry) bool { return e.Str("raw") == "plain text on stdout" })
	rec.runCleanups()
	if len(rec.errs) != 0 || !g.Exited() {
		t.Errorf("clean shutdown: errors %q, exited %v", rec.errs, g.Exited())
	}

	useFake(t, "panic")
	rec = &recorder{TB: t}
	g = StartGateway(rec, ConfigTemplate(5999, 20000, 20019, ""))
	rec.runCleanups()
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "panicked") {
		t.Errorf("panic not reported: %q", rec.errs)
	}
}

func TestLogTailWaitForEndsWhenProcessExits(t *testing.T) {
	l := NewLogTail()
	r, w, _ := os.Pipe()
	l.Consume(r, "stderr")
	go func() {
		time.Sleep(50 * time.Millisecond)
		fmt.Fprintln(w, `{"msg":"a","n":"7"}`)
		w.Close()
		l.WaitClosed(time.Second)
	}()
	if e, err := l.waitFor(5*time.Second, MsgIs("a")); err != nil || e.Int("n") != 7 {
		t.Fatalf("waitFor a: %v %v", e, err)
	}
	start := time.Now()
	if _, err := l.waitFor(5*time.Second, MsgIs("never")); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("waitFor after exit: err %v after %v", err, time.Since(start))
	}
}

func TestParseLine(t *testing.T) {
	e := ParseLine(`{"msg":"call ended","ptime_ms":30,"big":12345678901234,"f":1.5}`)
	if e.Msg() != "call ended" || e.Int("ptime_ms") != 30 || e.Int("big") != 12345678901234 || e.Int("f") != 2 {
		t.Errorf("json: %v", e)
	}
	for _, line := range []string{"panic: x", `{"broken":`, `{"a":1} {"b":2}`} {
		if e := ParseLine(line); e.Str("raw") != line || e.Line() != line {
			t.Errorf("raw %q: %v", line, e)
		}
	}
}

func TestPorts(t *testing.T) {
	p := FreePortPair(t)
	l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	lo, hi := FreeUDPPortRange(t, 20)
	if lo%2 != 0 || hi-lo != 19 || lo < rangeLow || hi >= rangeHigh {
		t.Errorf("range %d-%d", lo, hi)
	}
	if u := FreeUDPPort(t); u <= 0 {
		t.Errorf("udp port %d", u)
	}
}

func TestConfigTemplateListen(t *testing.T) {
	cfg := ConfigTemplate(5072, 30000, 30019, "store:\n  type: memory\n")
	if m := listenRE.FindStringSubmatch(cfg); m == nil || m[1] != "127.0.0.1:5072" {
		t.Errorf("listen regexp on template: %v", m)
	}
	if !strings.HasSuffix(cfg, "\nstore:\n  type: memory\n") {
		t.Errorf("extra not appended:\n%s", cfg)
	}
	// A free admin port and a short drain unless the test sets its own.
	if !strings.Contains(cfg, "admin:\n  listen: 127.0.0.1:0\n") || !strings.Contains(cfg, "drain:\n  timeout: 2s\n") {
		t.Errorf("admin/drain defaults missing:\n%s", cfg)
	}
	own := ConfigTemplate(5072, 30000, 30019, "admin:\n  listen: 127.0.0.1:9999\ndrain:\n  timeout: 9s\n")
	if strings.Count(own, "admin:") != 1 || strings.Count(own, "drain:") != 1 {
		t.Errorf("the test's own admin/drain sections must replace the defaults:\n%s", own)
	}
}
