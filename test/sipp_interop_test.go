package test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/test/harness"
)

// What /usr/share/sip-tester/g711a.pcap carries (measured with capinfos and
// tshark): 236 RTP packets, PT 8 (PCMA), 240 samples = 30 ms each, contiguous
// sequence numbers and timestamps, 7.05 s from first to last packet.
const (
	pcapPackets  = 236
	pcapPacketMs = 30
	frameMs      = 20                                   // the gateway's pipeline frame
	pcapFrames   = pcapPackets * pcapPacketMs / frameMs // 354 frames of 20 ms
)

// TestSIPpInboundCallPCMA: SIPp calls the gateway offering PCMA (+ RFC 4733
// telephone-event at PT 101, ptime 30), plays 7 s of A-law audio after ACK,
// then hangs up. The scenario itself checks that the 200 OK answers PCMA and
// keeps telephone-event at PT 101; the gateway's "call ended" line must show
// the whole recording reached the agent.
func TestSIPpInboundCallPCMA(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	harness.SIPpPath(t)
	harness.RequirePcapPlay(t, harness.PcapG711A)
	t.Parallel()

	sipPort := harness.FreePortPair(t)
	rtpMin, rtpMax := harness.FreeUDPPortRange(t, 20)
	gw := harness.StartGateway(t, harness.ConfigTemplate(sipPort, rtpMin, rtpMax, ""))

	// SIPp binds its SIP port and, for media, -mp (audio) and -mp+2 (video);
	// pcap audio is sent from -mp, so the gateway's latching answers there.
	sippPort := harness.FreeUDPPort(t)
	mediaPort, _ := harness.FreeUDPPortRange(t, 4)
	const callID = "switchboard-e2e-pcma-1@127.0.0.1" // from -cid_str below

	stdout, _, code := harness.RunSIPp(t, t.Context(),
		gw.SIPAddr,
		"-sf", harness.ScenarioPath(t, "uac_pcma_pcap.xml"),
		"-s", "echo",
		"-m", "1", "-l", "1",
		"-i", "127.0.0.1", "-p", strconv.Itoa(sippPort),
		"-mp", strconv.Itoa(mediaPort),
		"-cid_str", "switchboard-e2e-pcma-%u@%s",
		"-timeout", "30s", "-timeout_error",
		"-trace_err", "-bind_local",
	)
	if code != 0 {
		t.Fatalf("sipp exit code %d, want 0 (call answered with PCMA, BYE answered 200)\n%s", code, lastLines(stdout, 40))
	}

	ended := gw.Logs.WaitFor(t, 10*time.Second, harness.MsgIs("call ended"))
	t.Logf("call ended: %s", ended.Line())

	if got := ended.Str("call_id"); got != callID {
		t.Errorf("call_id = %q, want the SIP Call-ID %q", got, callID)
	}
	wantStr(t, ended, "reason", "remote_bye")
	wantStr(t, ended, "codec", "PCMA")
	wantInt(t, ended, "ptime_ms", pcapPacketMs, pcapPacketMs)
	wantInt(t, ended, "rtp_packets_lost", 0, 0)
	// Every packet of the pcap arrives over loopback and becomes 1.5 frames.
	wantInt(t, ended, "rtp_packets_received", pcapPackets*95/100, pcapPackets)
	wantInt(t, ended, "agent_frames_in", pcapFrames*95/100, pcapFrames)
	// The echo agent sends the audio back: most of it is out before BYE.
	wantInt(t, ended, "agent_frames_out", 100, 1<<31)
	wantInt(t, ended, "rtp_packets_sent", 100, 1<<31)
	// ACK -> 8 s pause -> BYE.
	wantInt(t, ended, "duration_ms", 7000, 20000)
	wantInt(t, ended, "active_calls_after", 0, 0)

	if n := len(gw.Logs.Filter(harness.MsgIs("call ended"))); n != 1 {
		t.Errorf("%d \"call ended\" lines, want 1", n)
	}
}

func wantStr(t *testing.T, e harness.Entry, key, want string) {
	t.Helper()
	if !e.Has(key) {
		t.Errorf("%q missing from %q line", key, e.Msg())
		return
	}
	if got := e.Str(key); got != want {
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}

func wantInt(t *testing.T, e harness.Entry, key string, lo, hi int64) {
	t.Helper()
	if !e.Has(key) {
		t.Errorf("%q missing from %q line", key, e.Msg())
		return
	}
	got := e.Int(key)
	if got < lo || got > hi {
		want := fmt.Sprintf("in [%d, %d]", lo, hi)
		if lo == hi {
			want = strconv.FormatInt(lo, 10)
		} else if hi == 1<<31 {
			want = fmt.Sprintf(">= %d", lo)
		}
		t.Errorf("%s = %v, want %s", key, e.Str(key), want)
	}
}

func lastLines(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}

// TestSIPpLateOfferAndHold: SIPp sends an INVITE without SDP (the gateway
// offers in its 200 OK, SIPp answers in the ACK), then holds the call three
// ways (sendonly, inactive, c=0.0.0.0) and resumes it. The scenario checks
// each answer's direction; the gateway must log each re-INVITE and end the
// call on SIPp's BYE. Between resume and BYE, SIPp sends DTMF by SIP INFO.
func TestSIPpLateOfferAndHold(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	harness.SIPpPath(t)
	t.Parallel()

	sipPort := harness.FreePortPair(t)
	rtpMin, rtpMax := harness.FreeUDPPortRange(t, 20)
	gw := harness.StartGateway(t, harness.ConfigTemplate(sipPort, rtpMin, rtpMax, ""))
	sippPort := harness.FreeUDPPort(t)
	mediaPort, _ := harness.FreeUDPPortRange(t, 4)

	stdout, _, code := harness.RunSIPp(t, t.Context(),
		gw.SIPAddr,
		"-sf", harness.ScenarioPath(t, "uac_late_offer_hold.xml"),
		"-s", "echo", "-m", "1", "-l", "1",
		"-i", "127.0.0.1", "-p", strconv.Itoa(sippPort), "-mp", strconv.Itoa(mediaPort),
		"-timeout", "30s", "-timeout_error", "-trace_err", "-bind_local",
	)
	if code != 0 {
		t.Fatalf("sipp exit code %d: an answer had the wrong SDP or a request failed\n%s", code, lastLines(stdout, 40))
	}
	ended := gw.Logs.WaitFor(t, 10*time.Second, harness.MsgIs("call ended"))
	wantStr(t, ended, "reason", "remote_bye")
	wantStr(t, ended, "codec", "PCMU")
	reinvites := gw.Logs.Filter(harness.MsgIs("re-INVITE"))
	if len(reinvites) != 4 {
		t.Fatalf("%d re-INVITEs logged, want 4", len(reinvites))
	}
	for i, wantHold := range []string{"true", "true", "true", "false"} {
		if got := fmt.Sprint(reinvites[i]["hold"]); got != wantHold {
			t.Errorf("re-INVITE %d hold = %s, want %s", i+1, got, wantHold)
		}
	}
	if _, ok := gw.Logs.Find(func(e harness.Entry) bool { return e.Msg() == "dtmf" && e.Str("digit") == "7" }); !ok {
		t.Error("the agent never heard the INFO digit 7")
	}
}
