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

// HangupError is an ErrHangup that carries the agent's reason.
type HangupError struct{ Reason string }

func (e *HangupError) Error() string {
	if e.Reason == "" {
		return ErrHangup.Error()
	}
	return ErrHangup.Error() + ": " + e.Reason
}

// Is makes errors.Is(err, ErrHangup) hold.
func (e *HangupError) Is(target error) bool { return target == ErrHangup }

// ErrTransferUnavailable is returned by Call.Transfer when the gateway cannot
// transfer this call (no trunk, target not allowed, transfers not enabled).
var ErrTransferUnavailable = errors.New("agent: transfer unavailable")

// Info describes the call an agent is attached to.
type Info struct {
	CallID string
	From   string
	To     string
	Trunk  string
	// Params are the dialplan's per-call parameters for this agent.
	Params map[string]string
	// Header returns a header of the caller's INVITE ("" when absent); nil
	// when the call has none to offer.
	Header func(name string) string
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
	// Transfer starts handing the caller over; it returns at once. Progress
	// and the outcome reach Listener.OnEvent as EventTransfer events.
	Transfer(req TransferRequest) error
	// CompleteTransfer ends a warm transfer's briefing: bridge connects the
	// caller and the human, otherwise the human is released and the agent
	// returns to the caller.
	CompleteTransfer(bridge bool) error
}

// TransferMode is how a transfer hands the caller over.
type TransferMode string

// Transfer modes.
const (
	// TransferCold asks the caller's side to call the target (SIP REFER).
	TransferCold TransferMode = "cold"
	// TransferWarm dials the target, lets the agent brief them, then
	// bridges the caller to them.
	TransferWarm TransferMode = "warm"
)

// TransferRequest asks the gateway to hand the caller to someone else.
type TransferRequest struct {
	Mode TransferMode
	// Target is an E.164 number or a SIP URI.
	Target string
	// Headers are extra SIP headers for the REFER or the new leg.
	Headers map[string]string
	// Context is shown to the human (an X-header) in a warm transfer.
	Context string
}

// EventKind names a call event an agent is told about.
type EventKind string

// Call events.
const (
	EventHold     EventKind = "hold"
	EventResume   EventKind = "resume"
	EventTransfer EventKind = "transferStatus"
)

// TransferState is where a transfer stands.
type TransferState string

// Transfer states; completed and failed are final.
const (
	TransferTrying    TransferState = "trying"
	TransferRinging   TransferState = "ringing"
	TransferAnswered  TransferState = "answered" // warm: the human picked up, briefing starts
	TransferCompleted TransferState = "completed"
	TransferFailed    TransferState = "failed"
)

// TransferStatus reports a transfer's progress.
type TransferStatus struct {
	Mode   TransferMode
	Target string
	State  TransferState
	// Code is the SIP status behind the state, when there is one.
	Code   int
	Reason string
}

// Final reports whether the transfer is over.
func (s TransferStatus) Final() bool {
	return s.State == TransferCompleted || s.State == TransferFailed
}

// Event is something that happened to the call besides audio and digits.
type Event struct {
	Kind     EventKind
	Transfer TransferStatus // for EventTransfer
}

// Listener hears the caller's side. Methods are called from the call's media
// goroutines (audio and DTMF from the reader, marks from the pacer): they must
// return quickly and must not keep frame after returning.
type Listener interface {
	OnAudio(frame []int16)
	OnDTMF(digit rune, duration time.Duration)
	OnMark(name string)
	// OnEvent reports hold, resume and transfer progress.
	OnEvent(ev Event)
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
