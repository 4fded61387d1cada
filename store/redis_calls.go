package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// instanceInfo is what an instance publishes about itself each heartbeat,
// in its instance key and in the instances hash. The hash outlives the key,
// which is how a survivor notices that an instance vanished.
type instanceInfo struct {
	Expires int64 `json:"expires_ms"` // writer's clock, Unix ms
	Calls   int   `json:"calls"`
}

// PutCall writes the record and adds it to this instance's heartbeat. The
// call is tracked locally even when Redis cannot be reached (the error then
// wraps ErrUnavailable): the heartbeat writes it once Redis is back. Updates
// to one call should come from one goroutine, its owner's.
func (r *Redis) PutCall(ctx context.Context, c CallRecord) error {
	c, err := prepareRecord(c, r.opt.Instance, time.Now())
	if err != nil {
		return err
	}
	if r.closed() {
		return ErrClosed
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: put call %s: %w", c.ID, err)
	}
	r.mu.Lock()
	r.calls[c.ID] = c
	r.mu.Unlock()
	octx, cancel := r.op(ctx)
	defer cancel()
	_, err = r.client.Pipelined(octx, func(p redis.Pipeliner) error {
		r.writeCall(octx, p, c.ID, b, time.Now())
		return nil
	})
	return r.fail(ctx, "put call "+c.ID, err)
}

func (r *Redis) writeCall(ctx context.Context, p redis.Pipeliner, id string, rec []byte, now time.Time) {
	p.Set(ctx, r.callKey(id), rec, r.opt.TTL)
	p.ZAdd(ctx, r.key("calls"), redis.Z{Score: float64(now.Add(r.opt.TTL).UnixMilli()), Member: id})
}

// RemoveCall deletes the call. It leaves the heartbeat first, so if Redis
// cannot be reached the record still expires within TTL. It is meant for
// the owner: a call of another instance comes back with its owner's next
// heartbeat (ask the owner to hang up through Send instead).
func (r *Redis) RemoveCall(ctx context.Context, id string) error {
	r.mu.Lock()
	delete(r.calls, id)
	r.mu.Unlock()
	if r.closed() {
		return ErrClosed
	}
	octx, cancel := r.op(ctx)
	defer cancel()
	_, err := r.client.Pipelined(octx, func(p redis.Pipeliner) error {
		p.Del(octx, r.callKey(id))
		p.ZRem(octx, r.key("calls"), id)
		return nil
	})
	return r.fail(ctx, "remove call "+id, err)
}

// GetCall reads one call of any instance.
func (r *Redis) GetCall(ctx context.Context, id string) (CallRecord, bool, error) {
	if r.closed() {
		return CallRecord{}, false, ErrClosed
	}
	octx, cancel := r.op(ctx)
	defer cancel()
	b, err := r.client.Get(octx, r.callKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return CallRecord{}, false, nil
	}
	if err != nil {
		return CallRecord{}, false, r.fail(ctx, "get call "+id, err)
	}
	var c CallRecord
	if err := json.Unmarshal(b, &c); err != nil {
		return CallRecord{}, false, fmt.Errorf("store: get call %s: %w", id, err)
	}
	return c, true, nil
}

// ListCalls reads the index and then the records. An index entry whose
// record has expired (its owner died) is skipped; the heartbeat of any
// survivor prunes such entries later.
func (r *Redis) ListCalls(ctx context.Context) ([]CallRecord, error) {
	if r.closed() {
		return nil, ErrClosed
	}
	octx, cancel := r.op(ctx)
	defer cancel()
	ids, err := r.client.ZRange(octx, r.key("calls"), 0, -1).Result()
	if err != nil {
		return nil, r.fail(ctx, "list calls", err)
	}
	out := make([]CallRecord, 0, len(ids))
	const chunk = 500 // bounds one pipeline's reply in memory
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		cmds := make([]*redis.StringCmd, len(part))
		// Per-command errors are read below: redis.Nil is an expired record.
		_, _ = r.client.Pipelined(octx, func(p redis.Pipeliner) error {
			for i, id := range part {
				cmds[i] = p.Get(octx, r.callKey(id))
			}
			return nil
		})
		for i, cmd := range cmds {
			b, err := cmd.Bytes()
			if errors.Is(err, redis.Nil) {
				continue // expired: the owner died or removed it since the index was read
			}
			if err != nil {
				return nil, r.fail(ctx, "list calls", err)
			}
			var c CallRecord
			if err := json.Unmarshal(b, &c); err != nil {
				r.log.Warn("unreadable call record skipped", "call_id", part[i], "err", err)
				continue
			}
			out = append(out, c)
		}
	}
	sortCalls(out)
	return out, nil
}

func (r *Redis) heartbeatLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.opt.HeartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		// A heartbeat may take up to one interval; the ticker drops ticks
		// rather than queueing them.
		ctx, cancel := context.WithTimeout(r.ctx, r.opt.HeartbeatInterval)
		err := r.heartbeat(ctx)
		cancel()
		switch {
		case err != nil && !failing && r.ctx.Err() == nil:
			r.log.Warn("heartbeat failed; calls and slots expire after TTL unless redis returns", "err", err, "ttl", r.opt.TTL)
		case err == nil && failing:
			r.log.Info("heartbeat restored")
		}
		failing = err != nil
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeat refreshes, in one pipeline, the instance key, every call this
// instance owns and every limit slot it holds. Records that expired during
// an outage are written again from the local copy.
func (r *Redis) heartbeat(ctx context.Context) error {
	now := time.Now()
	r.mu.Lock()
	ids := make([]string, 0, len(r.calls))
	for id := range r.calls {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	info, _ := json.Marshal(instanceInfo{Expires: now.Add(r.opt.TTL).UnixMilli(), Calls: len(ids)})
	exp := make([]*redis.BoolCmd, len(ids))
	var alive *redis.StatusCmd
	var report func() bool
	// Per-command results are read below; the first one says whether Redis
	// was reached at all.
	_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		alive = p.Set(ctx, r.instanceKey(r.opt.Instance), info, r.opt.TTL)
		p.HSet(ctx, r.key("instances"), r.opt.Instance, info)
		// Entries a whole TTL past their expiry belong to calls nobody
		// refreshes; one TTL of grace absorbs clock skew between gateways.
		p.ZRemRangeByScore(ctx, r.key("calls"), "-inf", strconv.FormatInt(now.Add(-r.opt.TTL).UnixMilli(), 10))
		score := float64(now.Add(r.opt.TTL).UnixMilli())
		for i, id := range ids {
			exp[i] = p.PExpire(ctx, r.callKey(id), r.opt.TTL)
			p.ZAdd(ctx, r.key("calls"), redis.Z{Score: score, Member: id})
		}
		report = r.refreshLeases(ctx, p)
		return nil
	})
	if err := alive.Err(); err != nil {
		return err
	}
	if report() { // Redis restarted and lost its script cache
		if err := r.scripts.refresh.Load(ctx, r.client).Err(); err != nil {
			return err
		}
		_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			report = r.refreshLeases(ctx, p)
			return nil
		})
		report()
	}
	var missing []string
	for i, c := range exp {
		if c.Err() == nil && !c.Val() {
			missing = append(missing, ids[i])
		}
	}
	if len(missing) > 0 {
		r.restoreCalls(ctx, missing)
	}
	r.reapInstances(ctx, now)
	return nil
}

// restoreCalls writes records that expired while Redis was unreachable. It
// holds r.mu across the write so that a RemoveCall cannot slip in between
// the check and the write and leave a ghost behind.
func (r *Redis) restoreCalls(ctx context.Context, ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			c, ok := r.calls[id]
			if !ok {
				continue
			}
			if b, err := json.Marshal(c); err == nil {
				r.writeCall(ctx, p, id, b, time.Now())
				n++
			}
		}
		return nil
	})
	if err == nil && n > 0 {
		r.log.Info("calls written again after their records expired", "calls", n)
	}
}

// reapInstances notices instances that stopped heartbeating without
// deregistering, and logs each once (HDEL decides which survivor logs).
// Their calls and slots need no cleanup: they expire on their own.
func (r *Redis) reapInstances(ctx context.Context, now time.Time) {
	all, err := r.client.HGetAll(ctx, r.key("instances")).Result()
	if err != nil {
		return
	}
	for id, raw := range all {
		var info instanceInfo
		if id == r.opt.Instance || json.Unmarshal([]byte(raw), &info) != nil {
			continue
		}
		if info.Expires+r.opt.TTL.Milliseconds() > now.UnixMilli() {
			continue // alive, or within the grace for clock skew
		}
		if n, err := r.client.Exists(ctx, r.instanceKey(id)).Result(); err != nil || n > 0 {
			continue
		}
		if n, err := r.client.HDel(ctx, r.key("instances"), id).Result(); err == nil && n == 1 {
			r.reaped.Add(1)
			r.log.Warn("instance disappeared without deregistering; its calls and limit slots expired",
				"gone", id, "calls", info.Calls)
		}
	}
}
