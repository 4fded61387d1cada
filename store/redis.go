package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for RedisOptions. The TTL is three heartbeats so that one lost or
// late heartbeat never expires a live call.
const (
	DefaultPrefix            = "switchboard:"
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultOpTimeout         = time.Second
	DefaultCDRMaxLen         = 100000
	DefaultCDRBuffer         = 10000
	DefaultControlTimeout    = 5 * time.Second
)

// RedisOptions configures NewRedis. Only Instance is required.
type RedisOptions struct {
	// Where Redis is, in the first form that is set: Client (shared, not
	// closed by Close, used as configured), URL, or Addrs. URL is
	// redis://, rediss:// or unix:// for one node; with a master_name query
	// parameter its hosts are Sentinels; with addr query parameters it
	// names Cluster seed nodes. Addrs is a go-redis UniversalOptions list:
	// with MasterName it is Sentinels, with more than one entry a Cluster.
	// With none of them set the store uses 127.0.0.1:6379.
	Client     redis.UniversalClient
	URL        string
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	DB         int

	Prefix            string        // key prefix, default DefaultPrefix; in a Cluster use a hash tag, e.g. "{switchboard}:"
	Instance          string        // this gateway's id, unique in the fleet
	HeartbeatInterval time.Duration // default DefaultHeartbeatInterval
	TTL               time.Duration // call, lease and instance TTL; default 3*HeartbeatInterval
	OpTimeout         time.Duration // bound on one Redis operation; default DefaultOpTimeout
	CDRStream         string        // default Prefix+"cdr"
	CDRMaxLen         int64         // approximate stream length (XADD MAXLEN ~); default DefaultCDRMaxLen
	CDRBuffer         int           // CDRs held during an outage; default DefaultCDRBuffer
	Logger            *slog.Logger  // default slog.Default()
}

// Redis is the Store of a gateway fleet. NewRedis does not need Redis to be
// up: the client connects lazily and reconnects by itself, Healthy reports
// the last ping, and operations fail fast with ErrUnavailable meanwhile.
//
// A Redis runs three goroutines (heartbeat, health ping, CDR flusher), all
// ended by Close, which also ends ServeControl and waits for its handlers.
type Redis struct {
	opt       RedisOptions
	client    redis.UniversalClient
	ownClient bool
	cluster   bool
	log       *slog.Logger
	scripts   scripts
	healthy   atomic.Bool

	mu     sync.Mutex
	calls  map[string]CallRecord    // calls this instance owns and heartbeats
	leases map[*redisLease]struct{} // slots this instance holds and refreshes

	reaped atomic.Uint64 // dead instances this one reported

	cdr     *cdrQueue
	cdrMark string         // this process's CDR high-water mark key
	serving atomic.Bool    // one ServeControl at a time
	servers sync.WaitGroup // ServeControl calls, which Close waits for

	ctx     context.Context // ends the background goroutines
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closing sync.Once
}

var (
	_ Store   = (*Redis)(nil)
	_ CDRSink = (*Redis)(nil)
)

// NewRedis validates opt, starts the background goroutines and returns at
// once. It fails only on bad options, never because Redis is down.
func NewRedis(ctx context.Context, opt RedisOptions) (*Redis, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	client, own, err := newClient(opt)
	if err != nil {
		return nil, err
	}
	_, cluster := client.(*redis.ClusterClient)
	r := &Redis{
		opt: opt, client: client, ownClient: own, cluster: cluster,
		log:     opt.Logger.With("component", "store", "instance", opt.Instance),
		scripts: newScripts(),
		calls:   make(map[string]CallRecord),
		leases:  make(map[*redisLease]struct{}),
		cdr:     newCDRQueue(opt.CDRBuffer),
		cdrMark: opt.Prefix + "cdrmark:" + opt.Instance + ":" + newID(),
	}
	// Background work belongs to the store, not to the caller's ctx, which
	// often is a start-up context that ends right after wiring.
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.ping(ctx)
	if !r.healthy.Load() {
		r.log.Warn("redis not reachable at start; running degraded until it is")
	}
	r.wg.Add(3)
	go r.healthLoop()
	go r.heartbeatLoop()
	go r.cdrLoop()
	return r, nil
}

func (o RedisOptions) withDefaults() (RedisOptions, error) {
	if o.Instance == "" {
		return o, errors.New("store: redis: Instance is required")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.TTL <= 0 {
		o.TTL = 3 * o.HeartbeatInterval
	}
	if o.TTL <= o.HeartbeatInterval {
		return o, fmt.Errorf("store: redis: TTL %v must exceed the heartbeat interval %v", o.TTL, o.HeartbeatInterval)
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.CDRStream == "" {
		o.CDRStream = o.Prefix + "cdr"
	}
	if o.CDRMaxLen <= 0 {
		o.CDRMaxLen = DefaultCDRMaxLen
	}
	if o.CDRBuffer <= 0 {
		o.CDRBuffer = DefaultCDRBuffer
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Instance returns this gateway's id.
func (r *Redis) Instance() string { return r.opt.Instance }

// Healthy reports whether the last ping (or operation) reached Redis.
func (r *Redis) Healthy() bool { return r.healthy.Load() }

// ReapedInstances counts the instances this one found dead (gone without
// deregistering) and reported, for metrics. Each death is counted by one
// survivor only.
func (r *Redis) ReapedInstances() uint64 { return r.reaped.Load() }

// Close stops the heartbeat, makes a last attempt to write buffered CDRs and
// deregisters the instance. It leaves calls and limit slots in place: they
// expire within TTL like those of a crashed instance, because a store
// closing does not prove that its calls ended (drain them first).
func (r *Redis) Close() error { return r.shutdown(true) }

// shutdown(false) is a crash as the fleet sees it: goroutines stop and
// nothing is cleaned up. Tests use it to kill an instance.
func (r *Redis) shutdown(graceful bool) error {
	var err error
	r.closing.Do(func() {
		if !graceful {
			r.cdr.abandon()
		}
		r.mu.Lock() // ServeControl registers under mu only while not cancelled
		r.cancel()
		r.mu.Unlock()
		r.servers.Wait()
		r.wg.Wait() // the CDR flusher makes its final attempt here
		if graceful {
			ctx, cancel := context.WithTimeout(context.Background(), r.opt.OpTimeout)
			_, e := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Del(ctx, r.instanceKey(r.opt.Instance))
				p.HDel(ctx, r.key("instances"), r.opt.Instance)
				p.Del(ctx, r.cdrMark) // nothing of ours is retried any more
				return nil
			})
			cancel()
			if e != nil {
				r.log.Warn("instance not deregistered; it expires within TTL", "err", e)
			}
		}
		if r.ownClient {
			err = r.client.Close()
		}
	})
	return err
}

func (r *Redis) closed() bool { return r.ctx.Err() != nil }

// op bounds one Redis operation so that an outage costs the caller at most
// OpTimeout, whatever deadline (or none) its own context has.
func (r *Redis) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.opt.OpTimeout)
}

// fail wraps err for the caller. Errors that mean Redis cannot be reached
// (network, timeouts, a server that is loading or failing over) also wrap
// ErrUnavailable and mark the store unhealthy until the next good ping.
// Errors caused by the caller's own context, and ordinary server replies,
// do not.
func (r *Redis) fail(parent context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if parent.Err() != nil || !unavailable(err) {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if r.healthy.Swap(false) {
		r.log.Warn("redis unavailable", "op", what, "err", err)
	}
	return fmt.Errorf("store: %s: %w: %w", what, ErrUnavailable, err)
}

func unavailable(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return true // network errors, timeouts, a closed pool
	}
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err)
}

func (r *Redis) ping(ctx context.Context) {
	ctx, cancel := r.op(ctx)
	defer cancel()
	err := r.client.Ping(ctx).Err()
	if was := r.healthy.Swap(err == nil); was != (err == nil) {
		if err == nil {
			r.log.Info("redis reachable")
		} else if was {
			r.log.Warn("redis unreachable", "err", err)
		}
	}
}

// healthLoop pings every second (faster with short test heartbeats), so
// /ready reflects Redis even when no call is using it.
func (r *Redis) healthLoop() {
	defer r.wg.Done()
	t := time.NewTicker(min(time.Second, r.opt.HeartbeatInterval))
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			r.ping(r.ctx)
		}
	}
}

func (r *Redis) key(parts ...string) string {
	k := r.opt.Prefix
	for _, p := range parts {
		k += p
	}
	return k
}

func (r *Redis) instanceKey(id string) string { return r.key("instance:", id) }
func (r *Redis) callKey(id string) string     { return r.key("call:", id) }
func (r *Redis) limitKey(k string) string     { return r.key("limit:", k) }
func (r *Redis) ctlChannel(id string) string  { return r.key("ctl:", id) }
