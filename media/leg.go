package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/rtp"
)

// Sink hears a leg's inbound side. OnAudio runs on the RTP reader goroutine;
// OnDTMF runs there too, or on a timer's goroutine for a digit whose end
// packets were lost (never two OnDTMF at once); OnMark runs on the pacer.
// Each must return quickly, and OnAudio must not keep the frame.
type Sink interface {
	OnAudio(frame []int16)
	OnDTMF(digit rune, duration time.Duration)
	OnMark(name string)
}

// LegConfig is what every leg of the gateway shares.
type LegConfig struct {
	Pool              *rtp.PortPool
	Latch             bool
	InactivityTimeout time.Duration
	RTCPInterval      time.Duration
	// MaxPlayout caps the agent audio waiting to be sent.
	MaxPlayout time.Duration
	Logger     *slog.Logger
}

// Leg is one call leg's media: an RTP session, G.711 at its edge, 20 ms
// frames inside, a playout queue paced out on a monotonic clock.
type Leg struct {
	cfg     LegConfig
	log     *slog.Logger
	session *rtp.Session
	playout *Playout

	mu   sync.Mutex
	neg  Negotiated
	sink Sink

	digits chan rune

	// relay, when bridged, sends what this leg receives out of another;
	// bridged keeps this leg's pacer quiet while another leg feeds it.
	relay   atomic.Pointer[relay]
	bridged atomic.Bool

	framesIn   atomic.Uint64 // frames handed to the sink
	framesOut  atomic.Uint64 // frames of agent audio sent
	framesShed atomic.Uint64 // frames of agent audio dropped as stale after a stall

	started  atomic.Bool
	stopOnce sync.Once
	cancel   context.CancelFunc
	readDone chan struct{} // closed when ReadLoop has returned readErr
	readErr  error
	pacerEnd chan struct{}
}

// OpenLeg allocates the leg's ports. payloadTypes are those it may receive
// (from the negotiation, or from our offer for a late-offer call).
func OpenLeg(cfg LegConfig, payloadTypes []uint8) (*Leg, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxPlayout <= 0 {
		cfg.MaxPlayout = 5 * time.Minute
	}
	sess, err := rtp.Open(rtp.Config{
		Pool:              cfg.Pool,
		Latch:             cfg.Latch,
		PayloadTypes:      payloadTypes,
		ClockRate:         8000,
		InactivityTimeout: cfg.InactivityTimeout,
		RTCPInterval:      cfg.RTCPInterval,
		CNAME:             "switchboard",
		Logger:            cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("media: open leg: %w", err)
	}
	l := &Leg{cfg: cfg, log: cfg.Logger, session: sess, digits: make(chan rune, 64)}
	l.playout = NewPlayout(cfg.MaxPlayout, l.onMark)
	return l, nil
}

// LocalPort is the RTP port to advertise in SDP.
func (l *Leg) LocalPort() int { return l.session.LocalPort() }

// Start runs the reader and the pacer until ctx ends or Close.
func (l *Leg) Start(ctx context.Context, neg Negotiated, sink Sink) error {
	if !l.started.CompareAndSwap(false, true) {
		return errors.New("media: leg already started")
	}
	enc, ok := EncodingFor(neg.Codec)
	if !ok {
		return fmt.Errorf("media: unsupported codec %s", neg.Codec.Name)
	}
	if err := l.session.SetSRTP(neg.SRTP); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	l.mu.Lock()
	l.neg, l.sink = neg, sink
	l.mu.Unlock()
	l.applyRemote(neg)

	ctx, l.cancel = context.WithCancel(ctx)
	l.readDone = make(chan struct{})
	l.pacerEnd = make(chan struct{})
	r := newReceiver(l, enc, neg)
	go func() {
		defer close(l.readDone)
		l.readErr = l.session.ReadLoop(ctx, r.handle)
		r.stop()
	}()
	p := newPacer(l, enc, neg)
	go func() { defer close(l.pacerEnd); p.run(ctx) }()
	return nil
}

// Update applies a re-negotiation (re-INVITE): new remote address, hold or
// resume, new SRTP keys. Codec changes mid-call are not followed.
func (l *Leg) Update(neg Negotiated) {
	l.mu.Lock()
	old := l.neg
	l.neg.Remote, l.neg.Hold, l.neg.LocalDirection, l.neg.SRTP = neg.Remote, neg.Hold, neg.LocalDirection, neg.SRTP
	l.mu.Unlock()
	if old.Remote != neg.Remote || old.Hold != neg.Hold {
		l.applyRemote(neg)
	}
	if old.SRTP != neg.SRTP {
		if err := l.session.SetSRTP(neg.SRTP); err != nil {
			l.log.Warn("srtp keys not applied", "error", err)
		}
	}
}

func (l *Leg) applyRemote(neg Negotiated) {
	l.session.SetHold(neg.Hold)
	l.session.SetRemote(neg.Remote)
}

// sending reports whether the pacer may put audio on the wire.
func (l *Leg) sending() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.neg.LocalDirection
	return d == SendRecv || d == SendOnly
}

// Wait blocks until the reader stops: nil after Close or ctx end,
// rtp.ErrInactive (wrapped) when the far end fell silent.
func (l *Leg) Wait() error {
	if !l.started.Load() {
		return errors.New("media: leg not started")
	}
	<-l.readDone
	return l.readErr
}

// Close stops the goroutines and releases the ports. Safe to call twice.
func (l *Leg) Close() error {
	var err error
	l.stopOnce.Do(func() {
		if l.cancel != nil {
			l.cancel()
		}
		err = l.session.Close()
		if l.started.Load() {
			<-l.pacerEnd
			<-l.readDone
		}
	})
	return err
}

// PlayPCM queues linear PCM for the far end.
func (l *Leg) PlayPCM(samples []int16) error {
	_, err := l.playout.WritePCM(samples)
	return err
}

// PlayUlaw queues µ-law bytes for the far end.
func (l *Leg) PlayUlaw(payload []byte) error {
	_, err := l.playout.WriteUlaw(payload)
	return err
}

// Mark fires Sink.OnMark(name) once the audio queued before it is sent.
func (l *Leg) Mark(name string) { l.playout.Mark(name) }

// Started reports whether Start has run.
func (l *Leg) Started() bool { return l.started.Load() }

// Buffered is how much audio waits in the playout queue.
func (l *Leg) Buffered() time.Duration { return l.playout.Buffered() }

// Clear empties the playout queue (barge-in) and answers pending marks.
func (l *Leg) Clear() { l.playout.Clear() }

// SendDigits queues DTMF digits; they are sent between audio frames.
func (l *Leg) SendDigits(digits string) error {
	for _, d := range digits {
		if _, ok := rtp.DigitCode(d); !ok {
			return fmt.Errorf("media: %q is not a DTMF digit", d)
		}
	}
	for _, d := range digits {
		select {
		case l.digits <- d:
		default:
			return errors.New("media: too many digits queued")
		}
	}
	return nil
}

func (l *Leg) onMark(name string) {
	l.mu.Lock()
	s := l.sink
	l.mu.Unlock()
	if s != nil {
		s.OnMark(name)
	}
}

// LegStats are a leg's counters at the end of a call.
type LegStats struct {
	RTP       rtp.Stats
	FramesIn  uint64
	FramesOut uint64
	// FramesShed counts agent frames dropped because a pacer stall made
	// them stale (see pacer.shedStale).
	FramesShed uint64
}

// Stats returns the leg's counters.
func (l *Leg) Stats() LegStats {
	return LegStats{RTP: l.session.Stats(), FramesIn: l.framesIn.Load(), FramesOut: l.framesOut.Load(), FramesShed: l.framesShed.Load()}
}

// receiver turns packets into 20 ms frames and digits on the reader goroutine.
type receiver struct {
	leg    *Leg
	sink   Sink
	enc    Encoding
	pt     uint8
	tePT   int
	inband *DTMFDetector // only when no telephone-event was negotiated
	pcm    [maxPacketSamples]int16
	frame  [FrameSamples]int16
	have   int

	// evMu guards the event state below, shared by the reader and evTimer.
	// Audio never takes it.
	evMu      sync.Mutex
	events    *rtp.EventReceiver
	evTimer   *time.Timer // reports an event whose end packets were all lost
	evArmed   bool        // evTimer is running
	lastEvent time.Time   // when the pending event's latest packet arrived
	stopped   bool        // the reader has ended: report nothing more
}

// maxPacketSamples bounds one packet's audio: 1500 bytes of G.711.
const maxPacketSamples = 1500

// eventEndTimeout is how long a pending telephone-event may go without a
// packet before it is taken as ended, with the duration seen so far. Senders
// refresh an event every 50 ms or so while the key is held, so silence this
// long means its end packets (all three) were lost; without it the digit
// would wait for the next key press, however long that takes.
const eventEndTimeout = 500 * time.Millisecond

func newReceiver(l *Leg, enc Encoding, neg Negotiated) *receiver {
	r := &receiver{leg: l, sink: l.sink, enc: enc, pt: neg.Codec.PayloadType, tePT: -1, events: rtp.NewEventReceiver(8000)}
	if neg.HasTelephoneEvent {
		r.tePT = int(neg.TelephoneEvent)
	} else {
		r.inband = NewDTMFDetector()
	}
	return r
}

func (r *receiver) handle(p *pionrtp.Packet) {
	if rl := r.leg.relay.Load(); rl != nil {
		rl.forward(p)
	}
	switch {
	case int(p.PayloadType) == r.tePT:
		ev, err := rtp.ParseEvent(p.Payload)
		if err != nil {
			return
		}
		r.event(p.Timestamp, ev)
	case p.PayloadType == r.pt:
		n := Decode(r.enc, r.pcm[:], p.Payload)
		r.push(r.pcm[:n])
	}
}

// push re-frames decoded audio into 20 ms frames, forwarding each frame the
// moment it is complete: no jitter-buffer wait.
func (r *receiver) push(pcm []int16) {
	for len(pcm) > 0 {
		n := copy(r.frame[r.have:], pcm)
		r.have += n
		pcm = pcm[n:]
		if r.have == FrameSamples {
			r.sink.OnAudio(r.frame[:])
			r.leg.framesIn.Add(1)
			if r.inband != nil {
				if d, dur, ok := r.inband.Process(r.frame[:]); ok {
					r.sink.OnDTMF(d, dur)
				}
			}
			r.have = 0
		}
	}
}

// event takes one telephone-event packet and keeps the end timer running
// while an event is pending.
func (r *receiver) event(ts uint32, ev rtp.Event) {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	if d, ok := r.events.Push(ts, ev); ok {
		r.sink.OnDTMF(d.Rune, d.Duration)
	}
	if !r.events.Pending() {
		return
	}
	r.lastEvent = time.Now()
	switch {
	case r.evTimer == nil:
		r.evTimer = time.AfterFunc(eventEndTimeout, r.expire)
	case !r.evArmed:
		r.evTimer.Reset(eventEndTimeout)
	}
	// An armed timer is not reset per packet: expire re-arms itself for
	// the time left since lastEvent.
	r.evArmed = true
}

// expire runs on evTimer: it reports the pending event once no packet of it
// has come for eventEndTimeout.
func (r *receiver) expire() {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	r.evArmed = false
	if r.stopped || !r.events.Pending() {
		return
	}
	if left := eventEndTimeout - time.Since(r.lastEvent); left > 0 {
		r.evTimer.Reset(left)
		r.evArmed = true
		return
	}
	if d, ok := r.events.Flush(); ok {
		r.sink.OnDTMF(d.Rune, d.Duration)
	}
}

// stop ends the end timer once the reader has returned.
func (r *receiver) stop() {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	r.stopped = true
	if r.evTimer != nil {
		r.evTimer.Stop()
	}
}
