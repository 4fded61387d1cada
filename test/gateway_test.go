package test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/test/harness"
)

// TestGatewayReadyAndShutdown: the gateway starts from a config file, reports
// ready with its SIP address, listens on TCP as well as UDP, and exits cleanly
// on SIGTERM (no panic, no race, within the harness's shutdown timeout).
func TestGatewayReadyAndShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()

	sipPort := harness.FreePortPair(t)
	rtpMin, rtpMax := harness.FreeUDPPortRange(t, 20)
	gw := harness.StartGateway(t, harness.ConfigTemplate(sipPort, rtpMin, rtpMax, ""))

	want := net.JoinHostPort("127.0.0.1", strconv.Itoa(sipPort))
	if got := gw.Ready.Str("sip"); got != want {
		t.Errorf(`"gateway ready" sip = %q, want %q`, got, want)
	}
	c, err := net.DialTimeout("tcp", gw.SIPAddr, 2*time.Second)
	if err != nil {
		t.Errorf("SIP over TCP: %v", err)
	} else {
		_ = c.Close()
	}
	gw.Stop(t)
	if !gw.Exited() {
		t.Fatal("gateway still running after Stop")
	}
}

// TestVersionCommand: `switchboard version` prints the version stamped at
// build time (the harness stamps "e2e-test").
func TestVersionCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()
	bin := harness.BuildBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard version: %v\n%s", err, out)
	}
	if os.Getenv("SWITCHBOARD_E2E_BIN") != "" { // prebuilt: any version will do
		if strings.TrimSpace(string(out)) == "" {
			t.Error("switchboard version printed nothing")
		}
		return
	}
	if !strings.Contains(string(out), "e2e-test") {
		t.Errorf("switchboard version printed %q, want it to contain the stamped version %q", strings.TrimSpace(string(out)), "e2e-test")
	}
}
