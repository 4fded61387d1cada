package test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/test/harness"
)

// wsGatewayConfig is harness.ConfigTemplate with a websocket agent named
// "bot" at url as the default agent. extra is appended as top-level YAML.
func wsGatewayConfig(t *testing.T, url, extra string) string {
	t.Helper()
	return wsGatewayConfigWith(t, url, "", extra)
}

// wsGatewayConfigWith is wsGatewayConfig with more of the bot agent's keys
// (indented lines such as "    silence_timeout: 1s\n"); connect_timeout
// is 3s unless botYAML sets it.
func wsGatewayConfigWith(t *testing.T, url, botYAML, extra string) string {
	t.Helper()
	sipPort := harness.FreePortPair(t)
	rtpMin, rtpMax := harness.FreeUDPPortRange(t, 20)
	if !strings.Contains(botYAML, "connect_timeout:") {
		botYAML += "    connect_timeout: 3s\n"
	}
	agents := fmt.Sprintf(`agents:
  bot:
    type: websocket
    protocol: twilio
    url: %q
%sdefault_agent: bot
`, url, botYAML)
	return harness.ConfigTemplate(sipPort, rtpMin, rtpMax, agents+extra)
}

// callResult is what `switchboard call --json` printed.
type callResult struct {
	out    string
	events map[string]map[string]any // last event of each kind
}

func (r callResult) num(event, key string) float64 {
	v, _ := r.events[event][key].(float64)
	return v
}

func (r callResult) str(event, key string) string {
	v, _ := r.events[event][key].(string)
	return v
}

// runCall places one call with `switchboard call --json` to
// sip:+15550100002@gateway from +15550100001 and returns its events.
func runCall(t *testing.T, gw *harness.Gateway, args ...string) callResult {
	t.Helper()
	callMin, callMax := harness.FreeUDPPortRange(t, 4)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	full := append([]string{"call", "--json", "--from", "+15550100001",
		"--rtp-ports", fmt.Sprintf("%d-%d", callMin, callMax)}, args...)
	full = append(full, "sip:+15550100002@"+gw.SIPAddr)
	out, err := exec.CommandContext(ctx, harness.BuildBinary(t), full...).CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard call: %v\n%s", err, out)
	}
	r := callResult{out: string(out), events: map[string]map[string]any{}}
	sc := bufio.NewScanner(strings.NewReader(r.out))
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			r.events[fmt.Sprint(ev["event"])] = ev
		}
	}
	if _, ok := r.events["answered"]; !ok {
		t.Fatalf("call not answered:\n%s", out)
	}
	if _, ok := r.events["ended"]; !ok {
		t.Fatalf("no ended event:\n%s", out)
	}
	return r
}

// toneSeconds is how much of samples (8 kHz) carries hz, counted in 20 ms
// frames whose Goertzel power at hz is above a tenth of an amplitude-0.5
// tone's.
func toneSeconds(samples []int16, hz float64) float64 {
	frames := 0
	for i := 0; i+media.FrameSamples <= len(samples); i += media.FrameSamples {
		if media.Goertzel(samples[i:i+media.FrameSamples], hz) > 0.025 {
			frames++
		}
	}
	return float64(frames) * 0.02
}

// echoBotProc is a running `switchboard agent serve`.
type echoBotProc struct {
	URL  string // ws://127.0.0.1:PORT/media
	Logs *harness.LogTail
}

// startEchoBot starts the built-in echo bot on a free loopback port with
// JSON debug logs and waits until its /health answers. t.Cleanup stops it by
// its PID and fails the test if it panicked or raced.
func startEchoBot(t *testing.T) *echoBotProc {
	t.Helper()
	return startBuiltinBot(t, "echo")
}

// startBuiltinBot is startEchoBot for `agent serve --mode mode`, with more
// flags if given.
func startBuiltinBot(t *testing.T, mode string, flags ...string) *echoBotProc {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(harness.BuildBinary(t), append([]string{"agent", "serve", "--mode", mode,
		"--listen", "127.0.0.1:0", "--path", "/media", "--log-level", "debug", "--log-format", "json"}, flags...)...)
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1 exitcode=66", "GOTRACEBACK=all")
	bot := &echoBotProc{Logs: harness.NewLogTail()}
	if err := cmd.Start(); err != nil {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			_ = f.Close()
		}
		t.Fatal(err)
	}
	_ = outW.Close()
	_ = errW.Close()
	bot.Logs.Consume(outR, "stdout")
	bot.Logs.Consume(errR, "stderr")
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// Our own child, by its PID: SIGTERM, then SIGKILL.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("%s bot pid %d ignored SIGTERM", mode, cmd.Process.Pid)
		}
		bot.Logs.WaitClosed(5 * time.Second)
		_ = outR.Close()
		_ = errR.Close()
		if out := bot.Logs.Text(); strings.Contains(out, "DATA RACE") || strings.Contains(out, "panic:") {
			t.Errorf("%s bot pid %d crashed or raced:\n%s", mode, cmd.Process.Pid, out)
		} else if t.Failed() {
			t.Logf("%s bot output:\n%s", mode, out)
		}
	})

	banner := mode + " bot listening on "
	listening := bot.Logs.WaitFor(t, 15*time.Second, func(e harness.Entry) bool {
		return strings.HasPrefix(e.Str("raw"), banner)
	})
	bot.URL = strings.TrimSpace(strings.TrimPrefix(listening.Str("raw"), banner))
	addr := strings.TrimSuffix(strings.TrimPrefix(bot.URL, "ws://"), "/media")
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s bot /health at %s: %v\n%s", mode, addr, err, bot.Logs.Text())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return bot
}

// TestWebSocketAgentEchoRoundTrip: a call to a websocket agent served by
// `switchboard agent serve` hears its own tone back through the bot, with no
// packet lost, and the bot hears the caller's DTMF (it answers with a mark
// named dtmf-<digit>, which the gateway echoes once played). The bot's
// marks (one per half second of echo) come back in the order it sent them,
// and its clear (on *) answers the pending ones in order too.
func TestWebSocketAgentEchoRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()
	bot := startEchoBot(t)
	gw := harness.StartGateway(t, wsGatewayConfig(t, bot.URL, ""))

	recording := filepath.Join(t.TempDir(), "heard.wav")
	call := runCall(t, gw, "--tone", "1000", "--duration", "3s", "--record", recording, "--dtmf", "5@1s,*@2s")
	if call.str("answered", "codec") != "PCMU" {
		t.Errorf("answered with %q, want PCMU:\n%s", call.str("answered", "codec"), call.out)
	}
	if _, ok := call.events["dtmf_sent"]; !ok {
		t.Errorf("no dtmf_sent event:\n%s", call.out)
	}
	if r := call.str("ended", "reason"); r != "local_hangup" {
		t.Errorf("call ended by %q, want local_hangup (the caller's --duration):\n%s", r, call.out)
	}
	if lost := call.num("ended", "rtp_lost"); lost != 0 {
		t.Errorf("caller: rtp_lost = %v on loopback, want 0", lost)
	}
	if rx := call.num("ended", "rtp_received"); rx < 100 {
		t.Errorf("caller: rtp_received = %v, want about 150 for 3 s", rx)
	}

	heard, err := media.ReadWAVFile(recording)
	if err != nil {
		t.Fatal(err)
	}
	if len(heard) < 2*media.SampleRate {
		t.Fatalf("recording holds %d samples, want at least 2 s", len(heard))
	}
	mid := len(heard) / 2
	if f := media.DominantFrequency(heard[mid-4000:mid+4000], 300, 3400, 5); f < 990 || f > 1010 {
		t.Errorf("dominant frequency of the recording's middle second = %.0f Hz, want 1000 Hz", f)
	}
	s := toneSeconds(heard, 1000)
	t.Logf("recording: %.2f s, of which %.2f s of 1 kHz", float64(len(heard))/media.SampleRate, s)
	if s < 1.5 {
		t.Errorf("recording holds %.2f s of the 1 kHz echo, want at least 1.5 s", s)
	}

	end := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call ended"))
	t.Logf("call ended: %s", end.Line())
	wantStr(t, end, "reason", "remote_bye")
	wantStr(t, end, "agent", "bot")
	wantStr(t, end, "digits", "5*")
	if end.Int("rtp_packets_lost") != 0 || end.Int("agent_frames_in") < 100 || end.Int("agent_frames_out") < 75 {
		t.Errorf("gateway's call record: lost %d, agent frames in %d / out %d; want 0, >= 100, >= 75",
			end.Int("rtp_packets_lost"), end.Int("agent_frames_in"), end.Int("agent_frames_out"))
	}

	// The digit reached the bot: its mark dtmf-5 came back once played.
	bot.Logs.WaitFor(t, 5*time.Second, func(e harness.Entry) bool {
		return e.Msg() == "echo bot: mark played" && e.Str("name") == "dtmf-5"
	})
	bot.Logs.WaitFor(t, 5*time.Second, func(e harness.Entry) bool {
		return e.Msg() == "echo bot: mark played" && e.Str("name") == "dtmf-*"
	})
	bot.Logs.WaitFor(t, 5*time.Second, func(e harness.Entry) bool {
		return e.Msg() == "echo bot: clear sent" && e.Str("digit") == "*"
	})
	// Marks came back in the order the bot sent them: echo-1, echo-2, ...
	// with the digits' marks among them, none missing in between.
	var played []string
	for _, e := range bot.Logs.Filter(harness.MsgIs("echo bot: mark played")) {
		played = append(played, e.Str("name"))
	}
	t.Logf("marks played, in order: %v", played)
	next := 1
	for _, name := range played {
		if strings.HasPrefix(name, "echo-") {
			if name != fmt.Sprintf("echo-%d", next) {
				t.Errorf("mark %s came back where echo-%d was due: %v", name, next, played)
			}
			next++
		}
	}
	if next <= 4 {
		t.Errorf("%d echo marks came back, want one per half second of a 3 s call: %v", next-1, played)
	}
	if e, ok := bot.Logs.Find(harness.MsgIs("echo bot: mark out of order")); ok {
		t.Errorf("the bot saw a mark out of order: %s", e.Line())
	}
	start := bot.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("echo bot: start"))
	if start.Str("from") != "+15550100001" || start.Str("to") != "+15550100002" {
		t.Errorf("bot's start: from %q to %q, want +15550100001 to +15550100002", start.Str("from"), start.Str("to"))
	}
	// The caller hung up: the gateway sent stop and closed normally.
	bot.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("echo bot: stop"))
	if e, ok := bot.Logs.Find(harness.MsgIs("echo bot: connection ended")); ok {
		t.Errorf("the gateway did not close the bot's socket normally: %s", e.Line())
	}
}

var (
	callSidRE    = regexp.MustCompile(`^CA[0-9a-f]{32}$`)
	streamSidRE  = regexp.MustCompile(`^MZ[0-9a-f]{32}$`)
	accountSidRE = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
	digitsRE     = regexp.MustCompile(`^[0-9]+$`)
)

// TestWebSocketBotControl drives the gateway from a scripted bot: the
// `start` message, audio of odd sizes, a mark answered by `clear` (barge-in
// drops the queued audio), a mark after played audio, then `hangup`, which
// the gateway answers with `stop`, a normal close and a BYE to the caller.
func TestWebSocketBotControl(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()

	const (
		toneHz    = 600
		clearWait = 400 * time.Millisecond
		second    = 300 * time.Millisecond // the audio before m2
	)
	type timing struct{ clearToM1, m2AfterSend time.Duration }
	timings := make(chan timing, 1)

	script := func(ctx context.Context, c *botConn) error {
		// 5 s of tone, in media messages of odd sizes.
		tone := ulawTone(toneHz, 5*time.Second)
		sizes := []int{3000, 1337, 4099, 77, 2501, 160, 999}
		for i, off := 0, 0; off < len(tone); i++ {
			n := min(sizes[i%len(sizes)], len(tone)-off)
			if err := c.sendMedia(ctx, tone[off:off+n]); err != nil {
				return fmt.Errorf("sending tone: %w", err)
			}
			off += n
		}
		if err := c.sendMark(ctx, "m1"); err != nil {
			return err
		}
		// m1 waits behind 5 s of audio: nothing may come back before the clear.
		if ev, err := c.nextEvent(ctx, clearWait); err == nil {
			return fmt.Errorf("before clear: got %s, want nothing (m1 waits for 5 s of audio)", ev.Raw)
		}
		if err := c.send(ctx, map[string]any{"event": "clear", "streamSid": c.Start.StreamSid}); err != nil {
			return err
		}
		cleared := time.Now()
		m1, err := c.expectMark(ctx, "m1", 3*time.Second)
		if err != nil {
			return fmt.Errorf("after clear: %w", err)
		}
		var tm timing
		tm.clearToM1 = m1.At.Sub(cleared)

		if err := c.sendMedia(ctx, ulawTone(toneHz, second)); err != nil {
			return err
		}
		if err := c.sendMark(ctx, "m2"); err != nil {
			return err
		}
		sent := time.Now()
		m2, err := c.expectMark(ctx, "m2", 3*time.Second)
		if err != nil {
			return err
		}
		tm.m2AfterSend = m2.At.Sub(sent)
		timings <- tm
		// The caller's digit (sent 500 ms into the call) before hanging up.
		if err := c.waitDTMF(ctx, 1, 3*time.Second); err != nil {
			return err
		}

		if err := c.send(ctx, map[string]any{"event": "hangup", "hangup": map[string]string{"reason": "done"}}); err != nil {
			return err
		}
		// The docs: on hangup the gateway sends stop, then closes with 1000.
		stop, err := c.nextEvent(ctx, 3*time.Second)
		if err != nil {
			return fmt.Errorf("after hangup: %w", err)
		}
		st, _ := stop.Msg["stop"].(map[string]any)
		if stop.Event != "stop" || st["callSid"] != c.Start.Start.CallSid || st["accountSid"] != c.Start.Start.AccountSid ||
			stop.Msg["streamSid"] != c.Start.StreamSid {
			return fmt.Errorf("after hangup: got %s, want stop with the start's callSid, accountSid and streamSid", stop.Raw)
		}
		code, err := c.waitClosed(3 * time.Second)
		if code != websocket.StatusNormalClosure {
			return fmt.Errorf("after stop: connection ended with status %v (%v), want 1000", code, err)
		}
		if ev, ok := <-c.events; ok {
			return fmt.Errorf("after stop: got %s", ev.Raw)
		}
		return nil
	}
	bot := newScriptBot(t, func(ctx context.Context, c *botConn) error {
		err := script(ctx, c)
		if err != nil {
			// End the call now rather than at the caller's 15 s.
			_ = c.send(ctx, map[string]any{"event": "hangup", "hangup": map[string]string{"reason": "script failed"}})
		}
		return err
	})

	gw := harness.StartGateway(t, wsGatewayConfig(t, bot.URL, ""))
	recording := filepath.Join(t.TempDir(), "heard.wav")
	began := time.Now()
	call := runCall(t, gw, "--duration", "15s", "--record", recording, "--dtmf", "7@500ms")
	took := time.Since(began)
	c := bot.next(t, 5*time.Second)

	// The bot's side.
	if c.scriptErr != nil {
		t.Errorf("bot script: %v", c.scriptErr)
	}
	for _, p := range c.Problems() {
		t.Errorf("gateway -> bot: %s", p)
	}
	if c.Connected["event"] != "connected" || c.Connected["protocol"] != "Call" || c.Connected["version"] != "1.0.0" {
		t.Errorf("first message = %v, want connected, protocol Call, version 1.0.0", c.Connected)
	}
	st := c.Start
	if st.Event != "start" || st.SequenceNumber != "1" {
		t.Errorf("second message: event %q, sequenceNumber %#v; want start, \"1\"", st.Event, st.SequenceNumber)
	}
	if !callSidRE.MatchString(st.Start.CallSid) {
		t.Errorf("start.callSid = %q, want CA and 32 lowercase hex", st.Start.CallSid)
	}
	if !streamSidRE.MatchString(st.StreamSid) || st.Start.StreamSid != st.StreamSid {
		t.Errorf("streamSid = %q, start.streamSid = %q; want the same MZ and 32 lowercase hex", st.StreamSid, st.Start.StreamSid)
	}
	if !accountSidRE.MatchString(st.Start.AccountSid) {
		t.Errorf("start.accountSid = %q, want AC and 32 hex", st.Start.AccountSid)
	}
	if len(st.Start.Tracks) != 1 || st.Start.Tracks[0] != "inbound" {
		t.Errorf("start.tracks = %q, want [inbound]", st.Start.Tracks)
	}
	if mf := st.Start.MediaFormat; mf.Encoding != "audio/x-mulaw" || mf.SampleRate != 8000 || mf.Channels != 1 {
		t.Errorf("start.mediaFormat = %+v, want audio/x-mulaw 8000 1", mf)
	}
	cp := st.Start.CustomParameters
	if cp["from_number"] != "+15550100001" || cp["to_number"] != "+15550100002" {
		t.Errorf("customParameters = %v, want from_number +15550100001, to_number +15550100002", cp)
	}
	for _, k := range []string{"trunk", "call_id"} {
		if _, ok := cp[k]; !ok {
			t.Errorf("customParameters = %v: no %q (the docs say it is always there)", cp, k)
		}
	}
	// callSid is the hex MD5 of the SIP Call-ID, which the caller saw too.
	callID := call.str("answered", "call_id")
	if cp["call_id"] != callID {
		t.Errorf("customParameters.call_id = %q, the caller's Call-ID is %q", cp["call_id"], callID)
	}
	if sum := md5.Sum([]byte(callID)); st.Start.CallSid != "CA"+hex.EncodeToString(sum[:]) {
		t.Errorf("callSid %q is not CA + md5(%q)", st.Start.CallSid, callID)
	}
	// The caller's digit, as the docs show it.
	if d := c.DTMF(); len(d) != 1 {
		t.Errorf("the bot got %d dtmf messages, want 1 (digit 7): %v", len(d), d)
	} else {
		info, _ := d[0]["dtmf"].(map[string]any)
		dur, durOK := info["duration"].(string)
		if info["digit"] != "7" || info["track"] != "inbound_track" || d[0]["streamSid"] != st.StreamSid ||
			(info["duration"] != nil && (!durOK || !digitsRE.MatchString(dur))) {
			t.Errorf("dtmf message = %v, want digit \"7\", track inbound_track, the streamSid, duration a string of ms", d[0])
		}
	}
	if n := c.MediaCount(); n < 25 {
		t.Errorf("the bot got %d media messages of caller audio, want one per 20 ms of the call", n)
	}
	select {
	case tm := <-timings:
		t.Logf("clear -> m1: %v; m2 after its audio was sent: %v", tm.clearToM1, tm.m2AfterSend)
		if tm.clearToM1 > time.Second {
			t.Errorf("m1 came %v after clear, want at once (clear answers pending marks)", tm.clearToM1)
		}
		if tm.m2AfterSend < second-60*time.Millisecond || tm.m2AfterSend > second+time.Second {
			t.Errorf("m2 came %v after its %v of audio was sent, want once that audio had played", tm.m2AfterSend, second)
		}
	default:
	}

	// The caller's side: BYE from the gateway, well before --duration.
	if r := call.str("ended", "reason"); r != "remote_hangup" {
		t.Errorf("call ended by %q, want remote_hangup (the bot's hangup):\n%s", r, call.out)
	}
	if took > 8*time.Second {
		t.Errorf("the call took %v, want the bot's hangup to end it after a few seconds", took)
	}
	heard, err := media.ReadWAVFile(recording)
	if err != nil {
		t.Fatal(err)
	}
	// About clearWait of the first tone plus `second`; without the clear the
	// caller would hear 5 s.
	s := toneSeconds(heard, toneHz)
	t.Logf("recording: %.2f s, of which %.2f s of %d Hz", float64(len(heard))/media.SampleRate, s, toneHz)
	if s >= 1.5 || s < 0.4 {
		t.Errorf("recording (%.2f s) holds %.2f s of %d Hz, want about %.1f s (clear drops the queued audio)",
			float64(len(heard))/media.SampleRate, s, toneHz, (clearWait + second).Seconds())
	}

	// The gateway's side.
	gw.Logs.WaitFor(t, 5*time.Second, func(e harness.Entry) bool {
		return e.Msg() == "bot hung up" && e.Str("reason") == "done"
	})
	end := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call ended"))
	t.Logf("call ended: %s", end.Line())
	wantStr(t, end, "reason", "agent_hangup")
	wantStr(t, end, "hung_up_by", "agent")
	wantStr(t, end, "agent", "bot")
	if a := end.Str("actions"); !strings.Contains(a, "agent bot") || !strings.Contains(a, "hangup agent_hangup") {
		t.Errorf("actions = %q, want agent bot then hangup agent_hangup", a)
	}
}

// fallbackPlan hands the call to the bot and, when the bot fails, apologises
// and hangs up.
const fallbackPlan = `prompts: .
rules:
  - name: main
    default: true
    actions:
      - agent: {name: bot, on_failure: [{play: sorry.wav}, hangup]}
`

const sorryHz = 900

// fallbackGateway is a gateway started by startFallbackGateway.
type fallbackGateway struct {
	*harness.Gateway
	CDRFile string // the JSONL file its CDRs go to
}

// fallbackConfig is the configuration startFallbackGateway runs: the bot at
// url (with botYAML, see wsGatewayConfigWith), fallbackPlan with a 1 s
// sorry.wav of sorryHz, CDRs to a file and extra top-level YAML.
func fallbackConfig(t *testing.T, url, botYAML, extra string) (cfg, cdrFile string) {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "sorry.wav"))
	if err != nil {
		t.Fatal(err)
	}
	if err := media.WriteWAV(f, media.Tone(sorryHz, time.Second, 0.5), media.SampleRate); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(dir, "dialplan.yaml")
	if err := os.WriteFile(plan, []byte(fallbackPlan), 0o600); err != nil {
		t.Fatal(err)
	}
	cdrFile = filepath.Join(dir, "cdr.jsonl")
	extra = strings.TrimSpace("dialplan: " + plan + "\ncdr:\n  file: " + cdrFile + "\n" + extra)
	return wsGatewayConfigWith(t, url, botYAML, extra), cdrFile
}

// startFallbackGateway starts a gateway with fallbackConfig.
func startFallbackGateway(t *testing.T, url, botYAML string) fallbackGateway {
	t.Helper()
	cfg, cdr := fallbackConfig(t, url, botYAML, "")
	return fallbackGateway{Gateway: harness.StartGateway(t, cfg), CDRFile: cdr}
}

// lastCDR waits for the CDR file to hold a record and returns the last one.
func lastCDR(t *testing.T, path string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(path)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if err == nil && lines[len(lines)-1] != "" {
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
				t.Fatalf("CDR file %s: %v", path, err)
			}
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CDR in %s within 5 s (%v)", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantFallback checks a call that the bot failed: the caller was answered,
// heard the sorry prompt and got a BYE; the gateway logged the failure once
// as a warning with its cause, and the cause is on the call-ended line and
// in the CDR.
func wantFallback(t *testing.T, gw fallbackGateway, call callResult, recording, cause string) {
	t.Helper()
	if r := call.str("ended", "reason"); r != "remote_hangup" {
		t.Errorf("call ended by %q, want remote_hangup (the gateway's BYE after the prompt):\n%s", r, call.out)
	}
	heard, err := media.ReadWAVFile(recording)
	if err != nil {
		t.Fatal(err)
	}
	s := toneSeconds(heard, sorryHz)
	t.Logf("recording: %.2f s, of which %.2f s of %d Hz", float64(len(heard))/media.SampleRate, s, sorryHz)
	if s < 0.8 {
		t.Errorf("recording (%.2f s) holds %.2f s of the %d Hz sorry prompt, want about 1 s",
			float64(len(heard))/media.SampleRate, s, sorryHz)
	}
	end := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call ended"))
	t.Logf("call ended: %s", end.Line())
	a := end.Str("actions")
	if !strings.Contains(a, "agent bot failed") || !strings.Contains(a, "play sorry.wav") ||
		strings.Index(a, "agent bot failed") > strings.Index(a, "play sorry.wav") {
		t.Errorf("actions = %q, want agent bot failed, then play sorry.wav", a)
	}
	wantStr(t, end, "rule", "main")
	wantStr(t, end, "reason", "local_bye")
	wantStr(t, end, "hung_up_by", "gateway")
	wantStr(t, end, "agent_error", cause)
	if end.Str("agent_error_detail") == "" {
		t.Errorf("call ended line has no agent_error_detail: %s", end.Line())
	}
	warns := gw.Logs.Filter(harness.MsgIs("agent failed"))
	if len(warns) != 1 {
		t.Errorf("%d \"agent failed\" lines, want 1: %v", len(warns), warns)
	} else if w := warns[0]; w.Str("level") != "WARN" || w.Str("agent") != "bot" || w.Str("cause") != cause || w.Str("detail") == "" {
		t.Errorf("agent failed line: %s; want WARN, agent bot, cause %s, a detail", w.Line(), cause)
	}
	cdr := lastCDR(t, gw.CDRFile)
	if cdr["agent_error"] != cause || cdr["agent_error_detail"] == "" || cdr["end_reason"] != "local_bye" {
		t.Errorf("CDR agent_error %v, detail %v, end_reason %v; want %s, a detail, local_bye",
			cdr["agent_error"], cdr["agent_error_detail"], cdr["end_reason"], cause)
	}
}

// refusingBot answers every WebSocket upgrade with 403 and reports the
// Authorization header it was sent.
func refusingBot(t *testing.T) (url string, auth <-chan string) {
	t.Helper()
	ch := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- r.Header.Get("Authorization")
		http.Error(w, "who are you?", http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/media", ch
}

// mute accepts TCP connections on loopback and never answers: a bot whose
// process hangs before the WebSocket handshake.
func mute(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

const botToken = "e2e-secret-token-6f1c"

// TestWebSocketBotDownFallsBack: a bot that cannot be reached, is slow to
// answer the handshake, refuses it (403), or whose connection drops mid-call
// is an agent failure: the plan's on_failure plays a prompt and hangs up.
// The failure is logged with its cause, which reaches the CDR; the token
// reaches the bot but no log or CDR; the gateway is back at rest after each
// call (goroutines, fds, no call listed).
func TestWebSocketBotDownFallsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()

	type setup struct {
		url, botYAML string
		check        func(t *testing.T) // after the call
	}
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T) setup
		cause   string
		maxTook time.Duration
	}{
		{"unreachable", func(t *testing.T) setup {
			// A TCP port that was ours a moment ago: connecting is refused.
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			url := fmt.Sprintf("ws://%s/media", ln.Addr())
			_ = ln.Close()
			return setup{url: url}
		}, "unreachable", 6 * time.Second},
		{"slow-handshake", func(t *testing.T) setup {
			return setup{url: "ws://" + mute(t) + "/media", botYAML: "    connect_timeout: 1s\n"}
		}, "connect_timeout", 6 * time.Second},
		{"refused-403", func(t *testing.T) setup {
			url, auth := refusingBot(t)
			return setup{url: url + "?token=" + botToken, botYAML: "    token: " + botToken + "\n", check: func(t *testing.T) {
				select {
				case got := <-auth:
					if got != "Bearer "+botToken {
						t.Errorf("the bot got Authorization %q, want the configured token", got)
					}
				default:
					t.Error("the refusing bot was never asked")
				}
			}}
		}, "handshake_refused", 6 * time.Second},
		{"reset-after-start", func(t *testing.T) setup {
			return setup{url: droppingBot(t, (*botConn).dropTCP)} // RST: a crashed bot
		}, "dropped", 7 * time.Second},
		{"closed-without-close-frame", func(t *testing.T) setup {
			return setup{url: droppingBot(t, func(c *botConn) error { return c.ws.CloseNow() })} // FIN, no close frame
		}, "dropped", 7 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := tc.setup(t)
			gw := startFallbackGateway(t, st.url, st.botYAML)
			base := gw.TakeBaseline(t)
			recording := filepath.Join(t.TempDir(), "heard.wav")
			began := time.Now()
			call := runCall(t, gw.Gateway, "--duration", "10s", "--record", recording)
			if took := time.Since(began); took > tc.maxTook {
				t.Errorf("the call took %v, want the failure, the 1 s prompt and a hang-up within %v", took, tc.maxTook)
			}
			wantFallback(t, gw, call, recording, tc.cause)
			if st.check != nil {
				st.check(t)
			}
			if strings.Contains(gw.Logs.Text(), botToken) {
				t.Errorf("the gateway's log carries the bot's token")
			}
			if data, _ := os.ReadFile(gw.CDRFile); strings.Contains(string(data), botToken) {
				t.Errorf("the CDR carries the bot's token")
			}
			atRest(t, gw.Gateway, base)
		})
	}
}

// droppingBot is a bot that ends its connection with drop mid-call: after
// start and half a second of caller audio.
func droppingBot(t *testing.T, drop func(c *botConn) error) string {
	t.Helper()
	bot := newScriptBot(t, func(ctx context.Context, c *botConn) error {
		if err := c.waitMedia(ctx, 25, 5*time.Second); err != nil {
			return err
		}
		return drop(c)
	})
	t.Cleanup(func() {
		select {
		case c := <-bot.conns:
			if c.scriptErr != nil && !errors.Is(c.scriptErr, net.ErrClosed) {
				t.Errorf("bot script: %v", c.scriptErr)
			}
			for _, p := range c.Problems() {
				t.Errorf("gateway -> bot: %s", p)
			}
		case <-time.After(5 * time.Second):
			t.Error("the bot's script never ended")
		}
	})
	return bot.URL
}
