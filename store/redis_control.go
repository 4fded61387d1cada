package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// replyTTL bounds how long a reply nobody collects stays in Redis.
const replyTTL = time.Minute

// ctlMessage is a request on the wire. The deadline travels with it so the
// serving instance neither starts work its sender gave up on nor works past
// the time anyone waits for the answer.
type ctlMessage struct {
	ControlRequest
	ReplyTo  string `json:"reply_to"`
	Deadline int64  `json:"deadline_ms"`
	From     string `json:"from"`
}

// Send publishes req on the owner's control channel and waits for the reply
// until ctx ends (DefaultControlTimeout when ctx has no deadline, so a dead
// peer never blocks a caller forever). Replies come back on a one-entry
// stream per request, read with XREAD BLOCK: unlike a pub/sub reply channel
// it cannot miss a reply that arrives before the sender listens, and unlike
// BLPOP its timeout has millisecond resolution.
func (r *Redis) Send(ctx context.Context, instance string, req ControlRequest) (ControlReply, error) {
	if r.closed() {
		return ControlReply{}, ErrClosed
	}
	if req.ID == "" {
		req.ID = newID()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultControlTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	replyKey := r.key("ctlreply:", req.ID)
	msg, err := json.Marshal(ctlMessage{ControlRequest: req, ReplyTo: replyKey, Deadline: deadline.UnixMilli(), From: r.opt.Instance})
	if err != nil {
		return ControlReply{}, fmt.Errorf("store: control: %w", err)
	}
	what := fmt.Sprintf("control %s %s to %s", req.Action, req.CallID, instance)
	if err := r.publish(ctx, instance, msg); errors.Is(err, ErrUnknownInstance) {
		return ControlReply{}, fmt.Errorf("store: %s: %w", what, err)
	} else if err != nil {
		return ControlReply{}, r.fail(ctx, what, err)
	}
	for {
		wait := time.Until(deadline)
		if wait < time.Millisecond {
			return ControlReply{}, fmt.Errorf("store: %s: no reply: %w", what, context.DeadlineExceeded)
		}
		// Redis checks BLOCK timeouts only every 1/hz s (100 ms by default),
		// so it is asked to give up early, which keeps the connection; near
		// the deadline the socket deadline ends the wait instead.
		if wait > 400*time.Millisecond {
			wait -= 200 * time.Millisecond
		}
		res, err := r.client.XRead(ctx, &redis.XReadArgs{Streams: []string{replyKey, "0"}, Count: 1, Block: wait}).Result()
		if errors.Is(err, redis.Nil) {
			continue // the loop ends on the deadline
		}
		if err != nil && !time.Now().Before(deadline) {
			return ControlReply{}, fmt.Errorf("store: %s: no reply: %w", what, context.DeadlineExceeded)
		}
		if err != nil {
			return ControlReply{}, r.fail(ctx, what, err)
		}
		dctx, dcancel := r.op(context.WithoutCancel(ctx))
		r.client.Del(dctx, replyKey) // best effort; replyTTL covers a failure
		dcancel()
		var rep ControlReply
		if len(res) == 0 || len(res[0].Messages) == 0 {
			return ControlReply{}, fmt.Errorf("store: %s: empty reply", what)
		}
		raw, _ := res[0].Messages[0].Values["reply"].(string)
		if err := json.Unmarshal([]byte(raw), &rep); err != nil {
			return ControlReply{}, fmt.Errorf("store: %s: bad reply: %w", what, err)
		}
		rep.ID = req.ID
		return rep, nil
	}
}

// publish fails with ErrUnknownInstance when nobody listens. PUBLISH counts
// receivers only on the node it reached in a Cluster, so there the instance
// key stands in for "alive" and a live instance that does not serve control
// costs the caller its timeout.
func (r *Redis) publish(ctx context.Context, instance string, msg []byte) error {
	octx, cancel := r.op(ctx)
	defer cancel()
	if r.cluster {
		n, err := r.client.Exists(octx, r.instanceKey(instance)).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: %s", ErrUnknownInstance, instance)
		}
	}
	n, err := r.client.Publish(octx, r.ctlChannel(instance), msg).Result()
	if err == nil && n == 0 && !r.cluster {
		return fmt.Errorf("%w: %s", ErrUnknownInstance, instance)
	}
	return err
}

// ServeControl subscribes to this instance's control channel and runs
// handle for each request in its own goroutine, so a slow transfer does not
// hold up a hangup. It returns nil when ctx ends and ErrClosed when the store
// closes, after the handlers it started have returned. go-redis resubscribes
// by itself after a connection loss; requests published meanwhile are lost
// and their senders time out.
func (r *Redis) ServeControl(ctx context.Context, handle func(context.Context, ControlRequest) ControlReply) error {
	r.mu.Lock()
	if r.closed() {
		r.mu.Unlock()
		return ErrClosed
	}
	if !r.serving.CompareAndSwap(false, true) {
		r.mu.Unlock()
		return errors.New("store: control is already being served")
	}
	r.servers.Add(1) // under mu: Close cancels under mu, so never after its Wait began
	r.mu.Unlock()
	defer r.servers.Done()
	defer r.serving.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel) // Close ends serving
	defer stop()

	ps := r.client.Subscribe(ctx, r.ctlChannel(r.opt.Instance))
	defer ps.Close()
	var handlers sync.WaitGroup
	defer handlers.Wait() // runs before ps.Close and after cancel's effect reaches handlers
	defer cancel()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			if r.closed() {
				return ErrClosed
			}
			return nil
		case m, ok := <-ch:
			if !ok {
				return ErrClosed
			}
			var msg ctlMessage
			if err := json.Unmarshal([]byte(m.Payload), &msg); err != nil || !strings.HasPrefix(msg.ReplyTo, r.key("ctlreply:")) {
				r.log.Warn("malformed control request dropped", "err", err)
				continue
			}
			deadline := time.UnixMilli(msg.Deadline)
			if time.Until(deadline) <= 0 {
				continue // the sender has given up already
			}
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				r.answer(ctx, msg, deadline, handle)
			}()
		}
	}
}

func (r *Redis) answer(ctx context.Context, msg ctlMessage, deadline time.Time, handle func(context.Context, ControlRequest) ControlReply) {
	hctx, cancel := context.WithDeadline(ctx, deadline)
	rep := handle(hctx, msg.ControlRequest)
	cancel()
	rep.ID = msg.ID
	b, err := json.Marshal(rep)
	if err != nil {
		return
	}
	// The work is done even if serving is stopping: still tell the sender.
	octx, cancel := r.op(context.WithoutCancel(ctx))
	defer cancel()
	_, err = r.client.TxPipelined(octx, func(p redis.Pipeliner) error {
		p.XAdd(octx, &redis.XAddArgs{Stream: msg.ReplyTo, Values: []any{"reply", b}})
		p.PExpire(octx, msg.ReplyTo, replyTTL)
		return nil
	})
	if err != nil {
		r.log.Warn("control reply not delivered", "call_id", msg.CallID, "action", msg.Action, "from", msg.From, "err", err)
	}
}
