package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedisSharedLimit(t *testing.T) {
	prefix, _ := redisPrefix(t)
	a := openRedis(t, fastOptions(prefix, "gw-a", nil))
	b := openRedis(t, fastOptions(prefix, "gw-b", nil))
	ctx := context.Background()
	limits := []Limit{{Key: "trunk:telnyx", Max: 1}}

	lease, err := a.Acquire(ctx, "call-a", limits)
	if err != nil {
		t.Fatal(err)
	}
	// Longer than TTL: the heartbeat, not the acquire, keeps the slot.
	time.Sleep(a.opt.TTL * 3 / 2)
	_, err = b.Acquire(ctx, "call-b", limits)
	var le *LimitError
	if !errors.As(err, &le) || le.Key != "trunk:telnyx" || le.Max != 1 {
		t.Fatalf("second instance Acquire = %v, want *LimitError", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, "call-b", limits); err != nil {
		t.Fatalf("Acquire after Release = %v", err)
	}
}

func TestRedisListCallsAcrossInstances(t *testing.T) {
	prefix, _ := redisPrefix(t)
	a := openRedis(t, fastOptions(prefix, "gw-a", nil))
	b := openRedis(t, fastOptions(prefix, "gw-b", nil))
	ctx := context.Background()
	if err := a.PutCall(ctx, CallRecord{ID: "call-a", Started: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutCall(ctx, CallRecord{ID: "call-b"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(a.opt.TTL * 3 / 2) // beyond TTL: heartbeats keep both
	for _, s := range []*Redis{a, b} {
		list, err := s.ListCalls(ctx)
		if err != nil || len(list) != 2 || list[0].Instance != "gw-a" || list[1].Instance != "gw-b" {
			t.Fatalf("%s ListCalls = %+v, %v", s.Instance(), list, err)
		}
	}
	if c, ok, err := b.GetCall(ctx, "call-a"); !ok || err != nil || c.Instance != "gw-a" {
		t.Fatalf("GetCall of the other instance's call = %+v, %v, %v", c, ok, err)
	}
}

// An instance that dies without cleaning up loses its calls and its limit
// slots within TTL, and a survivor logs that it vanished.
func TestRedisInstanceDeath(t *testing.T) {
	prefix, _ := redisPrefix(t)
	var blog logBuffer
	a := openRedis(t, fastOptions(prefix, "gw-a", nil))
	b := openRedis(t, fastOptions(prefix, "gw-b", testLogger(t, &blog)))
	ctx := context.Background()
	limits := []Limit{{Key: "total", Max: 1}}
	if err := a.PutCall(ctx, CallRecord{ID: "call-a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, "call-a", limits); err != nil {
		t.Fatal(err)
	}
	time.Sleep(a.opt.TTL * 3 / 2)
	if _, err := b.Acquire(ctx, "call-b", limits); !errors.Is(err, ErrLimitReached) {
		t.Fatalf("slot of a live instance was free: %v", err)
	}

	_ = a.shutdown(false) // crash: no removal, no release, no deregistration
	ttl := a.opt.TTL
	gone := eventually(t, ttl+time.Second, "dead instance's call listed", func() bool {
		list, err := b.ListCalls(ctx)
		return err == nil && len(list) == 0
	})
	freed := eventually(t, ttl+time.Second, "dead instance's slot freed", func() bool {
		_, err := b.Acquire(ctx, "call-b", limits)
		return err == nil
	})
	// Measured from the crash, both fit in one TTL plus polling slack.
	if gone+freed > ttl+400*time.Millisecond {
		t.Fatalf("expiry took %v (call) and %v more (slot); TTL %v", gone, freed, ttl)
	}
	eventually(t, 3*time.Second, "survivor logs the vanished instance", func() bool {
		return strings.Contains(blog.String(), "instance disappeared") && strings.Contains(blog.String(), "gone=gw-a")
	})
	if n := b.ReapedInstances(); n != 1 {
		t.Errorf("survivor's ReapedInstances = %d, want 1", n)
	}
}

func TestRedisCDRStream(t *testing.T) {
	prefix, direct := redisPrefix(t)
	opt := fastOptions(prefix, "gw-a", nil)
	opt.CDRMaxLen = 1000
	r := openRedis(t, opt)
	ctx := context.Background()
	for _, rec := range []string{`{"n":1}`, `{"n":2}`, `{"n":3}`} {
		if err := r.AppendCDR(ctx, []byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []redis.XMessage
	eventually(t, 3*time.Second, "CDRs in the stream", func() bool {
		var err error
		msgs, err = direct.XRange(ctx, prefix+"cdr", "-", "+").Result()
		return err == nil && len(msgs) >= 3
	})
	if len(msgs) != 3 {
		t.Fatalf("XRANGE = %v", msgs)
	}
	for i, m := range msgs {
		if want := `{"n":` + string(rune('1'+i)) + `}`; m.Values["cdr"] != want {
			t.Fatalf("entry %d = %v, want %s", i, m.Values, want)
		}
	}
	eventually(t, time.Second, "CDR queue drained", func() bool {
		st := r.CDRStats()
		return st.Buffered == 0 && st.Dropped == 0
	})
}

func TestRedisControlAcrossInstances(t *testing.T) {
	prefix, direct := redisPrefix(t)
	a := openRedis(t, fastOptions(prefix, "gw-a", nil))
	b := openRedis(t, fastOptions(prefix, "gw-b", nil))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() {
		served <- b.ServeControl(ctx, func(_ context.Context, req ControlRequest) ControlReply {
			return ControlReply{OK: req.Action == "transfer" && req.Args["to"] == "sip:ops@example.com"}
		})
	}()
	req := ControlRequest{ID: "req-1", CallID: "call-b", Action: "transfer", Args: map[string]string{"to": "sip:ops@example.com"}}
	var rep ControlReply
	eventually(t, 3*time.Second, "gw-b serves control", func() bool {
		var err error
		rep, err = a.Send(ctx, "gw-b", req)
		return err == nil
	})
	if !rep.OK || rep.ID != "req-1" {
		t.Fatalf("reply = %+v", rep)
	}
	if n, _ := direct.Exists(ctx, prefix+"ctlreply:req-1").Result(); n != 0 {
		t.Fatal("reply stream left behind")
	}
	// gw-a is alive but serves nothing: no subscriber, an immediate error.
	start := time.Now()
	if _, err := b.Send(ctx, "gw-a", req); !errors.Is(err, ErrUnknownInstance) || time.Since(start) > time.Second {
		t.Fatalf("Send to an instance not serving = %v after %v", err, time.Since(start))
	}
	stop()
	if err := <-served; err != nil {
		t.Fatalf("ServeControl = %v", err)
	}
}

func TestRedisOptions(t *testing.T) {
	if _, err := NewRedis(context.Background(), RedisOptions{}); err == nil {
		t.Fatal("NewRedis without Instance succeeded")
	}
	bad := RedisOptions{Instance: "x", HeartbeatInterval: time.Second, TTL: time.Second}
	if _, err := NewRedis(context.Background(), bad); err == nil {
		t.Fatal("TTL not above the heartbeat interval was accepted")
	}
	for _, u := range []string{
		"redis://user:pw@localhost:6380/2",
		"rediss://localhost:6380",
		"redis://s1:26379?master_name=mymaster&addr=s2:26379",
		"redis://n1:7000?addr=n2:7000&addr=n3:7000",
		"unix:///run/redis.sock",
	} {
		if _, err := parseURL(u); err != nil {
			t.Errorf("parseURL(%q) = %v", u, err)
		}
	}
	o, _ := parseURL("redis://s1:26379?master_name=mymaster&addr=s2:26379")
	if o.MasterName != "mymaster" || len(o.Addrs) != 2 {
		t.Errorf("sentinel URL = %+v", o)
	}
	o, _ = parseURL("redis://n1:7000?addr=n2:7000")
	if !o.IsClusterMode || len(o.Addrs) != 2 {
		t.Errorf("cluster URL = %+v", o)
	}
	if _, err := parseURL("http://localhost"); err == nil {
		t.Error("http URL accepted")
	}
}
