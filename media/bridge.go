package media

import (
	"errors"
	"sync/atomic"

	pionrtp "github.com/pion/rtp"
	"github.com/zaf/g711"
)

// Bridge connects two started legs leg to leg: each packet one receives is
// sent on by the other as it arrives, with no pacing wait and no playout
// queue. Same codec: the payload is copied untouched; PCMU and PCMA are
// converted byte by byte. RFC 4733 events pass through when both legs
// negotiated telephone-event (in-band DTMF travels inside the audio).
// While bridged, each leg's pacer stays quiet. Unbridge undoes it.
func Bridge(a, b *Leg) error {
	if !a.started.Load() || !b.started.Load() {
		return errors.New("media: bridge: both legs must be started")
	}
	ab, err := newRelay(a, b)
	if err != nil {
		return err
	}
	ba, err := newRelay(b, a)
	if err != nil {
		return err
	}
	a.bridged.Store(true)
	b.bridged.Store(true)
	a.relay.Store(ab)
	b.relay.Store(ba)
	return nil
}

// Unbridge stops relaying between a and b; their pacers resume.
func Unbridge(a, b *Leg) {
	a.relay.Store(nil)
	b.relay.Store(nil)
	a.bridged.Store(false)
	b.bridged.Store(false)
}

// relay forwards one direction of a bridge. It runs on the source leg's
// reader goroutine only, so its state needs no lock.
type relay struct {
	to      *Leg
	inPT    uint8
	outPT   uint8
	inTE    int // -1: the source has no telephone-event
	outTE   uint8
	passDT  bool // both sides have telephone-event
	convert func(byte) byte

	started  bool
	lastTS   uint32 // source timestamp of the last audio packet
	lastLen  uint32 // its samples
	eventSrc uint32 // source timestamp of the event being relayed
	eventDst uint32 // the timestamp it carries on the other leg
	inEvent  bool
	buf      [maxPacketSamples]byte

	packets atomic.Uint64
}

func newRelay(from, to *Leg) (*relay, error) {
	from.mu.Lock()
	in := from.neg
	from.mu.Unlock()
	to.mu.Lock()
	out := to.neg
	to.mu.Unlock()
	inEnc, ok1 := EncodingFor(in.Codec)
	outEnc, ok2 := EncodingFor(out.Codec)
	if !ok1 || !ok2 {
		return nil, errors.New("media: bridge: unsupported codec")
	}
	r := &relay{to: to, inPT: in.Codec.PayloadType, outPT: out.Codec.PayloadType, inTE: -1, outTE: out.TelephoneEvent}
	if in.HasTelephoneEvent {
		r.inTE = int(in.TelephoneEvent)
	}
	r.passDT = in.HasTelephoneEvent && out.HasTelephoneEvent
	switch {
	case inEnc == outEnc:
	case inEnc == PCMU:
		r.convert = g711.Ulaw2AlawFrame
	default:
		r.convert = g711.Alaw2UlawFrame
	}
	return r, nil
}

// forward sends p on the other leg. It does not allocate.
func (r *relay) forward(p *pionrtp.Packet) {
	out := r.to.session
	switch {
	case p.PayloadType == r.inPT:
		n := uint32(len(p.Payload))
		if r.started {
			// Keep the other side's clock in step across lost packets and
			// silence suppression: advance by the source's gap.
			if gap := p.Timestamp - r.lastTS - r.lastLen; gap > 0 && gap < 8000*5 {
				out.SkipSamples(gap)
			}
		}
		marker := p.Marker || !r.started
		r.started, r.lastTS, r.lastLen, r.inEvent = true, p.Timestamp, n, false
		if !r.to.sending() {
			out.SkipSamples(n)
			return
		}
		payload := p.Payload
		if r.convert != nil {
			m := copy(r.buf[:], payload)
			for i := range m {
				r.buf[i] = r.convert(r.buf[i])
			}
			payload = r.buf[:m]
		}
		if err := out.WriteAudio(r.outPT, marker, payload, n); err == nil {
			r.packets.Add(1)
		}
	case int(p.PayloadType) == r.inTE && r.passDT:
		if !r.inEvent || p.Timestamp != r.eventSrc {
			r.inEvent, r.eventSrc, r.eventDst = true, p.Timestamp, out.Timestamp()
		}
		if !r.to.sending() {
			return
		}
		// The event keeps the timestamp of its start (RFC 4733 §2.5.1.2);
		// the audio after it moves the clock on by the source's gap.
		if err := out.WriteEvent(r.outTE, p.Marker, r.eventDst, p.Payload); err == nil {
			r.packets.Add(1)
		}
	}
}
