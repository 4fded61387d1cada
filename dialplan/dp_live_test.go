package dialplan

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// dpLogBuffer is a goroutine-safe log sink.
type dpLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *dpLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *dpLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func dpLivePlan(to string) string {
	return "prompts: " + dpAbsPrompts() + "\nrules:\n  - name: main\n    match: {to: \"" + to +
		"\"}\n    actions: [{play: welcome.wav}]\n  - name: other\n    default: true\n    actions: [hangup]\n"
}

func dpAbsPrompts() string {
	abs, err := filepath.Abs(dpPrompts)
	if err != nil {
		panic(err)
	}
	return abs
}

func dpWrite(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLiveReloadSwapsValidAndKeepsOldOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dialplan.yaml")
	dpWrite(t, path, dpLivePlan("+1000"))
	logs := &dpLogBuffer{}
	live, err := NewLive(path, LoadOptions{}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	first := live.Current()
	if first.Route(Facts{To: "+1000"}).Name != "main" || !strings.Contains(logs.String(), "dialplan loaded") {
		t.Fatalf("first plan routes wrong or was not logged:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "hash="+first.Hash[:12]) || !strings.Contains(logs.String(), "rules=2") {
		t.Errorf("load log lacks hash or rules count:\n%s", logs)
	}

	dpWrite(t, path, dpLivePlan("+2000"))
	if err := live.Reload(); err != nil {
		t.Fatal(err)
	}
	second := live.Current()
	if second == first || second.Route(Facts{To: "+2000"}).Name != "main" {
		t.Fatal("valid change not swapped in")
	}
	if first.Route(Facts{To: "+1000"}).Name != "main" || first.Route(Facts{To: "+2000"}).Name != "other" {
		t.Fatal("a plan taken before the reload changed")
	}

	dpWrite(t, path, "rules:\n  - name: broken\n    actions: [{agent: {nme: x}}]\n")
	err = live.Reload()
	var errs LoadErrors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("reload of an invalid file: %v", err)
	}
	if live.Current() != second {
		t.Fatal("invalid file replaced the plan")
	}
	if n := strings.Count(logs.String(), "dialplan reload refused"); n != 2 {
		t.Errorf("%d refusal log lines, want one per problem:\n%s", n, logs)
	}
}

func TestLiveWatchReloadsOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dialplan.yaml")
	dpWrite(t, path, dpLivePlan("+1000"))
	logs := &dpLogBuffer{}
	live, err := NewLive(path, LoadOptions{}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	var mu sync.Mutex
	var reloads []error
	counted := func() []error { mu.Lock(); defer mu.Unlock(); return append([]error(nil), reloads...) }
	go func() {
		live.Watch(ctx, 5*time.Millisecond, func(err error) { mu.Lock(); reloads = append(reloads, err); mu.Unlock() })
		close(stopped)
	}()
	defer func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			t.Error("Watch did not return after ctx ended")
		}
	}()
	first := live.Current()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if cond() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s\n%s", what, logs)
	}

	dpWrite(t, path, "rules: [\n") // broken: refused once, old plan kept
	waitFor("refusal", func() bool { return strings.Contains(logs.String(), "dialplan reload refused") })
	time.Sleep(30 * time.Millisecond)
	if n := strings.Count(logs.String(), "dialplan reload refused"); n != 1 {
		t.Errorf("the same broken file was refused %d times", n)
	}
	if live.Current() != first {
		t.Fatal("broken file replaced the plan")
	}
	var errs LoadErrors
	if got := counted(); len(got) != 1 || !errors.As(got[0], &errs) {
		t.Fatalf("reloads reported after the broken file: %v, want one refusal", got)
	}

	dpWrite(t, path, dpLivePlan("+3000000"))
	waitFor("reload", func() bool { return live.Current().Route(Facts{To: "+3000000"}).Name == "main" })
	if first.Route(Facts{To: "+1000"}).Name != "main" {
		t.Fatal("old plan changed")
	}
	// A touch without a change is no reload.
	now := time.Now().Add(time.Second)
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := counted(); len(got) != 2 || got[1] != nil {
		t.Fatalf("reloads reported: %v, want the refusal then one success", got)
	}
}

func TestNewLiveRefusesAnInvalidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dialplan.yaml")
	dpWrite(t, path, "rules: []\n")
	live, err := NewLive(path, LoadOptions{}, nil)
	if err == nil || live != nil {
		t.Fatalf("NewLive = %v, %v", live, err)
	}
	if _, err := NewLive(filepath.Join(t.TempDir(), "missing.yaml"), LoadOptions{}, nil); err == nil {
		t.Fatal("NewLive of a missing file succeeded")
	}
}
