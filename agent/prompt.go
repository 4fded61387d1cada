package agent

import (
	"context"
	"sync"
	"time"
)

// Prompt plays a recording, then hangs up or waits for the caller to hang up.
type Prompt struct {
	// Samples is the recording as 8 kHz linear PCM (media.ReadWAVFile).
	Samples []int16
	// Wait keeps the call up after the prompt instead of hanging up.
	Wait bool
}

// Start implements Agent.
func (p Prompt) Start(ctx context.Context, call Call) (Session, error) {
	s := &promptSession{call: call, wait: p.Wait, played: make(chan struct{})}
	if err := call.PlayPCM(p.Samples); err != nil {
		return nil, err
	}
	call.Mark(promptDoneMark)
	return s, nil
}

const promptDoneMark = "prompt-done"

type promptSession struct {
	call   Call
	wait   bool
	played chan struct{}
	once   sync.Once
}

func (s *promptSession) OnAudio([]int16)            {}
func (s *promptSession) OnDTMF(rune, time.Duration) {}
func (s *promptSession) OnEvent(Event)              {}
func (s *promptSession) OnMark(name string) {
	if name == promptDoneMark {
		s.once.Do(func() { close(s.played) })
	}
}

func (s *promptSession) Wait(ctx context.Context) error {
	select {
	case <-s.played:
	case <-ctx.Done():
		return nil
	}
	if !s.wait {
		return ErrHangup
	}
	<-ctx.Done()
	return nil
}
