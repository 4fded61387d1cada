package twilio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/media"
)

// writeLoop sends queued messages in order, numbering them; on quit it sends
// `stop` if asked and ends. Writes are not bounded by a context (that would
// allocate per frame): a stuck write ends when Wait cuts the connection.
func (s *session) writeLoop() {
	defer close(s.writerDone)
	buf := make([]byte, 0, 1024)
	seq := uint64(1) // `start` was 1
	var chunk uint64
	for {
		var msg []byte
		select {
		case <-s.quit:
			if s.stop {
				if b, err := s.stopMessage(seq + 1); err == nil {
					_ = s.write(b)
				}
			}
			return
		case it := <-s.queue:
			seq++
			if f := it.frame; f != nil {
				chunk++
				buf = appendMedia(buf[:0], s.streamSid, seq, chunk, f.ts, f.ulaw)
				s.free <- f
				msg = buf
			} else {
				b, err := s.marshalControl(seq, it.ctl)
				if err != nil {
					s.log.Error("cannot encode message for bot", "error", err)
					seq--
					continue
				}
				msg = b
			}
		}
		if err := s.write(msg); err != nil {
			return
		}
	}
}

// write sends one text message. A failure is handed to the reader, which
// decides the outcome (a write fails too when the bot closes normally).
func (s *session) write(b []byte) error {
	err := s.conn.Write(context.Background(), websocket.MessageText, b)
	if err != nil && !errors.Is(err, net.ErrClosed) { // closed: the reader sees why
		s.writeErr.Store(&err)
		s.ioCancel()
	}
	return err
}

// readLoop reads and dispatches bot messages until the connection ends. It
// keeps reading (and discarding) after a hangup so that the close handshake
// can complete; it closes the connection on its way out.
func (s *session) readLoop() {
	defer close(s.readerDone)
	defer func() { _ = s.conn.CloseNow() }()
	var (
		dec       Decoder
		buf       bytes.Buffer
		malformed int
		ended     bool
		// playEnd estimates when the audio the bot has queued so far will
		// have played (time since the stream started): the bot is not
		// silent while the caller still hears it.
		playEnd time.Duration
	)
	for {
		_, r, err := s.conn.Reader(s.ioCtx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			s.readFailed(err)
			return
		}
		if ended || s.closed.Load() {
			continue
		}
		m, err := dec.Decode(buf.Bytes())
		if s.silence > 0 { // any message, even a malformed one, is a sign of life
			now := time.Since(s.started)
			switch {
			case err != nil:
			case m.Kind == BotMedia:
				playEnd = max(playEnd, now) + time.Duration(len(m.Payload))*time.Second/media.SampleRate
			case m.Kind == BotClear:
				playEnd = now
			}
			s.quietUntil.Store(int64(max(now, playEnd) + s.silence))
		}
		if buf.Cap() > 64<<10 { // do not keep a huge message's buffer for the call
			buf = bytes.Buffer{}
		}
		if err != nil {
			malformed++
			s.log.Warn("malformed message from bot", "error", err, "malformed", malformed)
			if malformed > maxMalformed {
				s.finish(outcome{
					err: &agent.Failure{Cause: agent.CauseProtocol,
						Detail: fmt.Sprintf("%d malformed messages, last: %v", malformed, err),
						Err:    fmt.Errorf("%w: %d malformed messages, last: %w", ErrProtocol, malformed, err)},
					sendStop: true, closeCode: websocket.StatusPolicyViolation, closeReason: "too many malformed messages",
				})
				ended = true
			}
			continue
		}
		ended = s.dispatch(&m)
	}
}

// readFailed turns the end of reading into the session's outcome.
func (s *session) readFailed(err error) {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
		s.finish(outcome{}) // the bot ended the conversation
		return
	}
	if werr := s.writeErr.Load(); werr != nil && errors.Is(err, context.Canceled) {
		err = *werr
	}
	if errors.Is(err, websocket.ErrMessageTooBig) {
		s.finish(outcome{err: &agent.Failure{Cause: agent.CauseProtocol,
			Detail: fmt.Sprintf("a message over the %d-byte limit", maxMessageBytes),
			Err:    fmt.Errorf("%w: %w", ErrProtocol, err)}})
		return
	}
	if !s.closed.Load() {
		// Info: the dialplan logs the failure (with its cause) as a warning.
		s.log.Info("bot connection lost", "error", err)
	}
	s.finish(outcome{err: &agent.Failure{Cause: agent.CauseDropped, Detail: clip(err.Error(), 200),
		Err: fmt.Errorf("%w: %w", ErrBotGone, err)}})
}

// clip shortens s to at most n bytes, for details a peer may fill (a close
// reason) that go into logs and CDRs.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// dispatch acts on one bot message; it reports whether the session ended.
func (s *session) dispatch(m *BotMessage) bool {
	if m.StreamSid != "" && m.StreamSid != s.streamSid && s.sidWarned.CompareAndSwap(false, true) {
		s.log.Warn("bot uses another streamSid; accepted", "bot_stream_sid", m.StreamSid)
	}
	switch m.Kind {
	case BotMedia:
		// A bot streaming into a full queue fails every message: warn once
		// per session; the count is on the "bot session ended" line.
		if err := s.call.PlayUlaw(m.Payload); err != nil && s.playErrors.Add(1) == 1 {
			s.log.Warn("bot audio not queued", "error", err, "further", "counted, not logged")
		}
	case BotMark:
		s.call.Mark(m.Name)
	case BotClear:
		s.call.Clear()
	case BotHangup:
		s.log.Info("bot hung up", "reason", m.Reason)
		s.finish(outcome{err: &agent.HangupError{Reason: m.Reason}, sendStop: true,
			closeCode: websocket.StatusNormalClosure})
		return true
	case BotTransfer:
		t := m.Transfer
		s.log.Info("bot asks for a transfer", "mode", t.Mode, "target", t.Target)
		if err := s.call.Transfer(t); err != nil {
			s.log.Warn("transfer refused", "target", t.Target, "error", err)
			s.control(&control{kind: ctlTransfer, transfer: agent.TransferStatus{
				Mode: t.Mode, Target: t.Target, State: agent.TransferFailed, Reason: err.Error()}})
		}
	case BotSendDigits:
		if err := s.call.SendDigits(m.Digits); err != nil {
			s.log.Warn("digits not sent", "digits", m.Digits, "error", err)
		}
	case BotBridge, BotCancel:
		if err := s.call.CompleteTransfer(m.Kind == BotBridge); err != nil {
			s.log.Warn("transfer completion refused", "bridge", m.Kind == BotBridge, "error", err)
		}
	default:
		s.log.Debug("bot event ignored", "event", m.Event)
	}
	return false
}
