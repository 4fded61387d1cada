package dialplan

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
)

// callMedia is the agent's view of a call: audio controls plus who is
// calling. It is what agent.Call is implemented by. The agent speaks to the
// caller's leg, or to the human's while it briefs them in a warm transfer.
type callMedia struct {
	out      atomic.Pointer[media.Leg] // nil: the agent's audio goes nowhere
	info     agent.Info
	log      *slog.Logger
	transfer func(agent.TransferRequest) error
	complete func(bridge bool) error
}

func newCallMedia(leg *media.Leg, info agent.Info, log *slog.Logger) *callMedia {
	c := &callMedia{info: info, log: log}
	c.out.Store(leg)
	return c
}

func (c *callMedia) speakTo(l *media.Leg) { c.out.Store(l) }

func (c *callMedia) Info() agent.Info  { return c.info }
func (c *callMedia) Log() *slog.Logger { return c.log }

func (c *callMedia) PlayPCM(samples []int16) error {
	if l := c.out.Load(); l != nil {
		return l.PlayPCM(samples)
	}
	return nil
}

func (c *callMedia) PlayUlaw(payload []byte) error {
	if l := c.out.Load(); l != nil {
		return l.PlayUlaw(payload)
	}
	return nil
}

func (c *callMedia) Mark(name string) {
	if l := c.out.Load(); l != nil {
		l.Mark(name)
	}
}

func (c *callMedia) Clear() {
	if l := c.out.Load(); l != nil {
		l.Clear()
	}
}

func (c *callMedia) SendDigits(digits string) error {
	if l := c.out.Load(); l != nil {
		return l.SendDigits(digits)
	}
	return nil
}

// Transfer starts handing the caller over; refused without a transferer.
func (c *callMedia) Transfer(req agent.TransferRequest) error {
	if c.transfer == nil {
		return agent.ErrTransferUnavailable
	}
	return c.transfer(req)
}

// CompleteTransfer bridges or cancels a warm transfer's briefing.
func (c *callMedia) CompleteTransfer(bridge bool) error {
	if c.complete == nil {
		return agent.ErrTransferUnavailable
	}
	return c.complete(bridge)
}

// listenerSwitch lets the leg start before the agent does, and lets a later
// action hand the caller to another listener without restarting media.
type listenerSwitch struct {
	current atomic.Pointer[agent.Listener]
	digits  *digitLog // every digit, for the CDR; may be nil
}

func (s *listenerSwitch) set(l agent.Listener) {
	if l == nil {
		s.current.Store(nil)
		return
	}
	s.current.Store(&l)
}

func (s *listenerSwitch) OnAudio(frame []int16) {
	if l := s.current.Load(); l != nil {
		(*l).OnAudio(frame)
	}
}

func (s *listenerSwitch) OnDTMF(d rune, dur time.Duration) {
	if s.digits != nil {
		s.digits.add(d)
	}
	if l := s.current.Load(); l != nil {
		(*l).OnDTMF(d, dur)
	}
}

func (s *listenerSwitch) OnMark(name string) {
	if l := s.current.Load(); l != nil {
		(*l).OnMark(name)
	}
}

func (s *listenerSwitch) OnEvent(ev agent.Event) {
	if l := s.current.Load(); l != nil {
		(*l).OnEvent(ev)
	}
}
