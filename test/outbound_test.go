package test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/test/harness"
)

// offerPCMU is the SDP the gateway's outbound leg offers here: the sip
// package treats it as bytes, SIPp only answers it.
const offerPCMU = "v=0\r\no=switchboard 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"

// waitBound returns once something has bound UDP port on 127.0.0.1 (SIPp
// starting in the background), so the first INVITE is not sent to nobody.
// It fails at once when SIPp has already exited (a scenario error).
func waitBound(t *testing.T, port int, exited <-chan int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case c := <-exited:
			t.Fatalf("SIPp exited (%d) before listening", c)
		default:
		}
		c, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return // taken: SIPp is listening
		}
		_ = c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("SIPp did not bind 127.0.0.1:%d", port)
}

// TestOutboundSIPpProxyAuth: the gateway's outbound INVITE through a trunk
// is challenged by SIPp (sipp/uas_auth_407.xml) first with 407 as a proxy,
// then with 401 as the UAS; the last try carries both answers, SIPp checks
// the Proxy-Authorization's form and the Authorization's digest
// (verifyauth), answers 200 OK and gets our BYE. With a wrong password
// SIPp refuses the answer (403) and Dial reports that refusal.
func TestOutboundSIPpProxyAuth(t *testing.T) {
	interop(t)
	for _, tc := range []struct {
		name     string
		password string
		wantCode int // 0: answered
	}{
		{"right password", regPass, 0},
		{"wrong password", "not-the-password", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startEndpoint(t)
			port := harness.FreeUDPPort(t)
			code := make(chan int, 1)
			go func() {
				_, _, c := harness.RunSIPp(t, t.Context(),
					"-sf", harness.ScenarioPath(t, "uas_auth_407.xml"),
					"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-m", "1",
					"-timeout", "20s", "-timeout_error", "-trace_err", "-bind_local")
				code <- c
			}()
			waitBound(t, port, code)

			trunk := &sip.Trunk{Name: "sipp", Host: "127.0.0.1", Port: port, Username: regUser, Password: tc.password}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			call, err := srv.Dial(ctx, "+15550100", []byte(offerPCMU), sip.DialOptions{Trunk: trunk, CallerID: "+15550199"})
			if tc.wantCode != 0 {
				var refused *sip.ResponseError
				if !errors.As(err, &refused) || refused.Code != tc.wantCode {
					t.Fatalf("Dial: %v, want a %d refusal", err, tc.wantCode)
				}
				if strings.Contains(err.Error(), tc.password) {
					t.Errorf("the password is in the error: %v", err)
				}
				if c := <-code; c == 0 {
					t.Fatal("SIPp accepted a wrong password: verifyauth checks nothing")
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial through the 407: %v", err)
			}
			if !strings.Contains(string(call.Answer), "RTP/AVP 0") {
				t.Errorf("answer SDP:\n%s", call.Answer)
			}
			if err := call.Hangup(ctx, sip.CauseNormal.Reason()); err != nil {
				t.Fatalf("BYE: %v", err)
			}
			if c := <-code; c != 0 {
				t.Fatalf("sipp exit %d: the Proxy-Authorization did not verify, or no ACK/BYE came", c)
			}
		})
	}
}
