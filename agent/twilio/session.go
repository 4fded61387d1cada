package twilio

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voice/switchboard/agent"
)

// session is one call's stream. The reader and the writer goroutines own
// the connection's two directions; Wait ends both.
type session struct {
	call       agent.Call
	conn       *websocket.Conn
	raw        net.Conn // the TCP connection under conn; nil if unknown
	log        *slog.Logger
	streamSid  string
	callSid    string
	accountSid string
	started    time.Time // stream start: media timestamps count from here
	closeGrace time.Duration

	// Caller audio and control messages for the writer. free holds the
	// recycled audio frames; a frame is in free, in queue, or being written.
	// Frames are made on demand, up to queueFrames: a bot that keeps up
	// needs two or three, and a call should not carry 50 from the start.
	free  chan *mediaFrame
	made  atomic.Int32 // frames made so far
	queue chan outItem
	quit  chan struct{} // closed by Wait: the writer sends stop if asked and ends
	stop  bool          // set before quit is closed

	// ioCtx bounds every read; cancelling it forces the connection closed.
	ioCtx      context.Context
	ioCancel   context.CancelFunc
	readerDone chan struct{}
	writerDone chan struct{}

	endOnce sync.Once
	end     chan struct{} // closed once the session's outcome is known
	outcome outcome

	closed     atomic.Bool // Wait has begun: listener input is ignored
	dropped    atomic.Uint64
	overflow   atomic.Uint64 // control messages lost to a full queue
	playErrors atomic.Uint64
	sidWarned  atomic.Bool
	writeErr   atomic.Pointer[error]

	// The silence watchdog (silence 0: off). quietUntil is when the bot
	// counts as silent, in ns since started: the reader moves it on with
	// every message, past the end of the audio the bot has queued. One
	// timer checks it, re-arming itself rather than being reset per
	// message, which would cost the hot path a timer operation.
	silence      time.Duration
	quietUntil   atomic.Int64
	paused       atomic.Uint32 // pauseHold | pauseTransfer
	silenceMu    sync.Mutex
	silenceTimer *time.Timer
	silenceOff   bool // Wait has stopped the timer

	waitOnce sync.Once
	waitErr  error
}

// outItem is a queued message: a frame of audio or a control message.
type outItem struct {
	frame *mediaFrame
	ctl   *control
}

// outcome is how a session ended and how to close the socket.
type outcome struct {
	err         error
	sendStop    bool
	closeCode   websocket.StatusCode // 0: the socket is already gone
	closeReason string
}

func newSession(a *Agent, call agent.Call, conn *websocket.Conn, log *slog.Logger) *session {
	info := call.Info()
	s := &session{
		call:       call,
		conn:       conn,
		streamSid:  newStreamSid(),
		callSid:    CallSid(info.CallID),
		accountSid: a.cfg.AccountSid,
		closeGrace: a.closeGrace,
		silence:    a.cfg.SilenceTimeout,
		free:       make(chan *mediaFrame, queueFrames),
		queue:      make(chan outItem, queueFrames+queueControls),
		quit:       make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		end:        make(chan struct{}),
	}
	s.log = log.With("stream_sid", s.streamSid)
	s.ioCtx, s.ioCancel = context.WithCancel(context.Background())
	return s
}

// open sends `connected` and `start`; the stream starts now.
func (s *session) open(ctx context.Context, params map[string]string) error {
	connected, err := connectedMessage()
	if err != nil {
		return err
	}
	start, err := s.startMessage(params)
	if err != nil {
		return err
	}
	s.started = time.Now()
	if err := s.conn.Write(ctx, websocket.MessageText, connected); err != nil {
		return err
	}
	return s.conn.Write(ctx, websocket.MessageText, start)
}

// OnAudio queues a frame of caller audio for the bot. It never blocks: when
// the bot falls behind, the frame is dropped and counted.
func (s *session) OnAudio(frame []int16) {
	if len(frame) == 0 || s.closed.Load() {
		return
	}
	if s.silence > 0 && callerSpeaks(frame) {
		// A bot says nothing while it listens: only silence on both sides
		// is dead air.
		s.quietAtLeast(time.Since(s.started) + s.silence)
	}
	var f *mediaFrame
	select {
	case f = <-s.free:
	default:
		if s.made.Add(1) > queueFrames {
			s.made.Add(-1)
			s.drop()
			return
		}
		f = &mediaFrame{ulaw: make([]byte, 0, 2*160)}
	}
	f.ulaw = encodeUlaw(f.ulaw, frame)
	f.ts = time.Since(s.started).Milliseconds()
	select {
	case s.queue <- outItem{frame: f}:
	default: // the queue is full of control messages
		s.free <- f
		s.drop()
	}
}

// callerSpeechPower is the mean square of a frame that counts as the
// caller speaking for the silence watchdog: about -36 dBFS, above line and
// comfort noise.
const callerSpeechPower = 500 * 500

func callerSpeaks(frame []int16) bool {
	var sum int64
	for _, v := range frame {
		sum += int64(v) * int64(v)
	}
	return sum > callerSpeechPower*int64(len(frame))
}

func (s *session) drop() {
	if n := s.dropped.Add(1); n%dropLogEvery == 1 {
		s.log.Warn("bot is not keeping up: caller audio dropped", "dropped_frames", n)
	}
}

// OnDTMF sends a `dtmf` message.
func (s *session) OnDTMF(digit rune, d time.Duration) {
	s.control(&control{kind: ctlDTMF, digit: digit, duration: d})
}

// OnMark sends a `mark` message: audio the bot queued before this mark has
// been played (or cleared).
func (s *session) OnMark(name string) {
	s.control(&control{kind: ctlMark, name: name})
}

// OnEvent sends `hold`, `resume` and `transferStatus` messages. A bot may
// rightly say nothing while the caller is on hold or a transfer is ringing:
// the silence watchdog is paused meanwhile.
func (s *session) OnEvent(ev agent.Event) {
	switch ev.Kind {
	case agent.EventHold:
		s.pause(pauseHold, true)
		s.control(&control{kind: ctlHold})
	case agent.EventResume:
		s.pause(pauseHold, false)
		s.control(&control{kind: ctlResume})
	case agent.EventTransfer:
		st := ev.Transfer.State
		s.pause(pauseTransfer, st == agent.TransferTrying || st == agent.TransferRinging)
		s.control(&control{kind: ctlTransfer, transfer: ev.Transfer})
	}
}

// Reasons the silence watchdog is paused.
const (
	pauseHold uint32 = 1 << iota
	pauseTransfer
)

// pause sets or clears one reason to pause the silence watchdog. When the
// last reason goes, the bot gets a whole silence timeout from now.
func (s *session) pause(why uint32, on bool) {
	for {
		old := s.paused.Load()
		v := old &^ why
		if on {
			v = old | why
		}
		if s.paused.CompareAndSwap(old, v) {
			if old != 0 && v == 0 {
				s.quietAtLeast(time.Since(s.started) + s.silence)
			}
			return
		}
	}
}

// quietAtLeast moves quietUntil to at least t.
func (s *session) quietAtLeast(t time.Duration) {
	for {
		old := s.quietUntil.Load()
		if old >= int64(t) || s.quietUntil.CompareAndSwap(old, int64(t)) {
			return
		}
	}
}

// startSilenceTimer arms the watchdog: the bot's first message is due
// within the silence timeout of the stream's start.
func (s *session) startSilenceTimer() {
	if s.silence <= 0 {
		return
	}
	s.quietAtLeast(s.silence)
	s.silenceMu.Lock()
	defer s.silenceMu.Unlock()
	s.silenceTimer = time.AfterFunc(s.silence, s.checkSilence)
}

// checkSilence runs when the bot may have been silent too long: it re-arms
// for the time left, or ends the session with ErrBotSilent.
func (s *session) checkSilence() {
	s.silenceMu.Lock()
	defer s.silenceMu.Unlock()
	if s.silenceOff {
		return
	}
	now := time.Since(s.started)
	if s.paused.Load() != 0 {
		s.quietAtLeast(now + s.silence)
	}
	if left := time.Duration(s.quietUntil.Load()) - now; left > 0 {
		s.silenceTimer.Reset(left)
		return
	}
	s.silenceOff = true
	s.finish(outcome{
		err: &agent.Failure{Cause: agent.CauseSilent,
			Detail: fmt.Sprintf("no message from the bot for %v with none of its audio playing", s.silence),
			Err:    fmt.Errorf("%w: no message for %v", ErrBotSilent, s.silence)},
		sendStop: true, closeCode: websocket.StatusPolicyViolation, closeReason: "silent for too long",
	})
}

// stopSilenceTimer ends the watchdog for good.
func (s *session) stopSilenceTimer() {
	s.silenceMu.Lock()
	defer s.silenceMu.Unlock()
	s.silenceOff = true
	if s.silenceTimer != nil {
		s.silenceTimer.Stop()
	}
}

func (s *session) control(c *control) {
	if s.closed.Load() {
		return
	}
	select {
	case s.queue <- outItem{ctl: c}:
	default:
		if n := s.overflow.Add(1); n == 1 || n%100 == 0 {
			s.log.Error("bot is not reading: control message lost", "kind", c.kind, "lost", n)
		}
	}
}

// finish records the session's outcome; the first one wins.
func (s *session) finish(o outcome) {
	s.endOnce.Do(func() {
		s.outcome = o
		close(s.end)
	})
}

// Wait runs until the bot or ctx ends the conversation, then closes the
// stream: nil when the bot closed normally or ctx ended (after `stop` and a
// normal close), *agent.HangupError when the bot sent `hangup`, an error
// wrapping ErrBotGone, ErrProtocol or ErrBotSilent (and an *agent.Failure
// with the cause) when the bot failed. Both of the session's goroutines have
// ended when it returns.
func (s *session) Wait(ctx context.Context) error {
	s.waitOnce.Do(func() { s.waitErr = s.wait(ctx) })
	return s.waitErr
}

func (s *session) wait(ctx context.Context) error {
	select {
	case <-s.end:
	case <-ctx.Done():
		s.finish(outcome{sendStop: true, closeCode: websocket.StatusNormalClosure})
	}
	s.stopSilenceTimer()
	o := s.outcome
	s.closed.Store(true)
	s.stop = o.sendStop
	close(s.quit)
	// A bot that neither reads nor answers the close handshake gets
	// closeGrace, then the connection is cut.
	force := time.AfterFunc(s.closeGrace, func() {
		s.ioCancel()
		if s.raw != nil {
			_ = s.raw.Close()
		}
	})
	defer force.Stop()
	<-s.writerDone
	if o.closeCode != 0 {
		_ = s.conn.Close(o.closeCode, o.closeReason)
	}
	s.ioCancel()
	<-s.readerDone
	// The dialplan logs a failure with its cause; this line is the
	// session's own account, at info level when something was lost or went wrong.
	dropped, notQueued := s.dropped.Load(), s.playErrors.Load()
	attrs := []any{"dropped_frames", dropped, "audio_not_queued", notQueued}
	switch {
	case o.err != nil:
		s.log.Info("bot session ended", append(attrs, "error", o.err)...)
	case dropped > 0 || notQueued > 0:
		s.log.Info("bot session ended", attrs...)
	default:
		s.log.Debug("bot session ended", attrs...)
	}
	return o.err
}
