package test

// Fleet, drain and store-outage tests: gateways sharing call state through
// the Redis at 127.0.0.1:6379 (each test under its own key prefix, deleted
// at the end), graceful drain on SIGTERM, and a Redis outage in the middle
// of calls (a redis-server of the test's own, killed and restarted empty).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/test/harness"
)

const (
	fleetRedisAddr = "127.0.0.1:6379"
	fleetNumber    = "+15550100"
	fleetTTL       = time.Second // store.ttl in fleetStoreConfig
)

// fleetRedis connects to the test Redis (skipping the test when it is not
// there) and returns a client and a key prefix of the test's own. The prefix's
// keys are deleted when the test ends: the cleanup is registered before any
// gateway is started, so it runs after they have all stopped.
func fleetRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: fleetRedisAddr, DialTimeout: time.Second,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		t.Skipf("Redis not reachable at %s (fleet tests need it): %v", fleetRedisAddr, err)
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	prefix := "sbtest:fleet:" + hex.EncodeToString(nonce[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var keys []string
		iter := rdb.Scan(ctx, 0, prefix+"*", 200).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("redis cleanup: scan %s*: %v", prefix, err)
		}
		for len(keys) > 0 {
			n := min(len(keys), 200)
			if err := rdb.Del(ctx, keys[:n]...).Err(); err != nil {
				t.Errorf("redis cleanup: del: %v", err)
				break
			}
			keys = keys[n:]
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// fleetStoreConfig is the store/cdr part of a fleet gateway's config.
func fleetStoreConfig(redisURL, prefix string) string {
	return fmt.Sprintf(`store:
  type: redis
  url: %s
  prefix: %q
  heartbeat: 200ms
  ttl: %s
cdr:
  redis_stream: true
`, redisURL, prefix, fleetTTL)
}

// startFleetGateway starts a gateway on free ports with the given extra
// config sections.
// startFleetPair starts two gateways sharing one Redis under the test's own
// key prefix, with extra config for both.
func startFleetPair(t *testing.T, prefix, extra string) (a, b *harness.Gateway) {
	t.Helper()
	cfg := fleetStoreConfig("redis://"+fleetRedisAddr+"/0", prefix) + extra
	return startFleetGateway(t, cfg), startFleetGateway(t, cfg)
}

func startFleetGateway(t *testing.T, extra string) *harness.Gateway {
	t.Helper()
	sipPort := harness.FreePortPair(t)
	rtpMin, rtpMax := harness.FreeUDPPortRange(t, 20)
	gw := harness.StartGateway(t, harness.ConfigTemplate(sipPort, rtpMin, rtpMax, extra))
	if gw.AdminAddr == "" {
		t.Fatalf("gateway ready line has no admin address: %s", gw.Ready.Line())
	}
	return gw
}

// fleetInstance is the instance id a gateway announced in "gateway ready".
func fleetInstance(t *testing.T, gw *harness.Gateway) string {
	t.Helper()
	id := gw.Ready.Str("instance")
	if id == "" {
		t.Fatalf("gateway ready line has no instance: %s", gw.Ready.Line())
	}
	return id
}

// fleetCaller is a `switchboard call --json` running in the background.
type fleetCaller struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []map[string]any
	out    bytes.Buffer // stdout and stderr, as they came
	err    error        // of the process, set before done closes
}

// startFleetCaller calls sip:number@gw for duration, playing a 1 kHz tone so
// that the echo agent has media to return. extra flags go before the URI.
// The process is killed (by its PID) when the test ends, at the latest.
func startFleetCaller(t *testing.T, name string, gw *harness.Gateway, number string, duration time.Duration, extra ...string) *fleetCaller {
	t.Helper()
	callMin, callMax := harness.FreeUDPPortRange(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), duration+30*time.Second)
	args := append([]string{"call", "--json", "--tone", "1000", "--duration", duration.String(),
		"--rtp-ports", fmt.Sprintf("%d-%d", callMin, callMax)}, extra...)
	args = append(args, "sip:"+number+"@"+gw.SIPAddr)
	cmd := exec.CommandContext(ctx, harness.BuildBinary(t), args...)
	cmd.WaitDelay = 5 * time.Second
	c := &fleetCaller{name: name, cancel: cancel, done: make(chan struct{})}
	cmd.Stderr = fleetLockedWriter{c}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: start switchboard call: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			var ev map[string]any
			c.mu.Lock()
			c.out.WriteString(line + "\n")
			if json.Unmarshal([]byte(line), &ev) == nil && ev["event"] != nil {
				c.events = append(c.events, ev)
			}
			c.mu.Unlock()
		}
		err := cmd.Wait()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: switchboard call did not exit after kill", name)
		}
	})
	return c
}

type fleetLockedWriter struct{ c *fleetCaller }

func (w fleetLockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.out.Write(p)
}

func (c *fleetCaller) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func (c *fleetCaller) event(name string) (map[string]any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range c.events {
		if ev["event"] == name {
			return ev, true
		}
	}
	return nil, false
}

// waitEvent waits for the caller's first event called name.
func (c *fleetCaller) waitEvent(t *testing.T, name string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ev, ok := c.event(name); ok {
			return ev
		}
		select {
		case <-c.done:
			if ev, ok := c.event(name); ok {
				return ev
			}
			t.Fatalf("%s: switchboard call exited (%v) without a %q event:\n%s", c.name, c.exitErr(), name, c.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q event within %v:\n%s", c.name, name, timeout, c.output())
		}
	}
}

// wait waits for the process to exit and returns its exit error.
func (c *fleetCaller) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.exitErr()
	case <-time.After(timeout):
		t.Fatalf("%s: switchboard call still running after %v:\n%s", c.name, timeout, c.output())
		return nil
	}
}

func (c *fleetCaller) exitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func fleetNum(ev map[string]any, key string) float64 {
	f, _ := ev[key].(float64)
	return f
}

// fleetCallView is one entry of the admin API's GET /calls.
type fleetCallView struct {
	ID       string         `json:"id"`
	Instance string         `json:"instance"`
	From     string         `json:"from"`
	To       string         `json:"to"`
	State    string         `json:"state"`
	Transfer string         `json:"transfer"`
	Legs     []fleetLegView `json:"legs"`
}

// fleetLegView is one leg of a call in GET /calls.
type fleetLegView struct {
	CallID string `json:"call_id"`
	Role   string `json:"role"`
	Target string `json:"target"`
	State  string `json:"state"`
}

var fleetHTTP = &http.Client{Timeout: 5 * time.Second}

func fleetAdmin(t *testing.T, gw *harness.Gateway, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+gw.AdminAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := fleetHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

// fleetListCalls is GET /calls; ok is false (with the status) when it does
// not answer 200.
func fleetListCalls(t *testing.T, gw *harness.Gateway) ([]fleetCallView, int) {
	t.Helper()
	code, body := fleetAdmin(t, gw, http.MethodGet, "/calls", "")
	if code != http.StatusOK {
		return nil, code
	}
	var v struct {
		Calls   []fleetCallView `json:"calls"`
		Partial bool            `json:"partial"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET /calls: %v: %s", err, body)
	}
	if v.Partial {
		return v.Calls, fleetPartial
	}
	return v.Calls, code
}

// fleetPartial is fleetListCalls's code for a 200 that says "partial": the
// registry was unreachable and the calls are the instance's own.
const fleetPartial = 299

// fleetWaitCall polls gw's GET /calls until call id is listed and cond
// holds for it, and returns it.
func fleetWaitCall(t *testing.T, gw *harness.Gateway, id, what string, timeout time.Duration, cond func(fleetCallView) bool) fleetCallView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last fleetCallView
	for {
		calls, code := fleetListCalls(t, gw)
		if v, ok := fleetFindCall(calls, id); ok && code == http.StatusOK {
			if cond(v) {
				return v
			}
			last = v
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /calls on %s: call %s not %s within %v; last seen %+v", gw.AdminAddr, id, what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fleetFindCall(calls []fleetCallView, id string) (fleetCallView, bool) {
	for _, c := range calls {
		if c.ID == id {
			return c, true
		}
	}
	return fleetCallView{}, false
}

// fleetWaitListed polls gw's GET /calls until call id is listed (want true)
// or gone (want false), and returns how long that took.
func fleetWaitListed(t *testing.T, gw *harness.Gateway, id string, want bool, timeout time.Duration) (fleetCallView, time.Duration) {
	t.Helper()
	start := time.Now()
	var last []fleetCallView
	var lastCode int
	for time.Since(start) < timeout {
		calls, code := fleetListCalls(t, gw)
		last, lastCode = calls, code
		if code == http.StatusOK {
			if v, ok := fleetFindCall(calls, id); ok == want {
				return v, time.Since(start)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET /calls on %s: call %s listed=%v not reached within %v; last answer %d %+v",
		gw.AdminAddr, id, want, timeout, lastCode, last)
	return fleetCallView{}, 0
}

// fleetCDRs reads the CDR stream (prefix+"cdr") and decodes each entry's
// "cdr" field.
func fleetCDRs(t *testing.T, rdb *redis.Client, prefix string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	msgs, err := rdb.XRange(ctx, prefix+"cdr", "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %scdr: %v", prefix, err)
	}
	out := make([]map[string]any, 0, len(msgs))
	for _, m := range msgs {
		raw, _ := m.Values["cdr"].(string)
		var cdr map[string]any
		if err := json.Unmarshal([]byte(raw), &cdr); err != nil {
			t.Fatalf("stream entry %s: field cdr is not JSON: %v: %q (entry %v)", m.ID, err, raw, m.Values)
		}
		out = append(out, cdr)
	}
	return out
}

// fleetWaitCDRs polls the stream until it holds at least n records.
func fleetWaitCDRs(t *testing.T, rdb *redis.Client, prefix string, n int, timeout time.Duration) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cdrs := fleetCDRs(t, rdb, prefix)
		if len(cdrs) >= n {
			return cdrs
		}
		if time.Now().After(deadline) {
			t.Fatalf("CDR stream %scdr holds %d records after %v, want %d: %v", prefix, len(cdrs), timeout, n, cdrs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func fleetCDRFor(cdrs []map[string]any, callID string) (map[string]any, int) {
	var found map[string]any
	n := 0
	for _, c := range cdrs {
		if c["call_id"] == callID {
			found = c
			n++
		}
	}
	return found, n
}

// fleetCheckCDR checks the fields every CDR carries and, for an answered
// call, its media summary (at least minPackets each way).
func fleetCheckCDR(t *testing.T, what string, cdr map[string]any, instance, reason, hungUpBy string, minPackets float64) {
	t.Helper()
	if cdr == nil {
		t.Errorf("%s: no CDR", what)
		return
	}
	if s, _ := cdr["call_id"].(string); s == "" {
		t.Errorf("%s: CDR without call_id: %v", what, cdr)
	}
	if s, _ := cdr["from"].(string); !strings.Contains(s, "switchboard-call") {
		t.Errorf("%s: CDR from = %q, want the caller (switchboard-call)", what, s)
	}
	if s, _ := cdr["to"].(string); !strings.Contains(s, fleetNumber) {
		t.Errorf("%s: CDR to = %q, want %s", what, s, fleetNumber)
	}
	if cdr["end_reason"] != reason {
		t.Errorf("%s: CDR end_reason = %v, want %s", what, cdr["end_reason"], reason)
	}
	if cdr["hung_up_by"] != hungUpBy {
		t.Errorf("%s: CDR hung_up_by = %v, want %s", what, cdr["hung_up_by"], hungUpBy)
	}
	if s, _ := cdr["invite_at"].(string); s == "" {
		t.Errorf("%s: CDR without invite_at: %v", what, cdr)
	} else if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		t.Errorf("%s: CDR invite_at %q: %v", what, s, err)
	}
	if cdr["instance"] != instance {
		t.Errorf("%s: CDR instance = %v, want %s", what, cdr["instance"], instance)
	}
	md, _ := cdr["media"].(map[string]any)
	if minPackets == 0 {
		if md != nil {
			t.Errorf("%s: refused call's CDR has media %v", what, md)
		}
		return
	}
	if md == nil {
		t.Errorf("%s: answered call's CDR has no media: %v", what, cdr)
		return
	}
	if md["codec"] != "PCMU" {
		t.Errorf("%s: CDR media codec = %v, want PCMU", what, md["codec"])
	}
	if rx, tx := fleetNum(md, "packets_received"), fleetNum(md, "packets_sent"); rx < minPackets || tx < minPackets {
		t.Errorf("%s: CDR media packets received %v sent %v, want at least %v each", what, rx, tx, minPackets)
	}
	if s, _ := cdr["answer_at"].(string); s == "" {
		t.Errorf("%s: answered call's CDR has no answer_at", what)
	}
}

// fleetSkipShort skips end-to-end tests under -short.
func fleetSkipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
}

// TestFleetSharedLimitAndCDR: two gateways share a per-number limit of one
// call through Redis, see each other's calls in GET /calls, and write one
// CDR per call to the shared stream.
func TestFleetSharedLimitAndCDR(t *testing.T) {
	fleetSkipShort(t)
	t.Parallel()
	rdb, prefix := fleetRedis(t)
	a, b := startFleetPair(t, prefix, "limits:\n  per_number: 1\n  reject_code: 486\n")
	instA, instB := fleetInstance(t, a), fleetInstance(t, b)
	if instA == instB {
		t.Fatalf("both gateways are instance %q", instA)
	}

	// 1: a long call on A holds the number's only slot.
	first := startFleetCaller(t, "call 1 (A)", a, fleetNumber, 4*time.Second)
	firstID, _ := first.waitEvent(t, "answered", 10*time.Second)["call_id"].(string)
	if firstID == "" {
		t.Fatalf("call 1: answered event without call_id:\n%s", first.output())
	}

	// 2: the same number on B is refused with the configured code.
	second := startFleetCaller(t, "call 2 (B)", b, fleetNumber, 2*time.Second)
	if err := second.wait(t, 10*time.Second); err == nil {
		t.Errorf("call 2: switchboard call exited 0 for a refused call:\n%s", second.output())
	}
	failed, ok := second.event("failed")
	if _, answered := second.event("answered"); answered || !ok || !strings.Contains(fmt.Sprint(failed["error"]), "486") {
		t.Errorf("call 2: want a failed event with 486 and no answer; output:\n%s", second.output())
	}
	refused := b.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call ended"))
	if refused.Str("reason") != "limit" || refused.Int("status") != 486 {
		t.Errorf("B's call ended line = %s, want reason limit, status 486", refused.Line())
	}
	secondID := refused.Str("call_id")

	// B lists A's call as A's.
	view, _ := fleetWaitListed(t, b, firstID, true, 3*time.Second)
	if view.Instance != instA {
		t.Errorf("B's GET /calls shows call 1 on instance %q, want A's %q", view.Instance, instA)
	}
	if !strings.Contains(view.To, fleetNumber) {
		t.Errorf("B's GET /calls shows call 1 to %q, want %s", view.To, fleetNumber)
	}

	// When call 1 has ended (A's "call ended" comes after its slot is
	// released), B takes the number.
	if err := first.wait(t, 15*time.Second); err != nil {
		t.Fatalf("call 1: %v\n%s", err, first.output())
	}
	if ended, _ := first.event("ended"); ended["reason"] != "local_hangup" {
		t.Errorf("call 1 ended = %v, want local_hangup", ended)
	}
	endA := a.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call ended"))
	third := startFleetCaller(t, "call 3 (B)", b, fleetNumber, time.Second)
	thirdID, _ := third.waitEvent(t, "answered", 10*time.Second)["call_id"].(string)
	if err := third.wait(t, 15*time.Second); err != nil {
		t.Fatalf("call 3: %v\n%s", err, third.output())
	}

	// One CDR per call, each from the instance that handled it.
	fleetWaitCDRs(t, rdb, prefix, 3, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would show up here
	cdrs := fleetCDRs(t, rdb, prefix)
	if len(cdrs) != 3 {
		t.Errorf("CDR stream holds %d records, want 3: %v", len(cdrs), cdrs)
	}
	for _, c := range []struct {
		what, id, instance, reason, by string
		minPackets                     float64
	}{
		{"call 1", firstID, instA, "remote_bye", "caller", 150},
		{"call 2", secondID, instB, "limit", "gateway", 0},
		{"call 3", thirdID, instB, "remote_bye", "caller", 25},
	} {
		cdr, n := fleetCDRFor(cdrs, c.id)
		if n != 1 {
			t.Errorf("%s (%s): %d CDRs, want 1", c.what, c.id, n)
			continue
		}
		fleetCheckCDR(t, c.what, cdr, c.instance, c.reason, c.by, c.minPackets)
	}
	if cdr, _ := fleetCDRFor(cdrs, secondID); cdr != nil && fleetNum(cdr, "sip_status") != 486 {
		t.Errorf("call 2: CDR sip_status = %v, want 486", cdr["sip_status"])
	}
	if endA.Str("reason") != "remote_bye" {
		t.Errorf("A's call ended line = %s", endA.Line())
	}
	// No call, the refused one included, stays behind in the registry.
	for _, gw := range []*harness.Gateway{a, b} {
		deadline := time.Now().Add(3 * time.Second)
		for {
			calls, code := fleetListCalls(t, gw)
			if code == http.StatusOK && len(calls) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("GET /calls on %s after every call ended = %d %+v, want no calls", gw.AdminAddr, code, calls)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestFleetHangupAcrossInstances: POST /calls/{id}/hangup on one gateway ends
// a call that another gateway runs.
func TestFleetHangupAcrossInstances(t *testing.T) {
	fleetSkipShort(t)
	t.Parallel()
	_, prefix := fleetRedis(t)
	a, b := startFleetPair(t, prefix, "")
	instB := fleetInstance(t, b)

	call := startFleetCaller(t, "call on B", b, fleetNumber, 15*time.Second)
	id, _ := call.waitEvent(t, "answered", 10*time.Second)["call_id"].(string)
	if id == "" {
		t.Fatalf("answered event without call_id:\n%s", call.output())
	}
	view, _ := fleetWaitListed(t, a, id, true, 3*time.Second)
	if view.Instance != instB {
		t.Errorf("A's GET /calls shows the call on %q, want B's %q", view.Instance, instB)
	}

	asked := time.Now()
	code, body := fleetAdmin(t, a, http.MethodPost, "/calls/"+url.PathEscape(id)+"/hangup", `{"reason":"fleet test"}`)
	if code != http.StatusAccepted {
		t.Fatalf("POST /calls/%s/hangup on A = %d %s, want 202", id, code, body)
	}
	t.Logf("POST /calls/{id}/hangup answered %v after it was sent", time.Since(asked).Round(time.Millisecond))
	ended := call.waitEvent(t, "ended", 5*time.Second)
	t.Logf("the caller saw the call end %v after the hangup request", time.Since(asked).Round(time.Millisecond))
	if ended["reason"] != "remote_hangup" {
		t.Errorf("caller's ended event = %v, want reason remote_hangup; output:\n%s", ended, call.output())
	}
	if err := call.wait(t, 10*time.Second); err != nil {
		t.Errorf("switchboard call: %v\n%s", err, call.output())
	}
	end := b.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call ended"))
	if end.Str("reason") != "admin_hangup" || end.Str("hung_up_by") != "admin" {
		t.Errorf("B's call ended line = %s, want reason admin_hangup by admin", end.Line())
	}
	if _, ok := a.Logs.Find(harness.MsgIs("call ended")); ok {
		t.Errorf("A logged a call of its own:\n%s", a.Logs.Text())
	}
	// Hanging up a call that is gone is a 404 on either instance.
	fleetWaitListed(t, a, id, false, 3*time.Second)
	if code, body := fleetAdmin(t, a, http.MethodPost, "/calls/"+url.PathEscape(id)+"/hangup", ""); code != http.StatusNotFound {
		t.Errorf("hangup of an ended call on A = %d %s, want 404", code, body)
	}
}

// TestFleetKilledInstanceVanishes: the calls of a gateway killed with
// SIGKILL leave the fleet's registry within the TTL.
func TestFleetKilledInstanceVanishes(t *testing.T) {
	fleetSkipShort(t)
	t.Parallel()
	_, prefix := fleetRedis(t)
	a, b := startFleetPair(t, prefix, "")
	instA := fleetInstance(t, a)

	call := startFleetCaller(t, "call on A", a, fleetNumber, 20*time.Second)
	id, _ := call.waitEvent(t, "answered", 10*time.Second)["call_id"].(string)
	view, _ := fleetWaitListed(t, b, id, true, 3*time.Second)
	if view.Instance != instA {
		t.Errorf("B's GET /calls shows the call on %q, want A's %q", view.Instance, instA)
	}
	// The instance's published call count is refreshed by its heartbeat
	// (200 ms): let one pass so that the death report below counts the call.
	time.Sleep(500 * time.Millisecond)

	if err := syscall.Kill(a.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 gateway A (pid %d): %v", a.PID, err)
	}
	killed := time.Now()
	_, took := fleetWaitListed(t, b, id, false, fleetTTL+3*time.Second)
	t.Logf("A's call left B's GET /calls %v after SIGKILL (ttl %v)", (time.Since(killed)).Round(time.Millisecond), fleetTTL)
	if took > fleetTTL+1500*time.Millisecond {
		t.Errorf("A's call was listed for %v after SIGKILL, want at most ttl %v + 1.5s", took, fleetTTL)
	}
	// A survivor notices the dead instance about two TTLs after its death.
	gone := b.Logs.WaitFor(t, 4*fleetTTL+3*time.Second, func(e harness.Entry) bool {
		return e.Msg() == "instance disappeared without deregistering; its calls and limit slots expired" && e.Str("gone") == instA
	})
	if gone.Int("calls") != 1 {
		t.Errorf("B's report of A's death = %s, want calls 1", gone.Line())
	}
	if n := b.Metrics(t)["switchboard_fleet_instances_reaped_total"]; n != 1 {
		t.Errorf("B's switchboard_fleet_instances_reaped_total = %v, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !a.Exited() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !a.Exited() {
		t.Errorf("gateway A (pid %d) not reaped 5 s after SIGKILL", a.PID)
	}
	call.cancel() // its gateway is gone; the BYE would only time out
}

// fleetStopRecorder is the testing.TB the harness's Stop writes to, so the
// test can tell a clean exit (nothing logged about the exit status) from a
// non-zero one. Everything still reaches the real test.
type fleetStopRecorder struct {
	testing.TB
	mu   sync.Mutex
	logs []string
}

func (r *fleetStopRecorder) Helper() {}

func (r *fleetStopRecorder) Logf(format string, args ...any) {
	r.mu.Lock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.TB.Logf(format, args...)
}

// TestDrainOnSIGTERM: SIGTERM turns new calls and /ready away with 503 while
// the call in progress runs to its own end, then the gateway exits 0 by
// itself.
func TestDrainOnSIGTERM(t *testing.T) {
	fleetSkipShort(t)
	t.Parallel()
	gw := startFleetGateway(t, "drain:\n  timeout: 10s\n")
	if code, body := fleetAdmin(t, gw, http.MethodGet, "/ready", ""); code != http.StatusOK {
		t.Fatalf("GET /ready before the drain = %d %s", code, body)
	}

	recording := filepath.Join(t.TempDir(), "heard.wav")
	const callLen = 4 * time.Second
	first := startFleetCaller(t, "call in progress", gw, fleetNumber, callLen, "--record", recording)
	first.waitEvent(t, "answered", 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(gw.PID, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM gateway (pid %d): %v", gw.PID, err)
	}
	sigAt := time.Now()
	drain := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("draining: refusing new calls"))
	if drain.Int("active_calls") != 1 || drain.Str("timeout") != "10s" {
		t.Errorf("drain line = %s, want active_calls 1, timeout 10s", drain.Line())
	}

	second := startFleetCaller(t, "call during the drain", gw, fleetNumber, time.Second)
	if err := second.wait(t, 10*time.Second); err == nil {
		t.Errorf("call during the drain: switchboard call exited 0:\n%s", second.output())
	}
	failed, ok := second.event("failed")
	if _, answered := second.event("answered"); answered || !ok || !strings.Contains(fmt.Sprint(failed["error"]), "503") {
		t.Errorf("call during the drain: want a failed event with 503; output:\n%s", second.output())
	}
	if code, body := fleetAdmin(t, gw, http.MethodGet, "/ready", ""); code != http.StatusServiceUnavailable {
		t.Errorf("GET /ready while draining = %d %s, want 503", code, body)
	}
	if code, _ := fleetAdmin(t, gw, http.MethodGet, "/health", ""); code != http.StatusOK {
		t.Errorf("GET /health while draining = %d, want 200", code)
	}

	// The call in progress runs its full length and the caller hangs up.
	if err := first.wait(t, callLen+10*time.Second); err != nil {
		t.Fatalf("call in progress: %v\n%s", err, first.output())
	}
	ended, _ := first.event("ended")
	if ended["reason"] != "local_hangup" {
		t.Errorf("call in progress ended with %v, want local_hangup (the caller's own hang-up)", ended)
	}
	if d := fleetNum(ended, "duration_ms"); d < float64((callLen - 100*time.Millisecond).Milliseconds()) {
		t.Errorf("call in progress lasted %v ms, want its full %v", d, callLen)
	}
	// 20 ms packets: 200 for 4 s each way; the echo comes back one round
	// trip late.
	t.Logf("call in progress: %v", ended)
	sent, recv := fleetNum(ended, "rtp_sent"), fleetNum(ended, "rtp_received")
	if sent < 180 || recv < 170 || recv > sent+5 || fleetNum(ended, "rtp_lost") > 5 {
		t.Errorf("call in progress RTP sent %v received %v lost %v, want ~200 each way for %v", sent, recv, ended["rtp_lost"], callLen)
	}
	heard, err := media.ReadWAVFile(recording)
	if err != nil {
		t.Fatal(err)
	}
	if len(heard) < 8000*35/10 {
		t.Errorf("recording holds %.2f s, want about %v", float64(len(heard))/8000, callLen)
	} else if f := media.DominantFrequency(heard[8000*25/10:8000*35/10], 300, 3400, 5); f < 990 || f > 1010 {
		// 2.5-3.5 s into the call: after the SIGTERM.
		t.Errorf("echo after the SIGTERM has dominant frequency %.0f Hz, want 1000", f)
	}
	end := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call ended"))
	if end.Str("reason") != "remote_bye" {
		t.Errorf("gateway's call ended line = %s, want reason remote_bye", end.Line())
	}

	// Then the gateway stops by itself, exit status 0.
	deadline := time.Now().Add(8 * time.Second)
	for !gw.Exited() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !gw.Exited() {
		t.Fatalf("gateway still running %v after SIGTERM and its last call's end:\n%s", time.Since(sigAt).Round(time.Millisecond), gw.Logs.Text())
	}
	t.Logf("gateway exited %v after SIGTERM", time.Since(sigAt).Round(time.Millisecond))
	gw.Logs.WaitFor(t, time.Second, harness.MsgIs("drain complete"))
	if stopped := gw.Logs.WaitFor(t, time.Second, harness.MsgIs("gateway stopped")); stopped.Has("error") && stopped.Str("error") != "" {
		t.Errorf("gateway stopped with %s", stopped.Line())
	}
	if _, ok := gw.Logs.Find(harness.MsgIs("drain timeout: ending calls in progress")); ok {
		t.Errorf("the drain timed out; the call should have ended by itself")
	}
	// The harness keeps the exit status to itself; its Stop logs a
	// non-zero one, which the recorder catches.
	rec := &fleetStopRecorder{TB: t}
	gw.Stop(rec)
	for _, l := range rec.logs {
		if strings.Contains(l, "exited after SIGTERM with") {
			t.Errorf("gateway exit status not 0: %s", l)
		}
	}
}

// TestRedisOutageKeepsCallsAndCDR: the gateway's Redis (a redis-server of
// the test's own) is killed during two calls and started again empty. The
// calls go on; with on_outage: refuse a new call gets 503 and /ready says
// 503; GET /calls lists this instance's calls, marked partial. The call
// that ended meanwhile and the refused one reach the CDR stream once Redis
// is back; the gateway reconnects by itself, writes its registry again,
// reloads its scripts after NOSCRIPT (the lost limit slot is reported) and
// admits calls again.
func TestRedisOutageKeepsCallsAndCDR(t *testing.T) {
	fleetSkipShort(t)
	t.Parallel()
	srv := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: 1})
	t.Cleanup(func() { _ = rdb.Close() })
	const prefix = "sbtest:outage:" // the server is the test's own, and dies with it
	cfg := strings.Replace(fleetStoreConfig("redis://"+srv.Addr+"/0", prefix), "cdr:", "  on_outage: refuse\ncdr:", 1) +
		"limits:\n  max_calls: 2\n"
	gw := startFleetGateway(t, cfg)
	ready := func() int { code, _ := fleetAdmin(t, gw, http.MethodGet, "/ready", ""); return code }
	waitReady := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for ready() != want {
			if time.Now().After(deadline) {
				t.Fatalf("GET /ready not %d %s", want, what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	const longLen, shortLen = 10 * time.Second, 3 * time.Second
	long := startFleetCaller(t, "long call", gw, fleetNumber, longLen)
	short := startFleetCaller(t, "short call", gw, fleetNumber, shortLen)
	longID, _ := long.waitEvent(t, "answered", 10*time.Second)["call_id"].(string)
	shortID, _ := short.waitEvent(t, "answered", 10*time.Second)["call_id"].(string)
	fleetWaitListed(t, gw, longID, true, 3*time.Second)
	fleetWaitListed(t, gw, shortID, true, 3*time.Second)

	pid := srv.PID()
	srv.Kill(t)
	t.Logf("redis-server (pid %d) killed", pid)
	gw.Logs.WaitFor(t, 5*time.Second, func(e harness.Entry) bool {
		return e.Msg() == "redis unavailable" || e.Msg() == "redis unreachable"
	})
	waitReady(http.StatusServiceUnavailable, "during the outage (on_outage: refuse)")
	calls, code := fleetListCalls(t, gw)
	if _, ok := fleetFindCall(calls, longID); code != fleetPartial || !ok {
		t.Errorf("GET /calls during the outage = %d %+v, want this instance's calls marked partial", code, calls)
	}
	refused := startFleetCaller(t, "call during the outage", gw, fleetNumber, time.Second)
	if err := refused.wait(t, 10*time.Second); err == nil {
		t.Errorf("call during the outage: switchboard call exited 0:\n%s", refused.output())
	}
	if failed, ok := refused.event("failed"); !ok || !strings.Contains(fmt.Sprint(failed["error"]), "503") {
		t.Errorf("call during the outage: want a failed event with 503; output:\n%s", refused.output())
	}
	refusedEnd := gw.Logs.WaitFor(t, 5*time.Second, func(e harness.Entry) bool {
		return e.Msg() == "call ended" && e.Int("status") == 503
	})
	if err := short.wait(t, shortLen+10*time.Second); err != nil {
		t.Fatalf("short call: %v\n%s", err, short.output())
	}
	gw.Logs.WaitFor(t, 5*time.Second, func(e harness.Entry) bool {
		return e.Msg() == "call ended" && e.Str("call_id") == shortID
	})
	if code, _ := fleetAdmin(t, gw, http.MethodGet, "/health", ""); code != http.StatusOK {
		t.Errorf("GET /health during the outage = %d", code)
	}
	waitMetric(t, gw, "switchboard_cdr_buffered", 2, 2) // the short call's and the refused one's
	waitMetric(t, gw, "switchboard_store_up", 0, 0)

	srv.Restart(t) // empty: no keys, no scripts
	restarted := time.Now()
	waitReady(http.StatusOK, "after redis came back")
	t.Logf("ready again %v after redis restarted", time.Since(restarted).Round(time.Millisecond))
	cdrs := fleetWaitCDRs(t, rdb, prefix, 2, 8*time.Second)
	t.Logf("the outage's CDRs in the stream %v after redis restarted", time.Since(restarted).Round(time.Millisecond))
	fleetWaitListed(t, gw, longID, true, 3*time.Second) // written again by the heartbeat
	gw.Logs.WaitFor(t, 3*time.Second, func(e harness.Entry) bool {
		return e.Msg() == "limit slots expired while redis was unreachable; call continues uncounted" && e.Str("call_id") == longID
	})
	after := startFleetCaller(t, "call after the restart", gw, fleetNumber, time.Second)
	afterID, _ := after.waitEvent(t, "answered", 10*time.Second)["call_id"].(string)
	if err := after.wait(t, 10*time.Second); err != nil {
		t.Errorf("call after the restart: %v\n%s", err, after.output())
	}

	if err := long.wait(t, longLen+10*time.Second); err != nil {
		t.Fatalf("long call: %v\n%s", err, long.output())
	}
	ended, _ := long.event("ended")
	if ended["reason"] != "local_hangup" || fleetNum(ended, "duration_ms") < float64((longLen-100*time.Millisecond).Milliseconds()) {
		t.Errorf("long call's ended event = %v, want local_hangup after the full %v", ended, longLen)
	}
	if recv := fleetNum(ended, "rtp_received"); recv < 400 {
		t.Errorf("long call received %v RTP packets, want ~500 for %v (media must not depend on Redis)", recv, longLen)
	}

	fleetWaitCDRs(t, rdb, prefix, 4, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would show up here
	cdrs = fleetCDRs(t, rdb, prefix)
	if len(cdrs) != 4 {
		t.Errorf("CDR stream holds %d records, want 4: %v", len(cdrs), cdrs)
	}
	inst := fleetInstance(t, gw)
	for _, c := range []struct {
		what, id, reason, by string
		minPackets           float64
	}{
		{"short call (ended during the outage)", shortID, "remote_bye", "caller", 120},
		{"call refused during the outage", refusedEnd.Str("call_id"), "limit", "gateway", 0},
		{"call after the restart", afterID, "remote_bye", "caller", 25},
		{"long call (through the outage)", longID, "remote_bye", "caller", 400},
	} {
		cdr, n := fleetCDRFor(cdrs, c.id)
		if n != 1 {
			t.Errorf("%s (%s): %d CDRs, want 1", c.what, c.id, n)
			continue
		}
		fleetCheckCDR(t, c.what, cdr, inst, c.reason, c.by, c.minPackets)
	}
	fleetWaitListed(t, gw, longID, false, 3*time.Second)
	// go-redis' own logger (pool and dial failures) writes through ours.
	for _, e := range gw.Logs.All() {
		if raw := e.Str("raw"); strings.HasPrefix(raw, "redis: ") {
			t.Errorf("go-redis logged past slog: %s", raw)
			break
		}
	}
	m := gw.Metrics(t)
	if m["switchboard_store_up"] != 1 || m["switchboard_cdr_buffered"] != 0 || m["switchboard_cdr_dropped_total"] != 0 {
		t.Errorf("after the outage: store_up %v, cdr_buffered %v, cdr_dropped_total %v; want 1, 0, 0",
			m["switchboard_store_up"], m["switchboard_cdr_buffered"], m["switchboard_cdr_dropped_total"])
	}
}

// fleetHuman runs SIPp as the human a warm transfer dials, with scenario,
// on a free port; it returns the target URI and a channel that gets SIPp's
// exit code and output. SIPp's message log goes to msgLog when set.
func fleetHuman(t *testing.T, scenario, msgLog string) (string, <-chan string, <-chan int) {
	t.Helper()
	port := harness.FreeUDPPort(t)
	mediaMin, _ := harness.FreeUDPPortRange(t, 4)
	args := []string{"-sf", harness.ScenarioPath(t, scenario), "-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-mp", strconv.Itoa(mediaMin), "-m", "1", "-rtp_echo", "-timeout", "40s", "-timeout_error", "-trace_err", "-bind_local"}
	if msgLog != "" {
		args = append(args, "-trace_msg", "-message_file", msgLog)
	}
	out, code := make(chan string, 1), make(chan int, 1)
	go func() {
		stdout, _, c := harness.RunSIPp(t, t.Context(), args...)
		out <- lastLines(stdout, 30)
		code <- c
	}()
	return "sip:human@127.0.0.1:" + strconv.Itoa(port), out, code
}

// TestFleetWarmTransferInRegistry: while a bot's warm transfer runs, the
// fleet registry (GET /calls, read from Redis, and `switchboard calls`)
// shows the call transferring, the caller on hold, and the human's leg with
// its target and state; after the bridge both legs are bridged; the CDR in
// the stream has the completed transfer.
func TestFleetWarmTransferInRegistry(t *testing.T) {
	fleetSkipShort(t)
	harness.SIPpPath(t)
	t.Parallel()
	rdb, prefix := fleetRedis(t)
	target, sippOut, sippCode := fleetHuman(t, "uas_human_answer.xml", "")

	briefing, bridgeNow := make(chan struct{}), make(chan struct{})
	bot := newScriptBot(t, func(ctx context.Context, c *botConn) error {
		time.Sleep(300 * time.Millisecond)
		if err := c.send(ctx, map[string]any{"event": "transfer", "streamSid": c.Start.StreamSid,
			"transfer": map[string]any{"mode": "warm", "target": target, "context": "billing question"}}); err != nil {
			return err
		}
		states, _, err := transferStates(ctx, c)
		if err != nil {
			return err
		}
		if states[len(states)-1] != "answered" {
			return fmt.Errorf("transfer states %v, want answered", states)
		}
		close(briefing)
		select {
		case <-bridgeNow:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := c.send(ctx, map[string]any{"event": "bridge", "streamSid": c.Start.StreamSid}); err != nil {
			return err
		}
		if states, _, err = transferStates(ctx, c); err != nil {
			return err
		}
		if states[len(states)-1] != "completed" {
			return fmt.Errorf("after bridge: states %v, want completed", states)
		}
		return nil
	})
	gw := harness.StartGateway(t, wsGatewayConfig(t, bot.URL, "transfer:\n  allow: ['@127.0.0.1']\n"+
		strings.Replace(fleetStoreConfig("redis://"+fleetRedisAddr+"/0", prefix), "cdr:\n  redis_stream: true\n", "", 1)))
	caller := startFleetCaller(t, "caller", gw, fleetNumber, 8*time.Second, "--from", "+15550100001")
	id, _ := caller.waitEvent(t, "answered", 10*time.Second)["call_id"].(string)

	select {
	case <-briefing:
	case <-time.After(15 * time.Second):
		t.Fatalf("the human never answered the transfer; sipp:\n%s", <-sippOut)
	}
	v := fleetWaitCall(t, gw, id, "briefing", 3*time.Second, func(v fleetCallView) bool {
		return len(v.Legs) == 2 && v.Legs[1].State == "briefing"
	})
	if v.State != "transferring" || v.Transfer != "warm "+target+": briefing" {
		t.Errorf("call during the briefing: state %q transfer %q, want transferring, %q", v.State, v.Transfer, "warm "+target+": briefing")
	}
	if l := v.Legs[0]; l != (fleetLegView{CallID: id, Role: "caller", State: "on_hold"}) {
		t.Errorf("caller's leg during the briefing = %+v", l)
	}
	if l := v.Legs[1]; l.Role != "transfer" || l.Target != target || l.CallID == "" || l.CallID == id {
		t.Errorf("human's leg during the briefing = %+v, want role transfer, target %s and its own call-id", l, target)
	}
	out, err := exec.CommandContext(t.Context(), harness.BuildBinary(t), "calls", "--admin", "http://"+gw.AdminAddr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "TRANSFER") || !strings.Contains(string(out), "warm "+target+": briefing") {
		t.Errorf("switchboard calls during the briefing (%v):\n%s", err, out)
	}

	close(bridgeNow)
	v = fleetWaitCall(t, gw, id, "bridged", 5*time.Second, func(v fleetCallView) bool {
		return v.State == "bridged" && len(v.Legs) == 2 && v.Legs[1].State == "bridged"
	})
	if v.Legs[0].State != "bridged" || v.Transfer != "warm "+target+": completed" {
		t.Errorf("bridged call = %+v", v)
	}

	if err := caller.wait(t, 20*time.Second); err != nil {
		t.Errorf("caller: %v\n%s", err, caller.output())
	}
	if c := bot.next(t, 5*time.Second); c.scriptErr != nil {
		t.Errorf("bot script: %v", c.scriptErr)
	}
	if code := <-sippCode; code != 0 {
		t.Errorf("sipp (human) exit %d:\n%s", code, <-sippOut)
	}
	cdr, n := fleetCDRFor(fleetWaitCDRs(t, rdb, prefix, 1, 5*time.Second), id)
	transfers, _ := cdr["transfers"].([]any)
	if n != 1 || len(transfers) != 1 {
		t.Fatalf("CDR of the call = %v (%d records), want one with one transfer", cdr, n)
	}
	if tr, _ := transfers[0].(map[string]any); tr["mode"] != "warm" || tr["target"] != target || tr["outcome"] != "completed" || fleetNum(tr, "sip_code") != 200 {
		t.Errorf("CDR transfer = %v, want warm to %s, completed 200", tr, target)
	}
	fleetWaitListed(t, gw, id, false, 3*time.Second)
}

// TestFleetTransferAcrossInstances: transfer requests sent to gateway A for
// a call that gateway B runs are carried out by B, headers included, and B's
// answer comes back through A: 404 for no such call, 403 for a target off
// the allowlist, 400 for a bad target or header, 202 for an accepted one,
// then 409 while it runs. A's registry shows B's call transferring, and back
// with the caller when the human does not answer.
func TestFleetTransferAcrossInstances(t *testing.T) {
	fleetSkipShort(t)
	harness.SIPpPath(t)
	t.Parallel()
	_, prefix := fleetRedis(t)
	msgLog := filepath.Join(t.TempDir(), "human.log")
	target, sippOut, sippCode := fleetHuman(t, "uas_human_noanswer.xml", msgLog)
	a, b := startFleetPair(t, prefix, "transfer:\n  allow: ['@127.0.0.1']\n  answer_timeout: 4s\n")
	instB := fleetInstance(t, b)

	call := startFleetCaller(t, "call on B", b, fleetNumber, 15*time.Second, "--from", "+15550100001")
	id, _ := call.waitEvent(t, "answered", 10*time.Second)["call_id"].(string)
	fleetWaitListed(t, a, id, true, 3*time.Second)
	path := "/calls/" + url.PathEscape(id) + "/transfer"
	for _, tc := range []struct {
		name, path, body string
		code             int
		contains         string
	}{
		{"no such call", "/calls/no-such-call/transfer", `{"mode":"warm","target":"` + target + `"}`, 404, "no such call"},
		{"target off the allowlist", path, `{"mode":"warm","target":"sip:someone@192.0.2.1"}`, 403, "instance " + instB},
		{"not a target", path, `{"mode":"warm","target":"ftp://x"}`, 400, "bad transfer request"},
		{"header with CRLF, checked by the owner", path, `{"mode":"warm","target":"` + target + `","headers":{"X-Ticket":"42\r\nInjected: 1"}}`, 400, "X-Ticket"},
		{"accepted", path, `{"mode":"warm","target":"` + target + `","context":"billing question","headers":{"X-Ticket":"42"}}`, 202, "accepted"},
		{"one at a time", path, `{"mode":"warm","target":"` + target + `"}`, 409, "already in progress"},
	} {
		code, body := fleetAdmin(t, a, http.MethodPost, tc.path, tc.body)
		if code != tc.code || !strings.Contains(string(body), tc.contains) {
			t.Errorf("%s: POST %s on A = %d %s, want %d containing %q", tc.name, tc.path, code, body, tc.code, tc.contains)
		}
	}
	v := fleetWaitCall(t, a, id, "transferring", 3*time.Second, func(v fleetCallView) bool {
		return v.State == "transferring" && len(v.Legs) == 2
	})
	if l := v.Legs[1]; l.Role != "transfer" || l.Target != target || (l.State != "dialing" && l.State != "ringing") {
		t.Errorf("A's view of B's transfer leg = %+v, want dialing or ringing %s", l, target)
	}
	if v.Instance != instB || v.Legs[0].State != "on_hold" {
		t.Errorf("A's view of the call = %+v", v)
	}
	// answer_timeout (4 s) passes: the caller is back with the agent.
	v = fleetWaitCall(t, a, id, "back with the agent", 8*time.Second, func(v fleetCallView) bool {
		return v.State == "answered" && len(v.Legs) == 1
	})
	if v.Transfer != "warm "+target+": failed" {
		t.Errorf("transfer summary after no answer = %q", v.Transfer)
	}
	select {
	case code := <-sippCode:
		if code != 0 {
			t.Errorf("sipp (human) exit %d: the INVITE lacked the caller id or context, or no CANCEL came:\n%s", code, <-sippOut)
		}
	case <-time.After(10 * time.Second):
		t.Error("sipp (human) still running")
	}
	if log, err := os.ReadFile(msgLog); err != nil || !strings.Contains(string(log), "X-Ticket: 42") {
		t.Errorf("the human's INVITE lacks the request's header X-Ticket: 42 (%v)", err)
	}
	if code, body := fleetAdmin(t, a, http.MethodPost, "/calls/"+url.PathEscape(id)+"/hangup", ""); code != http.StatusAccepted {
		t.Errorf("hangup through A = %d %s", code, body)
	}
	call.waitEvent(t, "ended", 5*time.Second)
}

// TestFleetCDRDefaults: with no cdr section at all, every call's record
// goes to the Redis stream when the store is Redis (and no file is
// written), and to cdr.jsonl next to the config otherwise. The record has
// ids, trunk, from and to, invite/answer/end times, the end reason and who
// hung up, the rule, actions and agent, the digits, the transfers and the
// RTP summary.
func TestFleetCDRDefaults(t *testing.T) {
	fleetSkipShort(t)
	for _, tc := range []struct {
		name  string
		redis bool
	}{
		{"memory store: cdr.jsonl next to the config", false},
		{"redis store: the stream", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			extra := limitTrunk
			var rdb *redis.Client
			var prefix string
			if tc.redis {
				rdb, prefix = fleetRedis(t)
				extra += fmt.Sprintf("store:\n  type: redis\n  url: redis://%s/0\n  prefix: %q\n", fleetRedisAddr, prefix)
			}
			gw := startFleetGateway(t, extra)
			const callLen = 3 * time.Second
			call := startFleetCaller(t, "call", gw, fleetNumber, callLen, "--from", "+15550100001", "--dtmf", "1@1s,#@1500ms")
			id, _ := call.waitEvent(t, "answered", 10*time.Second)["call_id"].(string)
			// transfer.allow is empty: refused, and recorded as a failed transfer.
			if code, body := fleetAdmin(t, gw, http.MethodPost, "/calls/"+url.PathEscape(id)+"/transfer", `{"target":"sip:someone@192.0.2.1"}`); code != http.StatusForbidden {
				t.Errorf("transfer off the allowlist = %d %s, want 403", code, body)
			}
			if err := call.wait(t, callLen+10*time.Second); err != nil {
				t.Fatalf("call: %v\n%s", err, call.output())
			}

			file := filepath.Join(filepath.Dir(gw.ConfigPath), "cdr.jsonl")
			var cdr map[string]any
			n := 0
			if tc.redis {
				cdr, n = fleetCDRFor(fleetWaitCDRs(t, rdb, prefix, 1, 5*time.Second), id)
				if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s exists (%v): the stream takes the records, no file by default", file, err)
				}
			} else {
				deadline := time.Now().Add(5 * time.Second)
				for n == 0 && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
					b, _ := os.ReadFile(file)
					for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
						var rec map[string]any
						if json.Unmarshal([]byte(line), &rec) == nil && rec["call_id"] == id {
							cdr = rec
							n++
						}
					}
				}
			}
			if n != 1 {
				t.Fatalf("%d records of call %s, want 1", n, id)
			}
			t.Logf("CDR: %v", cdr)
			fleetCheckFullCDR(t, cdr, id, fleetInstance(t, gw), callLen)
		})
	}
}

// fleetCheckFullCDR checks every field of TestFleetCDRDefaults's call.
func fleetCheckFullCDR(t *testing.T, cdr map[string]any, id, instance string, callLen time.Duration) {
	t.Helper()
	str := func(k string) string { s, _ := cdr[k].(string); return s }
	for k, want := range map[string]string{"call_id": id, "instance": instance, "trunk": "carrier",
		"end_reason": "remote_bye", "hung_up_by": "caller", "rule": "default", "agent": "echo", "digits": "1#"} {
		if str(k) != want {
			t.Errorf("CDR %s = %q, want %q", k, str(k), want)
		}
	}
	if !strings.Contains(str("from"), "+15550100001") || !strings.Contains(str("to"), fleetNumber) || str("source") == "" {
		t.Errorf("CDR from %q to %q source %q", str("from"), str("to"), str("source"))
	}
	var at [3]time.Time
	for i, k := range []string{"invite_at", "answer_at", "end_at"} {
		var err error
		if at[i], err = time.Parse(time.RFC3339Nano, str(k)); err != nil {
			t.Errorf("CDR %s = %q: %v", k, str(k), err)
		}
	}
	if at[1].Before(at[0]) || at[2].Before(at[1]) || fleetNum(cdr, "setup_ms") <= 0 {
		t.Errorf("CDR times invite %v, answer %v, end %v, setup %v ms: out of order", at[0], at[1], at[2], cdr["setup_ms"])
	}
	if d := fleetNum(cdr, "duration_s"); d < callLen.Seconds()-0.3 || d > callLen.Seconds()+2 {
		t.Errorf("CDR duration_s = %v, want about %v", d, callLen.Seconds())
	}
	if got := fmt.Sprint(cdr["actions"]); got != "[answer agent echo]" {
		t.Errorf("CDR actions = %s, want [answer agent echo]", got)
	}
	transfers, _ := cdr["transfers"].([]any)
	if len(transfers) != 1 {
		t.Errorf("CDR transfers = %v, want the refused one", cdr["transfers"])
	} else if tr, _ := transfers[0].(map[string]any); tr["mode"] != "cold" || tr["target"] != "sip:someone@192.0.2.1" || tr["outcome"] != "failed" {
		t.Errorf("CDR transfer = %v, want cold to sip:someone@192.0.2.1, failed", tr)
	}
	md, _ := cdr["media"].(map[string]any)
	if md == nil {
		t.Fatalf("CDR without media: %v", cdr)
	}
	_, hasLost := md["packets_lost"]
	_, hasJitter := md["jitter_ms"]
	if md["codec"] != "PCMU" || fleetNum(md, "packets_received") < 120 || fleetNum(md, "packets_sent") < 120 ||
		!hasLost || fleetNum(md, "packets_lost") > 5 || !hasJitter {
		t.Errorf("CDR media = %v, want PCMU, ~150 packets each way, loss and jitter", md)
	}
}
