// Package agent connects a call to a voice-agent pipeline: the Agent
// interface that the dialplan runs, and the built-in agents (echo, prompt).
// An agent hears the caller as 20 ms frames of 8 kHz linear PCM and speaks by
// queueing audio on the call; it never touches RTP or SIP directly.
package agent

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// ErrHangup is returned by an agent that wants the call ended now.
var ErrHangup = errors.New("agent: hang up requested")

// Info describes the call an agent is attached to.
type Info struct {
	CallID string
	From   string
	To     string
	Trunk  string
	// Params are the dialplan's per-call parameters for this agent.
	Params map[string]string
}

// Call is what an agent may do to the call it is attached to. All methods
// are safe to call from any goroutine.
type Call interface {
	Info() Info
	Log() *slog.Logger
	// PlayPCM queues 8 kHz linear PCM of any length for the caller.
	PlayPCM(samples []int16) error
	// PlayUlaw queues G.711 µ-law bytes of any length for the caller.
	PlayUlaw(payload []byte) error
	// Mark asks for Listener.OnMark(name) once everything queued before it
	// has been sent to the caller.
	Mark(name string)
	// Clear drops queued audio at once (barge-in) and answers pending marks.
	Clear()
	// SendDigits sends DTMF to the caller (RFC 4733, or in-band tones when
	// the caller negotiated no telephone-event).
	SendDigits(digits string) error
}

// Listener hears the caller's side. Methods are called from the call's media
// goroutines (audio and DTMF from the reader, marks from the pacer): they must
// return quickly and must not keep frame after returning.
type Listener interface {
	OnAudio(frame []int16)
	OnDTMF(digit rune, duration time.Duration)
	OnMark(name string)
}

// Agent is one conversation partner for a call.
type Agent interface {
	// Start attaches the agent to call and returns the listener for the
	// caller's audio; it fails when the agent cannot be reached.
	Start(ctx context.Context, call Call) (Session, error)
}

// Session is a running conversation.
type Session interface {
	Listener
	// Wait blocks until the conversation is over: nil when the agent is done
	// (the dialplan continues), ErrHangup when it asked to end the call, or
	// another error when it failed. ctx ending stops the session.
	Wait(ctx context.Context) error
}
