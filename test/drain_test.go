package test

// Graceful drain, beyond TestDrainOnSIGTERM (fleet_test.go): the 503's
// Retry-After, the drain timeout ending a call with BYE, a second signal
// stopping at once, and trunk registrations withdrawn while calls go on.
// The calls are raw UACs (harness.Dial), so the test sees every header.

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/test/harness"
)

// isBye matches the gateway's BYE.
func isBye(m *harness.SIPMessage) bool { return m.Method == "BYE" }

// drainSignal sends SIGTERM to the gateway and waits for its drain line.
func drainSignal(t *testing.T, gw *harness.Gateway) time.Time {
	t.Helper()
	if err := syscall.Kill(gw.PID, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM gateway (pid %d): %v", gw.PID, err)
	}
	at := time.Now()
	gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("draining: refusing new calls"))
	return at
}

// wantShutdownBye waits for the gateway's BYE on call, answers it, and
// checks its Reason (Q.850 41, shutting down). It returns when it came.
func wantShutdownBye(t *testing.T, call *harness.RawCall, within time.Duration) time.Time {
	t.Helper()
	bye, err := call.SIP.Await(t, within, false, isBye)
	if err != nil {
		t.Fatalf("no BYE from the gateway within %v: %v", within, err)
	}
	at := time.Now()
	call.SIP.Send(t, harness.Response(bye, 200, "OK"))
	if r := bye.Header("Reason"); !strings.Contains(r, "Q.850") || !strings.Contains(r, "cause=41") || !strings.Contains(r, "shutting down") {
		t.Errorf("BYE Reason = %q, want Q.850 cause 41, shutting down", r)
	}
	return at
}

// wantExitZero waits for the gateway to exit by itself with status 0.
func wantExitZero(t *testing.T, gw *harness.Gateway, within time.Duration) {
	t.Helper()
	code, ok := gw.WaitExit(within)
	switch {
	case !ok:
		t.Fatalf("gateway still running %v later:\n%s", within, gw.Logs.Text())
	case code != 0:
		t.Errorf("gateway exit status %d, want 0:\n%s", code, gw.Logs.Text())
	}
}

// TestDrainTimeoutEndsCallsWithBYE: during the drain a new INVITE gets 503
// with a Retry-After; the call in progress outlives the SIGTERM until the
// drain timeout, then gets a BYE saying the gateway shuts down, its record
// says shutdown, and the gateway exits 0.
func TestDrainTimeoutEndsCallsWithBYE(t *testing.T) {
	fleetSkipShort(t)
	t.Parallel()
	const drainTimeout = 2 * time.Second
	gw := startFleetGateway(t, fmt.Sprintf("drain:\n  timeout: %s\n", drainTimeout))
	call := harness.Dial(t, "127.0.0.1", gw.SIPAddr)
	sigAt := drainSignal(t, gw)

	refused, res := harness.Invite(t, "127.0.0.1", gw.SIPAddr)
	refused.Refused(t, res)
	if res.Code != 503 {
		t.Fatalf("INVITE while draining answered %q, want 503", res.StartLine)
	}
	if s, err := strconv.Atoi(strings.TrimSpace(res.Header("Retry-After"))); err != nil || s <= 0 {
		t.Errorf("503 while draining has Retry-After %q, want a number of seconds", res.Header("Retry-After"))
	}

	byeAt := wantShutdownBye(t, call, drainTimeout+8*time.Second)
	if d := byeAt.Sub(sigAt); d < drainTimeout-100*time.Millisecond {
		t.Errorf("BYE %v after SIGTERM, before the drain timeout %v", d, drainTimeout)
	} else {
		t.Logf("BYE %v after SIGTERM (drain timeout %v)", d.Round(time.Millisecond), drainTimeout)
	}
	wantExitZero(t, gw, 10*time.Second)
	gw.Logs.WaitFor(t, time.Second, harness.MsgIs("drain timeout: ending calls in progress"))
	ended := gw.Logs.WaitFor(t, time.Second, func(e harness.Entry) bool {
		return e.Msg() == "call ended" && e.Str("call_id") == call.D.CallID
	})
	if ended.Str("reason") != "shutdown" || ended.Str("hung_up_by") != "system" {
		t.Errorf("call ended line = %s, want reason shutdown by system", ended.Line())
	}
}

// TestDrainSecondSignalStopsAtOnce: a second SIGTERM during a long drain
// ends the call in progress at once and the gateway exits 0.
func TestDrainSecondSignalStopsAtOnce(t *testing.T) {
	fleetSkipShort(t)
	t.Parallel()
	gw := startFleetGateway(t, "drain:\n  timeout: 60s\n")
	call := harness.Dial(t, "127.0.0.1", gw.SIPAddr)
	drainSignal(t, gw)
	// The call in progress is not disturbed by the first signal.
	if m, err := call.SIP.Await(t, 500*time.Millisecond, true, isBye); err == nil {
		t.Fatalf("BYE after the first signal: %s", m.StartLine)
	}
	if err := syscall.Kill(gw.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	second := time.Now()
	byeAt := wantShutdownBye(t, call, 5*time.Second)
	t.Logf("BYE %v after the second signal", byeAt.Sub(second).Round(time.Millisecond))
	wantExitZero(t, gw, 5*time.Second)
	gw.Logs.WaitFor(t, time.Second, harness.MsgIs("second signal: stopping now"))
	ended := gw.Logs.WaitFor(t, time.Second, harness.MsgIs("call ended"))
	if ended.Str("reason") != "shutdown" {
		t.Errorf("call ended line = %s, want reason shutdown", ended.Line())
	}
}

// TestDrainWithdrawsRegistration: a trunk registered with SIPp as the
// registrar is un-registered (Expires: 0, which the scenario needs to exit
// 0) as soon as the drain starts, while the call in progress goes on; the
// call's own hang-up then lets the gateway exit 0.
func TestDrainWithdrawsRegistration(t *testing.T) {
	fleetSkipShort(t)
	harness.SIPpPath(t)
	t.Parallel()
	regPort := harness.FreeUDPPort(t)
	sipp := sippRegistrar(t, "uas_registrar.xml", regPort, filepath.Join(t.TempDir(), "messages.log"), "-set", "granted", "4")
	gw := startFleetGateway(t, fmt.Sprintf(`trunks:
  - name: reg
    host: 127.0.0.1
    port: %d
    transport: udp
    username: %s
    password: %s
    register: true
access:
  allow: [127.0.0.0/8]
drain:
  timeout: 20s
  unregister: true
`, regPort, regUser, regPass))
	deadline := time.Now().Add(5 * time.Second)
	for gw.Metrics(t)[`switchboard_trunk_registered{trunk="reg"}`] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("trunk not registered within 5 s:\n%s", gw.Logs.Text())
		}
		time.Sleep(50 * time.Millisecond)
	}
	sippSettle()
	call := harness.Dial(t, "127.0.0.2", gw.SIPAddr)
	sigAt := drainSignal(t, gw)

	select {
	case code := <-sipp:
		if code != 0 {
			t.Fatalf("sipp registrar exit %d: no un-REGISTER (Expires: 0) came, or a credential check failed", code)
		}
		t.Logf("registration withdrawn %v after SIGTERM", time.Since(sigAt).Round(time.Millisecond))
	case <-time.After(8 * time.Second):
		t.Fatal("the registration was not withdrawn within 8 s of SIGTERM")
	}
	// Withdrawn while the call is still up: no BYE so far, and its own
	// hang-up ends the drain.
	if m, err := call.SIP.Await(t, 200*time.Millisecond, true, isBye); err == nil {
		t.Fatalf("the call was ended during the drain: %s", m.StartLine)
	}
	call.Hangup(t)
	wantExitZero(t, gw, 10*time.Second)
	gw.Logs.WaitFor(t, time.Second, harness.MsgIs("drain complete"))
	if _, ok := gw.Logs.Find(harness.MsgIs("drain timeout: ending calls in progress")); ok {
		t.Error("the drain timed out; the call's hang-up should have ended it")
	}
}
