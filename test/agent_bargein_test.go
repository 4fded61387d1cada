package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/test/harness"
)

// TestWebSocketBotWiring: the websocket agent's configuration reaches the
// bot end to end: the token as Authorization: Bearer, the extra headers,
// and the INVITE's header named in sip_headers, read from the INVITE, in
// customParameters (headers not named stay out). A bot that queues more
// audio than the playout cap (5 min by default) gets one warning for the
// call, not one per message, and the count on the session's last line.
func TestWebSocketBotWiring(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const overCap = 310 // 1 s messages: the last ten do not fit in 5 min
	bot := newScriptBot(t, func(ctx context.Context, c *botConn) error {
		second := ulawTone(440, time.Second)
		for range overCap {
			if err := c.sendMedia(ctx, second); err != nil {
				return err
			}
		}
		// Messages are handled in order: once the mark sent after the
		// clear is back, every media message has been.
		if err := c.send(ctx, map[string]any{"event": "clear"}); err != nil {
			return err
		}
		if err := c.sendMark(ctx, "after"); err != nil {
			return err
		}
		if _, err := c.expectMark(ctx, "after", 10*time.Second); err != nil {
			return err
		}
		return c.send(ctx, map[string]any{"event": "hangup", "hangup": map[string]string{"reason": "wiring checked"}})
	})
	gw := harness.StartGateway(t, wsGatewayConfigWith(t, bot.URL,
		"    token: "+botToken+"\n    headers: {X-Tenant: acme}\n    sip_headers: [X-Customer-Id, X-Absent]\n", noRateLimit))
	c := harness.Dial(t, "127.0.0.1", gw.SIPAddr, "X-Customer-Id: cust-42", "X-Other: not-passed")
	bye, err := c.SIP.Await(t, 20*time.Second, false, func(m *harness.SIPMessage) bool { return m.Method == "BYE" })
	if err != nil {
		t.Fatalf("no BYE after the bot's hangup: %v", err)
	}
	c.SIP.Send(t, harness.Response(bye, 200, "OK"))

	bc := bot.next(t, 5*time.Second)
	if bc.scriptErr != nil {
		t.Errorf("bot script: %v", bc.scriptErr)
	}
	if got := bc.Header.Get("Authorization"); got != "Bearer "+botToken {
		t.Errorf("Authorization = %q, want Bearer and the configured token", got)
	}
	if got := bc.Header.Get("X-Tenant"); got != "acme" {
		t.Errorf("X-Tenant = %q, want acme", got)
	}
	cp := bc.Start.Start.CustomParameters
	if cp["X-Customer-Id"] != "cust-42" {
		t.Errorf("customParameters = %v, want X-Customer-Id: cust-42 from the INVITE", cp)
	}
	for _, k := range []string{"X-Other", "X-Absent"} {
		if _, ok := cp[k]; ok {
			t.Errorf("customParameters has %s: %v", k, cp)
		}
	}

	end := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call ended"))
	wantStr(t, end, "reason", "agent_hangup")
	warns := gw.Logs.Filter(harness.MsgIs("bot audio not queued"))
	if len(warns) != 1 {
		t.Errorf("%d \"bot audio not queued\" warnings, want 1 for the call", len(warns))
	}
	sess := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("bot session ended"))
	if n := sess.Int("audio_not_queued"); n < 5 || n > overCap-290 {
		t.Errorf("bot session ended with audio_not_queued=%d, want about the %d messages over the cap: %s", n, overCap-300, sess.Line())
	}
	if strings.Contains(gw.Logs.Text(), botToken) {
		t.Error("the gateway's log carries the bot's token")
	}
}

// callerAudio sends a raw call's RTP on a 20 ms clock from one goroutine:
// silence, or a 300 Hz tone while speaking is set, and RFC 4733 digits
// queued on dtmf.
type callerAudio struct {
	speaking atomic.Bool
	dtmf     chan byte
	stop     chan struct{}
	done     chan struct{}
}

func startCallerAudio(t *testing.T, c *harness.RawCall) *callerAudio {
	t.Helper()
	a := &callerAudio{dtmf: make(chan byte, 4), stop: make(chan struct{}), done: make(chan struct{})}
	silence := bytes.Repeat([]byte{0xFF}, media.FrameSamples)
	tone := ulawTone(300, time.Second)
	go func() {
		defer close(a.done)
		seq, ts, ssrc := uint16(7000), uint32(80000), uint32(0x5EED0003)
		send := func(pt uint8, marker bool, ts uint32, payload []byte) bool {
			pkt := make([]byte, 12+len(payload))
			pkt[0], pkt[1] = 0x80, pt
			if marker {
				pkt[1] |= 0x80
			}
			binary.BigEndian.PutUint16(pkt[2:], seq)
			binary.BigEndian.PutUint32(pkt[4:], ts)
			binary.BigEndian.PutUint32(pkt[8:], ssrc)
			copy(pkt[12:], payload)
			seq++
			_, err := c.RTP.WriteToUDP(pkt, c.Remote)
			return err == nil
		}
		tick := time.NewTicker(media.FrameDuration)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-a.stop:
				return
			case <-tick.C:
			}
			select {
			case code := <-a.dtmf:
				for i, d := range []uint16{160, 320, 480, 480, 480} {
					ev := []byte{code, 10, 0, 0}
					if i >= 2 {
						ev[1] |= 0x80
					}
					binary.BigEndian.PutUint16(ev[2:], d)
					if !send(101, i == 0, ts, ev) {
						return
					}
				}
				ts += 480
				continue
			default:
			}
			frame := silence
			if a.speaking.Load() {
				off := (n * media.FrameSamples) % (len(tone) - media.FrameSamples)
				frame = tone[off : off+media.FrameSamples]
			}
			if !send(0, false, ts, frame) {
				return
			}
			ts += media.FrameSamples
		}
	}()
	t.Cleanup(func() { close(a.stop); <-a.done })
	return a
}

// audible reports whether a packet from the gateway carries the bot's
// voice rather than the pacer's comfort silence.
func audible(p harness.RecvPacket) bool {
	if p.PT != 0 || len(p.Payload) == 0 {
		return false
	}
	pcm := make([]int16, len(p.Payload))
	media.Decode(media.PCMU, pcm, p.Payload)
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	return math.Sqrt(sum/float64(len(pcm))) > 300
}

// countAudible counts audible packets that arrived in [from, to).
func countAudible(ps []harness.RecvPacket, from, to time.Time) (n int) {
	for _, p := range ps {
		if !p.At.Before(from) && p.At.Before(to) && audible(p) {
			n++
		}
	}
	return n
}

// TestBuiltinPromptBotBargeIn: a raw SIP caller -> gateway ->
// `switchboard agent serve --mode prompt` -> back. The caller hears the
// prompt; a digit, and then the caller's speech, barge in: the bot sends
// clear, and on the wire (RTP leaving the gateway, kernel arrival times)
// at most one more frame of the prompt arrives after the clear was sent,
// then silence until the bot says the prompt again; the bot's marks come
// back in order; # makes the bot hang up, which ends the SIP call with a
// BYE from the gateway.
func TestBuiltinPromptBotBargeIn(t *testing.T) {
	skipShort(t)
	t.Parallel()
	bot := startBuiltinBot(t, "prompt")
	gw := harness.StartGateway(t, wsGatewayConfig(t, bot.URL, noRateLimit))
	base := gw.TakeBaseline(t)
	c := harness.Dial(t, "127.0.0.1", gw.SIPAddr)
	rec := harness.RecordRTP(t, c.RTP)
	caller := startCallerAudio(t, c)

	// heardSince waits for n audible frames that arrived after since.
	heardSince := func(since time.Time, n int, what string) {
		t.Helper()
		rec.WaitFor(t, 10*time.Second, what, func(ps []harness.RecvPacket) bool {
			return countAudible(ps, since, time.Now().Add(time.Hour)) >= n
		})
	}
	// clearAt waits for the bot's nth clear and returns when it sent it.
	clearAt := func(n int, cause string) time.Time {
		t.Helper()
		var e harness.Entry
		deadline := time.Now().Add(5 * time.Second)
		for {
			clears := bot.Logs.Filter(harness.MsgIs("prompt bot: clear sent"))
			if len(clears) >= n {
				e = clears[n-1]
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the bot sent %d clears, want %d (%s barge-in)", len(clears), n, cause)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if e.Str("cause") != cause {
			t.Errorf("clear %d: cause %q, want %q: %s", n, e.Str("cause"), cause, e.Line())
		}
		return time.UnixMicro(e.Int("sent_unix_us"))
	}
	// flushed checks what the caller heard around a clear sent at at: the
	// prompt up to it, at most one frame after it, then silence until the
	// bot speaks again (it waits for 600 ms of quiet).
	flushed := func(at time.Time, what string) {
		t.Helper()
		time.Sleep(450 * time.Millisecond)
		ps := rec.Packets()
		before := countAudible(ps, at.Add(-60*time.Millisecond), at)
		after := countAudible(ps, at, at.Add(400*time.Millisecond))
		var last harness.RecvPacket
		for _, p := range ps {
			if audible(p) && p.At.Before(at.Add(400*time.Millisecond)) {
				last = p
			}
		}
		t.Logf("%s: %d prompt frames in the 60 ms before the clear, %d after it; last one seq %d ts %d, %v after the clear",
			what, before, after, last.Seq, last.TS, last.At.Sub(at))
		if before < 2 {
			t.Errorf("%s: %d prompt frames in the 60 ms before the clear, want the prompt playing (3)", what, before)
		}
		if after > 1 {
			t.Errorf("%s: %d prompt frames arrived after the clear was sent, want at most 1 (one frame in flight)", what, after)
		}
	}

	// The prompt plays; well inside its first note (400 ms), a digit
	// barges in. It reaches the bot within a tick of the caller's clock.
	began := time.Now()
	heardSince(began, 8, "the first prompt")
	caller.dtmf <- 1
	at := clearAt(1, "dtmf")
	flushed(at, "digit barge-in")
	// After 600 ms of quiet the bot says its prompt again.
	heardSince(at.Add(400*time.Millisecond), 5, "the prompt again after the digit")

	// The caller speaks over it: the bot needs 60 ms of speech to be sure.
	caller.speaking.Store(true)
	at = clearAt(2, "speech")
	time.Sleep(200 * time.Millisecond)
	caller.speaking.Store(false)
	flushed(at, "speech barge-in")
	heardSince(at.Add(400*time.Millisecond), 15, "the prompt again after the speech")

	// # : the bot hangs up, the gateway sends BYE.
	caller.dtmf <- 11
	bye, err := c.SIP.Await(t, 5*time.Second, false, func(m *harness.SIPMessage) bool { return m.Method == "BYE" })
	if err != nil {
		t.Fatalf("no BYE after # (the bot's hangup): %v", err)
	}
	c.SIP.Send(t, harness.Response(bye, 200, "OK"))
	end := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call ended"))
	t.Logf("call ended: %s", end.Line())
	wantStr(t, end, "reason", "agent_hangup")
	wantStr(t, end, "hung_up_by", "agent")
	wantStr(t, end, "digits", "1#")
	bot.Logs.WaitFor(t, 5*time.Second, func(e harness.Entry) bool {
		return e.Msg() == "prompt bot: hangup sent" && e.Str("reason") == "caller pressed #"
	})

	// Marks: every prompt's mark came back (at the clears, for the first
	// two), in order.
	var played []string
	for _, e := range bot.Logs.Filter(harness.MsgIs("prompt bot: mark played")) {
		played = append(played, e.Str("name"))
	}
	if len(played) < 2 || played[0] != "prompt-1" || played[1] != "prompt-2" {
		t.Errorf("marks played: %v, want prompt-1, prompt-2, ... in order", played)
	}
	if e, ok := bot.Logs.Find(harness.MsgIs("prompt bot: mark out of order")); ok {
		t.Errorf("the bot saw a mark out of order: %s", e.Line())
	}
	if n := len(bot.Logs.Filter(harness.MsgIs("prompt bot: prompt sent"))); n < 3 {
		t.Errorf("the bot said its prompt %d times, want 3 (first, after each barge-in)", n)
	}
	atRest(t, gw, base)
}
