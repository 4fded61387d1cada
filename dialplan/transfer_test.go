package dialplan

import (
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
)

type heard struct {
	digits []rune
	audio  int
}

func (h *heard) OnAudio([]int16)                { h.audio++ }
func (h *heard) OnDTMF(d rune, _ time.Duration) { h.digits = append(h.digits, d) }
func (h *heard) OnMark(string)                  {}
func (h *heard) OnEvent(agent.Event)            {}

func TestHumanSinkAcceptDigit(t *testing.T) {
	h := &heard{}
	s := &humanSink{Listener: h, accept: '1', decide: make(chan bool, 1)}
	s.OnDTMF('5', 0)
	s.OnAudio(make([]int16, 160))
	select {
	case <-s.decide:
		t.Fatal("a digit other than the accept digit decided the transfer")
	default:
	}
	s.OnDTMF('1', 0)
	select {
	case bridge := <-s.decide:
		if !bridge {
			t.Errorf("accept digit decided cancel")
		}
	default:
		t.Fatal("the accept digit did not bridge")
	}
	if string(h.digits) != "5" || h.audio != 1 {
		t.Errorf("agent heard digits %q and %d frames, want 5 and 1 (the accept digit is the gateway's)", string(h.digits), h.audio)
	}
	// Once bridged, the human no longer reaches the agent.
	s.off.Store(true)
	s.OnDTMF('7', 0)
	s.OnAudio(make([]int16, 160))
	if string(h.digits) != "5" || h.audio != 1 {
		t.Errorf("agent heard the human after the bridge: %q, %d frames", string(h.digits), h.audio)
	}
}

func TestCompleteTransferNeedsOne(t *testing.T) {
	rt := &callRuntime{}
	if err := rt.completeTransfer(true); err == nil {
		t.Error("bridge without a transfer in progress succeeded")
	}
	if !rt.xf.begin() {
		t.Fatal("begin refused on an idle call")
	}
	if rt.xf.begin() {
		t.Error("a second transfer began while one is in progress")
	}
	if err := rt.completeTransfer(false); err != nil {
		t.Errorf("cancel during a transfer: %v", err)
	}
	if err := rt.completeTransfer(true); err == nil {
		t.Error("a transfer was decided twice")
	}
	rt.xf.done()
	if !rt.xf.begin() {
		t.Error("begin refused after the last transfer ended")
	}
}
