package store

import (
	"context"
	"sync"
	"time"
)

// CDRStats reports the outage buffer of a Redis store, for metrics.
type CDRStats struct {
	Buffered int    // queued, not yet written
	Dropped  uint64 // lost: buffer overflow, rejected by Redis, or unsent at Close
}

// CDRStats returns the current buffer state.
func (r *Redis) CDRStats() CDRStats {
	r.cdr.mu.Lock()
	defer r.cdr.mu.Unlock()
	return CDRStats{Buffered: len(r.cdr.q), Dropped: r.cdr.dropped}
}

// cdrLua appends a batch to the stream, skipping records this process has
// already written. go-redis retries a command whose reply was lost, and the
// flusher retries a batch whose outcome it did not learn; the per-process
// high-water mark makes both harmless, so each record is written once.
// KEYS: stream, mark. ARGV: maxlen, mark TTL ms, then (seq, record) pairs.
const cdrLua = `
local hwm = tonumber(redis.call('GET', KEYS[2]) or '0')
for i = 3, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq > hwm then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'cdr', ARGV[i + 1])
    hwm = seq
  end
end
redis.call('SET', KEYS[2], hwm, 'PX', ARGV[2])
return hwm`

// cdrMarkTTL is how long after its last batch a process's high-water mark
// is kept: the window in which a retried batch is still recognised.
const cdrMarkTTL = 24 * time.Hour

// AppendCDR queues the record for the CDR stream (XADD MAXLEN ~) and
// returns at once: the only errors are a record that is not JSON and a
// closed store. One flusher goroutine writes the queue in order, so ending
// a call never waits on Redis. While Redis is unreachable the queue holds
// up to CDRBuffer records; when it is full the oldest record not being
// written is dropped, counted in CDRStats and logged. Records still queued
// when Close gives up are lost and counted too.
func (r *Redis) AppendCDR(_ context.Context, cdr []byte) error {
	b, err := checkCDR(cdr)
	if err != nil {
		return err
	}
	if r.closed() {
		return ErrClosed
	}
	if dropped, n := r.cdr.push(b); dropped && (n == 1 || n%1000 == 0) {
		r.log.Error("CDR buffer full; records dropped", "dropped_total", n, "buffer", r.opt.CDRBuffer)
	}
	return nil
}

// Write makes Redis a CDRSink.
func (r *Redis) Write(ctx context.Context, cdr []byte) error { return r.AppendCDR(ctx, cdr) }

func (r *Redis) cdrLoop() {
	defer r.wg.Done()
	t := time.NewTicker(min(time.Second, r.opt.HeartbeatInterval))
	defer t.Stop()
	backoff := false
	for {
		// After a failure, retry on the ticker rather than on every new
		// record, which during an outage would be a failed attempt each.
		wake := r.cdr.wake
		if backoff {
			wake = nil
		}
		select {
		case <-r.ctx.Done():
			r.finalFlush()
			return
		case <-wake:
		case <-t.C:
		}
		backoff = !r.flushCDRs(r.ctx)
	}
}

// finalFlush gives queued records one last bounded chance at Close.
func (r *Redis) finalFlush() {
	if r.cdr.isAbandoned() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.opt.OpTimeout)
	defer cancel()
	if !r.flushCDRs(ctx) {
		if n := r.cdr.discard(); n > 0 {
			r.log.Error("CDRs not delivered at close", "lost", n)
		}
	}
}

// flushCDRs writes the queue in batches, oldest first, and stops at the
// first sign of an outage. It reports whether the queue was emptied.
func (r *Redis) flushCDRs(ctx context.Context) bool {
	for {
		batch := r.cdr.head()
		if len(batch) == 0 {
			return true
		}
		args := make([]any, 0, 2+2*len(batch))
		args = append(args, r.opt.CDRMaxLen, cdrMarkTTL.Milliseconds())
		for _, e := range batch {
			args = append(args, e.seq, e.b)
		}
		octx, cancel := r.op(ctx)
		err := r.scripts.cdr.Run(octx, r.client, []string{r.opt.CDRStream, r.cdrMark}, args...).Err()
		cancel()
		last := batch[len(batch)-1].seq
		switch {
		case err == nil:
			r.cdr.settle(last)
		case unavailable(err):
			_ = r.fail(ctx, "append cdr", err) // marks the store unhealthy
			r.cdr.settle(0)
			return false
		default:
			// Redis refuses the batch (say, the stream key holds another
			// type); retrying would block every later record.
			r.log.Error("CDRs rejected by redis; dropped", "records", len(batch), "err", err)
			r.cdr.countDrops(len(batch))
			r.cdr.settle(last)
		}
	}
}

type cdrEntry struct {
	seq uint64
	b   []byte
}

// cdrQueue is the bounded outage buffer. Sequence numbers, not positions,
// say what was written, because overflow may drop entries while a batch is
// out. Overflow drops the oldest entry not in the batch being written
// (which go-redis may still deliver on a retry), so Dropped counts only
// records that were really lost; batches are at most half the buffer so
// that such an entry exists.
type cdrQueue struct {
	mu        sync.Mutex
	q         []cdrEntry
	next      uint64
	max       int
	inflight  int // entries at the head handed to the flusher
	dropped   uint64
	abandoned bool
	wake      chan struct{}
}

func newCDRQueue(size int) *cdrQueue {
	return &cdrQueue{max: size, next: 1, wake: make(chan struct{}, 1)}
}

func (q *cdrQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.q) == 0
}

// push appends b, dropping the oldest record when full, and wakes the
// flusher. It returns whether it dropped one and the total dropped.
func (q *cdrQueue) push(b []byte) (bool, uint64) {
	q.mu.Lock()
	dropped := len(q.q) >= q.max
	if dropped {
		if i := q.inflight; i < len(q.q) {
			q.q = append(q.q[:i], q.q[i+1:]...)
		} else { // a buffer of one: nothing else to drop
			q.q = q.q[1:]
		}
		q.dropped++
	}
	q.q = append(q.q, cdrEntry{seq: q.next, b: b})
	q.next++
	n := q.dropped
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return dropped, n
}

// head hands the flusher the next batch.
func (q *cdrQueue) head() []cdrEntry {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight = min(100, max(1, q.max/2), len(q.q))
	return append([]cdrEntry(nil), q.q[:q.inflight]...)
}

// settle removes the entries written up to seq and ends the batch.
func (q *cdrQueue) settle(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := 0
	for i < len(q.q) && q.q[i].seq <= seq {
		q.q[i] = cdrEntry{}
		i++
	}
	q.q = q.q[i:]
	q.inflight = 0
}

func (q *cdrQueue) countDrops(n int) {
	q.mu.Lock()
	q.dropped += uint64(n)
	q.mu.Unlock()
}

// discard empties the buffer at Close and counts what it held as dropped.
func (q *cdrQueue) discard() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.q)
	q.dropped += uint64(n)
	q.q = nil
	return n
}

func (q *cdrQueue) abandon() {
	q.mu.Lock()
	q.abandoned = true
	q.mu.Unlock()
}

func (q *cdrQueue) isAbandoned() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.abandoned
}
