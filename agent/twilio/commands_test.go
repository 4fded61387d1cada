package twilio

import (
	"encoding/base64"
	"testing"

	"github.com/switchboard-voice/switchboard/agent"
)

func TestBotCommands(t *testing.T) {
	checkGoroutines(t)
	srv := newBotServer(t)
	c := startSession(t, srv, Config{})
	c.call.mu.Lock()
	c.call.onMark = c.s.OnMark // the leg answers marks at once
	c.call.mu.Unlock()
	sid := c.s.streamSid
	payload := []byte{0xff, 0x7f, 0x00, 0x80, 0x01}
	c.bot.send(map[string]any{"event": "media", "streamSid": sid, "media": map[string]any{"payload": base64.StdEncoding.EncodeToString(payload)}})
	c.call.expect(t, "play:5")
	c.bot.send(`{"event":"mark","streamSid":"` + sid + `","mark":{"name":"greeting"}}`)
	c.call.expect(t, "mark:greeting")
	m, _ := c.bot.next("mark")
	if m.Mark == nil || m.Mark.Name != "greeting" {
		t.Errorf("mark echo = %+v", m.Mark)
	}
	c.bot.send(`{"event":"clear","streamSid":"` + sid + `"}`)
	c.call.expect(t, "clear")
	c.bot.send(`{"event":"sendDigits","sendDigits":{"digits":"12#a"}}`)
	c.call.expect(t, "digits:12#A")
	c.bot.send(`{"event":"sendDigits","sendDigits":{"digits":"1x"}}`) // malformed: skipped
	c.bot.send(`{"event":"somethingNew","x":1}`)                      // unknown: ignored
	c.bot.send(`not json`)
	c.bot.send(`{"event":"bridge"}`)
	c.call.expect(t, "complete:true")
	c.bot.send(`{"event":"cancel"}`)
	c.call.expect(t, "complete:false")
	c.bot.send(`{"event":"transfer","transfer":{"mode":"warm","target":"+15550100003","headers":{"X-Reason":"sales"},"context":"wants a refund"}}`)
	c.call.expect(t, "transfer:warm:+15550100003")
	c.call.mu.Lock()
	got := c.call.transfers[0]
	c.call.transferErr = agent.ErrTransferUnavailable
	c.call.mu.Unlock()
	if got.Headers["X-Reason"] != "sales" || got.Context != "wants a refund" {
		t.Errorf("transfer = %+v", got)
	}
	c.bot.send(`{"event":"transfer","transfer":{"target":"sip:human@example.com"}}`)
	c.call.expect(t, "transfer:cold:sip:human@example.com")
	m, raw := c.bot.next("transferStatus")
	want := transferStatus{Mode: "cold", Target: "sip:human@example.com", State: "failed", Reason: agent.ErrTransferUnavailable.Error()}
	if m.TransferStatus == nil || *m.TransferStatus != want || m.StreamSid != sid {
		t.Errorf("transferStatus = %s", raw)
	}
	// Call events reach the bot.
	c.s.OnEvent(agent.Event{Kind: agent.EventHold})
	c.bot.next("hold")
	c.s.OnEvent(agent.Event{Kind: agent.EventResume})
	c.bot.next("resume")
	c.s.OnEvent(agent.Event{Kind: agent.EventTransfer, Transfer: agent.TransferStatus{Mode: agent.TransferWarm,
		Target: "+15550100003", State: agent.TransferAnswered, Code: 200, Reason: "OK"}})
	m, raw = c.bot.next("transferStatus")
	want = transferStatus{Mode: "warm", Target: "+15550100003", State: "answered", Code: 200, Reason: "OK"}
	if m.TransferStatus == nil || *m.TransferStatus != want {
		t.Errorf("transferStatus = %s", raw)
	}
	cancelWait(t, c)
}
