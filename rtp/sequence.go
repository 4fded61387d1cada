package rtp

// Limits from RFC 3550 A.1: a jump of more than maxDropout forward or maxMisorder backward
// is taken as a possible restart of the sender and needs a second, consecutive packet to be
// believed.
const (
	maxDropout  = 3000
	maxMisorder = 100
	seenWindow  = 64 // how far back duplicates are told from late packets
	noBadSeq    = 1 << 16
)

// verdict is what to do with one packet of the current source.
type verdict uint8

const (
	verdictDeliver   verdict = iota // deliver now
	verdictHold                     // exactly one packet is missing before it: keep it
	verdictFillGap                  // the missing packet: deliver it, then the held one
	verdictRestart                  // a confirmed jump: restart the sequence here, deliver
	verdictDuplicate                // seen already
	verdictLate                     // older than the last delivered: too late to deliver
	verdictProbation                // an implausible jump: dropped unless the next one follows it
)

// sequencer orders one source's packets ("reorder only, never wait longer than one packet")
// and keeps the RFC 3550 A.1/A.3 counters behind loss reporting. It never looks at a clock.
type sequencer struct {
	started bool
	last    uint16 // last delivered
	seen    uint64 // bit i set: last-i arrived
	held    bool   // a packet last+2 is waiting for last+1
	badSeq  uint32 // A.1 bad_seq: the sequence number that would confirm a jump

	baseSeq       uint16
	maxSeq        uint16
	cycles        uint64 // wraps of maxSeq, times 65536
	received      uint64 // distinct packets that arrived (late ones included, duplicates not)
	expectedPrior uint64
	receivedPrior uint64
}

// start begins a new sequence at seq, which counts as received and delivered.
func (q *sequencer) start(seq uint16) {
	*q = sequencer{started: true, last: seq, seen: 1, badSeq: noBadSeq, baseSeq: seq, maxSeq: seq, received: 1}
}

// heldSeq is the sequence number of the held packet, valid while held.
func (q *sequencer) heldSeq() uint16 { return q.last + 2 }

// classify decides about a packet with sequence number seq of a started sequence.
// flushHeld asks the caller to deliver the held packet first: a packet that is not the
// missing one means we stop waiting (the gap counts as lost unless it shows up late).
func (q *sequencer) classify(seq uint16) (flushHeld bool, v verdict) {
	if q.held {
		if seq == q.last+1 {
			q.held = false
			q.count(seq)
			q.advance(seq)
			q.advance(seq + 1)
			return false, verdictFillGap
		}
		q.held = false
		q.advance(q.last + 2)
		flushHeld = true
	}

	d := int16(seq - q.last)
	switch {
	case d == 0:
		return flushHeld, verdictDuplicate
	case d < 0 && d >= -maxMisorder:
		back := uint(-d)
		if back < seenWindow {
			if q.seen&(1<<back) != 0 {
				return flushHeld, verdictDuplicate
			}
			q.seen |= 1 << back
			q.count(seq)
		}
		return flushHeld, verdictLate
	case d == 1:
		q.count(seq)
		q.advance(seq)
		return flushHeld, verdictDeliver
	case d == 2:
		q.count(seq)
		q.held = true
		return flushHeld, verdictHold
	case d > 0 && d <= maxDropout:
		q.count(seq)
		q.advance(seq)
		return flushHeld, verdictDeliver
	}
	// A jump too large to be loss or reordering: the sender may have restarted with the same
	// SSRC. Believe it only when the next packet continues from there (A.1).
	if uint32(seq) == q.badSeq {
		return flushHeld, verdictRestart // the caller restarts the sequence at seq
	}
	q.badSeq = uint32(seq + 1)
	return flushHeld, verdictProbation
}

// advance makes seq (ahead of last) the last delivered.
func (q *sequencer) advance(seq uint16) {
	shift := uint(uint16(seq - q.last))
	if shift >= 64 {
		q.seen = 0
	} else {
		q.seen <<= shift
	}
	q.seen |= 1
	q.last = seq
}

// count records a distinct arrival for loss statistics (A.1 update_seq).
func (q *sequencer) count(seq uint16) {
	q.received++
	if d := int16(seq - q.maxSeq); d > 0 {
		if seq < q.maxSeq {
			q.cycles += 1 << 16
		}
		q.maxSeq = seq
	}
}

// extendedMax is the highest sequence number received, extended with wrap cycles.
func (q *sequencer) extendedMax() uint64 { return q.cycles + uint64(q.maxSeq) }

func (q *sequencer) expected() uint64 {
	if !q.started {
		return 0
	}
	return q.extendedMax() - uint64(q.baseSeq) + 1
}

// lost is the cumulative number of packets lost (A.3); negative only in theory.
func (q *sequencer) lost() int64 {
	return int64(q.expected()) - int64(q.received)
}

// fractionLost returns the loss since the previous call as a fraction of 256 (A.3).
func (q *sequencer) fractionLost() uint8 {
	expected := q.expected()
	expectedInterval := expected - q.expectedPrior
	q.expectedPrior = expected
	receivedInterval := q.received - q.receivedPrior
	q.receivedPrior = q.received
	lostInterval := int64(expectedInterval) - int64(receivedInterval)
	if expectedInterval == 0 || lostInterval <= 0 {
		return 0
	}
	return uint8(min(lostInterval<<8/int64(expectedInterval), 255))
}

// jitterMeter is the RFC 3550 A.8 interarrival jitter estimate, in timestamp units.
type jitterMeter struct {
	have        bool
	lastTransit uint32 // arrival - timestamp, modulo 2^32
	lastTS      uint32
	lastPT      uint8
	jitter      float64
}

// update takes one arrival (in timestamp units of the local clock). Packets that repeat the
// previous timestamp (telephone-event continuations and retransmissions) carry no new timing
// and are skipped; a payload type change (audio <-> event) restarts the transit reference
// because event timestamps mark the event start, not the packet's sampling instant.
func (j *jitterMeter) update(arrival, ts uint32, pt uint8) {
	if j.have && ts == j.lastTS && pt == j.lastPT {
		return
	}
	transit := arrival - ts
	if j.have && pt == j.lastPT {
		d := int64(int32(transit - j.lastTransit))
		if d < 0 {
			d = -d
		}
		j.jitter += (float64(d) - j.jitter) / 16
	}
	j.have, j.lastTransit, j.lastTS, j.lastPT = true, transit, ts, pt
}
