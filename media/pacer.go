package media

import (
	"context"
	"time"

	"github.com/switchboard-voice/switchboard/rtp"
)

// pacer sends one packet every ptime on a monotonic clock. After a stall it
// skips the missed slots (advancing the RTP timestamp) instead of bursting,
// and it sends comfort silence when the agent has nothing to say.
//
// An agent that streams in real time delivers each frame at about the same
// moment in every slot; scheduling jitter then puts some frames just after
// the tick. Filling that slot with silence would push every later frame
// back by a whole ptime, for the rest of the call. So when speech runs dry
// the pacer holds the slot open for up to half a ptime and sends the late
// frame the moment it arrives, keeping the slot's timestamp. Likewise the
// first frame after silence goes out as it arrives, not at the next tick.
type pacer struct {
	leg     *Leg
	enc     Encoding
	pt      uint8
	tePT    uint8
	hasTE   bool
	ptime   time.Duration
	samples int

	pcm     [maxPacketSamples]int16
	payload [maxPacketSamples]byte
	event   [4]byte
	carry   [FrameSamples]int16
	carryN  int    // samples left in carry
	carryAt int    // next sample in carry
	clears  uint64 // playout's Clears() when carry was filled
	stalls  int    // ticks a trailing partial frame has waited

	digit     *rtp.EventSender
	digitTS   uint32
	gap       int // silent packets still to send between digits
	inband    []int16
	first     bool
	wasSilent bool
	// ahead is how far early the pacer's clock runs for the timestamps it
	// sends, after startNow; it is given back in silence.
	ahead time.Duration
}

func newPacer(l *Leg, enc Encoding, neg Negotiated) *pacer {
	ptime := neg.PTime
	if ptime <= 0 {
		ptime = FrameDuration
	}
	return &pacer{
		leg: l, enc: enc, pt: neg.Codec.PayloadType,
		tePT: neg.TelephoneEvent, hasTE: neg.HasTelephoneEvent,
		ptime: ptime, samples: int(ptime / time.Millisecond * 8), first: true,
	}
}

func (p *pacer) run(ctx context.Context) {
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	holding := false // the slot at next waits for a late frame
	for {
		// Audio written now matters before the next tick only to a held
		// slot or to the start of a talkspurt.
		p.leg.playout.WakeOnWrite(holding || p.wasSilent)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			holding = false
		case <-p.leg.playout.Written():
			switch {
			case holding && p.leg.playout.HasFrame():
				holding = false
			case !holding && p.canStartEarly():
				next = p.startNow(next)
			default:
				continue
			}
		}
		if p.leg.bridged.Load() {
			// Bridged: the other leg's packets go out as they arrive and
			// move the timestamp; the pacer only keeps its clock.
			next = time.Now().Add(p.ptime)
			timer.Reset(p.ptime)
			p.first = true
			continue
		}
		if behind := time.Since(next); behind >= p.ptime {
			missed := int(behind / p.ptime)
			p.leg.session.SkipSamples(uint32(missed * p.samples))
			next = next.Add(time.Duration(missed) * p.ptime)
			p.shedStale(missed)
		} else if behind < p.ptime/2 && p.speechRanDry() {
			holding = true
			timer.Reset(time.Until(next.Add(p.ptime / 2)))
			continue
		}
		p.tick()
		next = next.Add(p.ptime)
		if p.ahead > 0 && p.wasSilent {
			next, p.ahead = next.Add(p.ahead), 0
		}
		timer.Reset(time.Until(next))
	}
}

// shedStale drops the audio of slots a stall made the pacer miss, when the
// agent streams in real time (little more than those slots is queued):
// played late, it would delay everything the agent says after it for the
// rest of the call. A deeper queue is speech sent ahead of time (a TTS
// burst), which is kept whole. At most maxShed frames go per stall: after a
// long one, a short utterance that arrived meanwhile must not vanish whole.
func (p *pacer) shedStale(missed int) {
	stale := missed * p.samples / FrameSamples
	if stale == 0 || p.leg.playout.Buffered() > time.Duration(stale+2)*FrameDuration {
		return
	}
	frames := min(stale, maxShed)
	p.carryAt = p.carryN
	for range frames {
		if !p.leg.playout.NextFrame(p.carry[:], false) {
			break
		}
		p.leg.framesShed.Add(1)
	}
}

// canStartEarly reports whether the agent's first frame after silence may
// go out now instead of at the next tick.
func (p *pacer) canStartEarly() bool {
	return !p.first && p.wasSilent && p.gap == 0 && p.digit == nil && len(p.inband) == 0 &&
		len(p.leg.digits) == 0 && !p.leg.bridged.Load() && p.leg.sending() && p.leg.playout.HasFrame()
}

// startNow moves the slot due at next to now, so the talkspurt starts at
// once. Its timestamp stays the next one in sequence (moving it back would
// overlap the silence packet before it, which receivers may drop), so the
// packets of the talkspurt go out early for their timestamps: a talkspurt's
// first packet carries the marker, at which receivers re-anchor their
// playout. The clock is given the time back in the next silence.
func (p *pacer) startNow(next time.Time) time.Time {
	now := time.Now()
	early := next.Sub(now)
	if early < time.Millisecond {
		return next
	}
	p.ahead = min(p.ahead+early, p.ptime)
	return now
}

// speechRanDry reports whether the agent was speaking in the last slot and
// has no frame for this one: the moment to wait a little for a late frame.
func (p *pacer) speechRanDry() bool {
	return !p.first && !p.wasSilent && p.gap == 0 && p.digit == nil && len(p.inband) == 0 &&
		len(p.leg.digits) == 0 && p.carryAt == p.carryN && !p.leg.playout.HasFrame()
}

func (p *pacer) tick() {
	if p.sendDigit() {
		return
	}
	speech := p.fill()
	// The marker starts the stream and every talkspurt after silence.
	marker := p.first || (speech && p.wasSilent)
	if p.sendPCM(marker) {
		p.first, p.wasSilent = false, !speech
	}
}

// sendPCM encodes and sends the packet in p.pcm, or only advances the
// timestamp while the far end does not want our audio (hold). It reports
// whether a packet went out.
func (p *pacer) sendPCM(marker bool) bool {
	if !p.leg.sending() {
		p.leg.session.SkipSamples(uint32(p.samples))
		return false
	}
	n := Encode(p.enc, p.payload[:], p.pcm[:p.samples])
	if err := p.leg.session.WriteAudio(p.pt, marker, p.payload[:n], uint32(p.samples)); err != nil {
		p.leg.log.Debug("rtp write failed", "error", err)
	}
	return true
}

// fill builds one packet of PCM from the playout queue, padding with
// silence; it reports whether any agent audio went in.
func (p *pacer) fill() bool {
	// A clear (barge-in) also drops the rest of a frame already taken.
	if c := p.leg.playout.Clears(); c != p.clears {
		p.clears, p.carryAt = c, p.carryN
	}
	speech := false
	for have := 0; have < p.samples; {
		if p.carryAt == p.carryN {
			allowPartial := p.stalls >= 2
			if !p.leg.playout.NextFrame(p.carry[:], allowPartial) {
				if p.leg.playout.Buffered() > 0 {
					p.stalls++
				}
				clear(p.pcm[have:p.samples])
				return speech
			}
			p.stalls = 0
			p.carryN, p.carryAt = FrameSamples, 0
			p.leg.framesOut.Add(1)
		}
		n := copy(p.pcm[have:p.samples], p.carry[p.carryAt:p.carryN])
		p.carryAt += n
		have += n
		speech = true
	}
	return speech
}

// sendDigit sends the next telephone-event packet (or in-band tone) when a
// digit is in progress or queued; it reports whether it used this tick.
func (p *pacer) sendDigit() bool {
	if p.gap > 0 {
		p.gap--
		return false
	}
	if p.digit == nil && len(p.inband) == 0 {
		select {
		case d := <-p.leg.digits:
			p.startDigit(d)
		default:
			return false
		}
	}
	if len(p.inband) > 0 {
		n := min(p.samples, len(p.inband))
		copy(p.pcm[:], p.inband[:n])
		clear(p.pcm[n:p.samples])
		p.inband = p.inband[n:]
		if len(p.inband) == 0 {
			p.startGap()
		}
		p.sendPCM(false)
		return true
	}
	n, marker, done := p.digit.Next(p.event[:])
	if p.leg.sending() {
		_ = p.leg.session.WriteEvent(p.tePT, marker, p.digitTS, p.event[:n])
	}
	p.leg.session.SkipSamples(uint32(p.samples))
	if done {
		p.digit = nil
		p.startGap()
	}
	return true
}

// maxShed bounds what one stall may drop (100 ms of audio).
const maxShed = 5

const (
	digitDuration = 100 * time.Millisecond
	digitGap      = 60 // ms of audio between digits
)

// startGap leaves digitGap of plain audio before the next digit.
func (p *pacer) startGap() { p.gap = digitGap / int(p.ptime/time.Millisecond) }

func (p *pacer) startDigit(d rune) {
	code, _ := rtp.DigitCode(d)
	if p.hasTE {
		p.digit = rtp.NewEventSender(code, digitDuration, p.ptime, 8000, 10)
		p.digitTS = p.leg.session.Timestamp()
		return
	}
	p.inband = DTMFTone(d, digitDuration)
}
