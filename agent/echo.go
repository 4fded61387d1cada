package agent

import (
	"context"
	"time"
)

// Echo repeats the caller's audio back, frame by frame: the loop-back test
// every telephony admin reaches for first.
type Echo struct{}

// Start implements Agent.
func (Echo) Start(ctx context.Context, call Call) (Session, error) {
	return &echoSession{call: call}, nil
}

type echoSession struct{ call Call }

func (e *echoSession) OnAudio(frame []int16) {
	// A full queue only drops audio; the echo has nothing better to do.
	_ = e.call.PlayPCM(frame)
}

func (e *echoSession) OnDTMF(digit rune, d time.Duration) {
	e.call.Log().Info("dtmf", "digit", string(digit), "duration_ms", d.Milliseconds())
}

func (e *echoSession) OnMark(string) {}
func (e *echoSession) OnEvent(Event) {}

func (e *echoSession) Wait(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
