package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testRedisAddr is the shared Redis of the test machine. Tests never flush
// it: each one works under its own random prefix and deletes its keys.
const testRedisAddr = "127.0.0.1:6379"

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitForLeaks(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// waitForLeaks returns the stacks of goroutines still running code of this
// package or of go-redis once every test has closed what it opened.
func waitForLeaks(patience time.Duration) string {
	deadline := time.Now().Add(patience)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "store.TestMain") || strings.Contains(g, "store.waitForLeaks") {
				continue
			}
			if strings.Contains(g, "switchboard/store.") || strings.Contains(g, "go-redis/v9") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redisPrefix skips the test when Redis is unreachable, and otherwise
// returns a fresh key prefix and a direct client for inspection. The keys
// under the prefix are deleted when the test ends, after the stores that
// the test closes with t.Cleanup (cleanups run last-in first-out).
func redisPrefix(t *testing.T) (string, *redis.Client) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testRedisAddr, DialTimeout: time.Second, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		t.Skipf("redis at %s unreachable, skipping Redis tests: %v", testRedisAddr, err)
	}
	prefix := "sbtest:" + newID()[:12] + ":"
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleanup scan: %v", err)
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("cleanup del: %v", err)
			}
		}
	})
	return prefix, c
}

// fastOptions are short timings so that expiry happens within a test.
func fastOptions(prefix, instance string, log *slog.Logger) RedisOptions {
	return RedisOptions{
		URL: "redis://" + testRedisAddr, Prefix: prefix, Instance: instance,
		// Five heartbeats per TTL: the test machine is shared and loaded,
		// and a stall of one or two heartbeats must not expire a live call.
		HeartbeatInterval: 200 * time.Millisecond, TTL: time.Second,
		OpTimeout: 300 * time.Millisecond, Logger: log,
	}
}

func openRedis(t *testing.T, opt RedisOptions) *Redis {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = testLogger(t, nil)
	}
	r, err := NewRedis(context.Background(), opt)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// logBuffer collects a store's log so a test can look for a message, and
// shows it when the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t *testing.T, into *logBuffer) *slog.Logger {
	if into == nil {
		into = &logBuffer{}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("store log:\n%s", into.String())
		}
	})
	return slog.New(slog.NewTextHandler(into, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls cond until it holds or patience runs out, and returns
// how long it took.
func eventually(t *testing.T, patience time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > patience {
			t.Fatalf("%s: not within %v", what, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}
