package dialplan

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
)

// callMedia is the agent's view of a call: the leg's audio controls plus who
// is calling. It is what agent.Call is implemented by.
type callMedia struct {
	*media.Leg
	info agent.Info
	log  *slog.Logger
}

func (c *callMedia) Info() agent.Info  { return c.info }
func (c *callMedia) Log() *slog.Logger { return c.log }

// Transfer is refused until the call has a transferer.
func (c *callMedia) Transfer(agent.TransferRequest) error { return agent.ErrTransferUnavailable }

// CompleteTransfer is refused until the call has a transferer.
func (c *callMedia) CompleteTransfer(bool) error { return agent.ErrTransferUnavailable }

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
