package test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/test/harness"
)

// Trunk registration against SIPp as the registrar (sipp/uas_registrar*.xml),
// driving the sip package in this process (the gateway's trunk configuration
// is not wired yet). The scenarios check credentials (verifyauth) and
// Expires values; SIPp's message log gives the timing.

const regUser, regPass = "alice", "s3cret-pw" // as in the scenarios

// logWriter feeds the endpoint's slog lines (one Write each) to a LogTail,
// which is safe for concurrent use; shown when a test fails.
type logWriter struct{ *harness.LogTail }

func (w logWriter) Write(p []byte) (int, error) {
	w.Add("endpoint", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// interop skips with -short or without SIPp, and runs the test in parallel.
func interop(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("interop test: skipped with -short")
	}
	harness.SIPpPath(t)
	t.Parallel()
}

// startEndpoint runs a sip.Server on a free loopback port until the test ends.
func startEndpoint(t *testing.T) *sip.Server {
	t.Helper()
	logs := harness.NewLogTail()
	port := harness.FreePortPair(t)
	srv, err := sip.NewServer(sip.Config{
		Listen:     netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)),
		Transports: []string{"udp"},
		Logger:     slog.New(slog.NewTextHandler(logWriter{logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, served := make(chan struct{}), make(chan error, 1)
	go func() { served <- srv.Serve(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		<-served
		if t.Failed() {
			t.Logf("--- endpoint log ---\n%s", logs.Text())
		}
	})
	return srv
}

// sipp runs a registrar scenario on 127.0.0.1:port in the background; the
// returned channel gets its exit code. SIPp writes its message log to msgLog.
func sippRegistrar(t *testing.T, scenario string, port int, msgLog string, extra ...string) <-chan int {
	t.Helper()
	args := append([]string{
		"-sf", harness.ScenarioPath(t, scenario),
		"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-m", "1",
		"-timeout", "25s", "-timeout_error", "-trace_err", "-bind_local",
		"-trace_msg", "-message_file", msgLog,
	}, extra...)
	code := make(chan int, 1)
	go func() {
		_, _, c := harness.RunSIPp(t, t.Context(), args...)
		code <- c
	}()
	return code
}

// waitState polls the registration until cond holds or d passes.
func waitState(t *testing.T, r *sip.Registration, d time.Duration, what string, cond func(sip.RegistrationState) bool) sip.RegistrationState {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := r.State()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; state %+v", d, what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isState(s string) func(sip.RegistrationState) bool {
	return func(st sip.RegistrationState) bool { return st.State == s }
}

// sippMessage is one message in SIPp's -trace_msg log: when, whether SIPp
// sent it, and its start line.
type sippMessage struct {
	at    time.Time
	sent  bool
	first string
}

// Each message follows "----- 2006-01-02\t15:04:05.000000" and a line saying
// "message sent" or "message received", then a blank line.
var sippStamp = regexp.MustCompile(`^-+ (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)`)

func readSIPpLog(t *testing.T, path string) []sippMessage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("SIPp message log: %v", err)
	}
	var out []sippMessage
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if m := sippStamp.FindStringSubmatch(line); m != nil {
			at, err := time.ParseInLocation("2006-01-02 15:04:05.000000", m[1]+" "+m[2], time.Local)
			if err != nil {
				t.Fatalf("SIPp log timestamp %q: %v", line, err)
			}
			out = append(out, sippMessage{at: at})
		} else if n := len(out); n > 0 && strings.Contains(line, "message sent") {
			out[n-1].sent = true
		} else if n > 0 && out[n-1].first == "" && line != "" && !strings.Contains(line, "message received") {
			out[n-1].first = line
		}
	}
	return out
}

// TestRegisterSIPpDigestRefresh: challenged with 401 (qop=auth), checked by
// SIPp's verifyauth; the registrar grants 4 s of the 3600 asked, so the
// refresh comes at 75%, 3 s later; cancelling sends Expires: 0, which the
// scenario needs to end successfully.
func TestRegisterSIPpDigestRefresh(t *testing.T) {
	interop(t)
	srv := startEndpoint(t)
	port := harness.FreeUDPPort(t)
	msgLog := filepath.Join(t.TempDir(), "messages.log")
	sipp := sippRegistrar(t, "uas_registrar.xml", port, msgLog, "-set", "granted", "4")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := srv.Register(ctx, sip.Trunk{Name: "sipp", Host: "127.0.0.1", Port: port, Username: regUser, Password: regPass})
	st := waitState(t, r, 5*time.Second, "registered", isState(sip.StateRegistered))
	if st.Expires != 4*time.Second || st.Registrar != "127.0.0.1:"+strconv.Itoa(port) {
		t.Errorf("state %+v, want 4 s granted by 127.0.0.1:%d", st, port)
	}
	// Past the refresh (at 3 s), then unregister.
	time.Sleep(4 * time.Second)
	if st := r.State(); st.State != sip.StateRegistered || st.LastError != "" {
		t.Errorf("after the refresh: %+v", st)
	}
	cancel()
	select {
	case <-r.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("registration did not stop")
	}
	if code := <-sipp; code != 0 {
		t.Fatalf("sipp exit %d: a credential check failed or no Expires: 0 came", code)
	}

	msgs := readSIPpLog(t, msgLog)
	var okAt, refreshAt time.Time
	for i, m := range msgs {
		if okAt.IsZero() && m.sent && strings.HasPrefix(m.first, "SIP/2.0 200") {
			okAt = m.at
			for _, n := range msgs[i+1:] {
				if !n.sent && strings.HasPrefix(n.first, "REGISTER") {
					refreshAt = n.at
					break
				}
			}
		}
	}
	if okAt.IsZero() || refreshAt.IsZero() {
		t.Fatalf("no 200 followed by a REGISTER in the SIPp log (%d messages)", len(msgs))
	}
	if d := refreshAt.Sub(okAt); d < 2*time.Second || d > 4*time.Second {
		t.Errorf("refresh %v after the 200, want 3 s ±1 s (75%% of 4 s)", d)
	} else {
		t.Logf("refresh came %v after the 200 granting 4 s", d.Round(time.Millisecond))
	}
}

// TestRegisterSIPpMinExpires: asking for 2 s gets 423 Min-Expires: 6; the
// retry asks for 6 (the scenario checks it), is challenged, and granted 6 s.
func TestRegisterSIPpMinExpires(t *testing.T) {
	interop(t)
	srv := startEndpoint(t)
	port := harness.FreeUDPPort(t)
	sipp := sippRegistrar(t, "uas_registrar_423.xml", port, filepath.Join(t.TempDir(), "messages.log"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := srv.Register(ctx, sip.Trunk{Name: "sipp", Host: "127.0.0.1", Port: port, Username: regUser, Password: regPass, Expires: 2 * time.Second})
	st := waitState(t, r, 5*time.Second, "registered", isState(sip.StateRegistered))
	if st.Expires != 6*time.Second {
		t.Errorf("granted %v, want the Min-Expires 6 s", st.Expires)
	}
	sippSettle()
	cancel() // before the refresh at 4.5 s: the scenario expects the un-REGISTER next
	<-r.Done()
	if code := <-sipp; code != 0 {
		t.Fatalf("sipp exit %d: Expires after 423 was not 6, a credential check failed, or no Expires: 0 came", code)
	}
}

// TestRegisterSIPpRegistrarReturns: the registrar grants 2 s and goes away;
// the refresh (at 1.5 s) gets no answer, so the registration is failing;
// SIPp is started again on the same port, and the next retry (backoff 2 s
// ±20%) registers again.
func TestRegisterSIPpRegistrarReturns(t *testing.T) {
	interop(t)
	srv := startEndpoint(t)
	port := harness.FreeUDPPort(t)
	dir := t.TempDir()
	first := sippRegistrar(t, "uas_registrar_once.xml", port, filepath.Join(dir, "first.log"), "-set", "granted", "2")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := srv.Register(ctx, sip.Trunk{Name: "sipp", Host: "127.0.0.1", Port: port, Username: regUser, Password: regPass})
	waitState(t, r, 5*time.Second, "registered", isState(sip.StateRegistered))
	if code := <-first; code != 0 {
		t.Fatalf("first sipp exit %d", code)
	}
	// Refresh at 1.5 s, unanswered for the 8 s an attempt may take.
	failing := waitState(t, r, 12*time.Second, "failing", isState(sip.StateFailing))
	if !strings.Contains(failing.LastError, "no answer") || failing.NextAttempt.Sub(failing.Since) > 2400*time.Millisecond {
		t.Errorf("failing state %+v: want a no-answer error and a retry within 2 s +20%%", failing)
	}
	second := sippRegistrar(t, "uas_registrar.xml", port, filepath.Join(dir, "second.log"), "-set", "granted", "4")
	back := waitState(t, r, 5*time.Second, "registered again", isState(sip.StateRegistered))
	if d := back.Since.Sub(failing.Since); d > 3*time.Second {
		t.Errorf("registered again %v after failing, want within the first backoff (2 s +20%%)", d)
	} else {
		t.Logf("failing at %s, registered again %v later", failing.Since.Format("15:04:05.000"), d.Round(time.Millisecond))
	}
	if back.LastError != "" || back.Expires != 4*time.Second {
		t.Errorf("state after recovery %+v", back)
	}
	sippSettle()
	cancel()
	<-r.Done()
	if code := <-second; code != 0 {
		t.Fatalf("second sipp exit %d: a credential check failed or no Expires: 0 came", code)
	}
}

// TestRegisterSIPpWrongPassword: SIPp's verifyauth refuses the answer (403):
// the registration is failing after one authenticated try, not retrying at once.
func TestRegisterSIPpWrongPassword(t *testing.T) {
	interop(t)
	srv := startEndpoint(t)
	port := harness.FreeUDPPort(t)
	msgLog := filepath.Join(t.TempDir(), "messages.log")
	sipp := sippRegistrar(t, "uas_registrar.xml", port, msgLog, "-set", "granted", "4")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := srv.Register(ctx, sip.Trunk{Name: "sipp", Host: "127.0.0.1", Port: port, Username: regUser, Password: "not-the-password"})
	st := waitState(t, r, 5*time.Second, "failing", isState(sip.StateFailing))
	if !strings.Contains(st.LastError, "403") || strings.Contains(st.LastError, "not-the-password") {
		t.Errorf("LastError %q", st.LastError)
	}
	if code := <-sipp; code == 0 {
		t.Fatal("sipp accepted a wrong password: verifyauth checks nothing")
	}
	cancel()
	<-r.Done()
	registers := 0
	for _, m := range readSIPpLog(t, msgLog) {
		if !m.sent && strings.HasPrefix(m.first, "REGISTER") {
			registers++
		}
	}
	if registers != 2 {
		t.Errorf("SIPp got %d REGISTERs, want 2 (challenged, then refused)", registers)
	}
}

// sippSettle gives a SIPp registrar time to loop back to its next <recv>
// after a 200: SIPp counts a REGISTER that arrives while the call still sits
// on the <nop> jumps after the send as unexpected, and cancelling at once
// sends the un-REGISTER within microseconds.
func sippSettle() { time.Sleep(300 * time.Millisecond) }
