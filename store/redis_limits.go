package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// A limit is a sorted set per key: member = call id, score = the slot's
// expiry in Redis server milliseconds. Scripts read the clock with TIME so
// that gateways with skewed clocks still agree on what has expired.
// replicate_commands makes TIME before a write legal on Redis < 5; newer
// servers always replicate effects and keep it as a no-op.
const (
	acquireLua = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  if not redis.call('ZSCORE', k, ARGV[1]) and redis.call('ZCARD', k) >= tonumber(ARGV[i + 2]) then
    return i
  end
end
local exp = now + tonumber(ARGV[2])
for _, k in ipairs(KEYS) do
  redis.call('ZADD', k, exp, ARGV[1])
  redis.call('PEXPIRE', k, ARGV[2])
end
return 0`

	// refreshLua extends one lease's slots and counts those already gone. It
	// never re-adds a purged slot: the capacity may have been given to
	// another call meanwhile, and re-adding would exceed the limit.
	refreshLua = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local lost = 0
for _, k in ipairs(KEYS) do
  if redis.call('ZSCORE', k, ARGV[1]) then
    redis.call('ZADD', k, exp, ARGV[1])
    redis.call('PEXPIRE', k, ARGV[2])
  else
    lost = lost + 1
  end
end
return lost`
)

type scripts struct {
	acquire, refresh, cdr *redis.Script
}

func newScripts() scripts {
	return scripts{acquire: redis.NewScript(acquireLua), refresh: redis.NewScript(refreshLua), cdr: redis.NewScript(cdrLua)}
}

// Acquire takes a slot in every limit or in none, in one script, so two
// gateways racing for the last slot cannot both win. The lease is refreshed
// by the heartbeat until Release.
func (r *Redis) Acquire(ctx context.Context, callID string, limits []Limit) (Lease, error) {
	limits, err := normalizeLimits(callID, limits)
	if err != nil {
		return nil, err
	}
	if r.closed() {
		return nil, ErrClosed
	}
	l := &redisLease{r: r, callID: callID, keys: make([]string, len(limits))}
	if len(limits) == 0 {
		return l, nil
	}
	args := make([]any, 0, 2+len(limits))
	args = append(args, callID, r.opt.TTL.Milliseconds())
	for i, lim := range limits {
		l.keys[i] = r.limitKey(lim.Key)
		args = append(args, lim.Max)
	}
	octx, cancel := r.op(ctx)
	defer cancel()
	hit, err := r.scripts.acquire.Run(octx, r.client, l.keys, args...).Int()
	if err != nil {
		return nil, r.fail(ctx, "acquire", err)
	}
	if hit > 0 {
		if hit > len(limits) {
			return nil, fmt.Errorf("store: acquire: script returned limit %d of %d", hit, len(limits))
		}
		return nil, &LimitError{Key: limits[hit-1].Key, Max: limits[hit-1].Max}
	}
	r.mu.Lock()
	r.leases[l] = struct{}{}
	r.mu.Unlock()
	return l, nil
}

type redisLease struct {
	r      *Redis
	callID string
	keys   []string // full Redis keys
	done   bool     // released in Redis; guarded by r.mu
	lost   int      // slots found expired, as last logged; guarded by r.mu
}

// Release frees the slots. The lease leaves the heartbeat first, so if Redis
// cannot be reached the slots still expire within TTL; a later Release
// retries the removal. Once a removal succeeded, Release does nothing: a
// stale lease must not free a slot the same call id acquired again.
func (l *redisLease) Release(ctx context.Context) error {
	r := l.r
	r.mu.Lock()
	delete(r.leases, l)
	done := l.done
	r.mu.Unlock()
	if done || len(l.keys) == 0 {
		return nil
	}
	if r.closed() {
		return ErrClosed
	}
	octx, cancel := r.op(ctx)
	defer cancel()
	_, err := r.client.Pipelined(octx, func(p redis.Pipeliner) error {
		for _, k := range l.keys {
			p.ZRem(octx, k, l.callID)
		}
		return nil
	})
	if err != nil {
		return r.fail(ctx, "release "+l.callID, err)
	}
	r.mu.Lock()
	l.done = true
	r.mu.Unlock()
	return nil
}

// refreshLeases queues one refresh script per held lease on p (EVALSHA:
// thousands of leases each heartbeat would otherwise resend the script
// body). The returned function logs slots lost while Redis was out of reach
// and reports whether Redis had forgotten the script (NOSCRIPT), in which
// case the caller loads it and refreshes again.
func (r *Redis) refreshLeases(ctx context.Context, p redis.Pipeliner) func() bool {
	r.mu.Lock()
	leases := make([]*redisLease, 0, len(r.leases))
	for l := range r.leases {
		leases = append(leases, l)
	}
	r.mu.Unlock()
	ttl := strconv.FormatInt(r.opt.TTL.Milliseconds(), 10)
	cmds := make([]*redis.Cmd, len(leases))
	for i, l := range leases {
		cmds[i] = r.scripts.refresh.EvalSha(ctx, p, l.keys, l.callID, ttl)
	}
	return func() bool {
		noscript := false
		for i, c := range cmds {
			lost, err := c.Int()
			switch {
			case redis.HasErrorPrefix(err, "NOSCRIPT"):
				noscript = true
			case err == nil && lost > 0:
				r.lostSlots(leases[i], lost)
			}
		}
		return noscript
	}
}

// lostSlots logs, once per change, that a lease's slots expired while Redis
// was unreachable (or restarted empty). A lease with none left leaves the
// heartbeat: there is nothing to refresh, and refreshing would only log
// again every interval.
func (r *Redis) lostSlots(l *redisLease, lost int) {
	r.mu.Lock()
	changed := lost != l.lost
	l.lost = lost
	if lost >= len(l.keys) {
		delete(r.leases, l)
	}
	r.mu.Unlock()
	if changed {
		r.log.Warn("limit slots expired while redis was unreachable; call continues uncounted",
			"call_id", l.callID, "lost", lost)
	}
}
