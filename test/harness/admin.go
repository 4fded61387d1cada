package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Metrics reads the gateway's /metrics and returns every sample without
// labels (name -> value), and labelled ones by their full series text
// (`name{label="v"}` -> value).
func (g *Gateway) Metrics(t testing.TB) map[string]float64 {
	t.Helper()
	body := g.adminGet(t, "/metrics")
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// Calls is the admin API's GET /calls: the calls in progress.
func (g *Gateway) Calls(t testing.TB) []map[string]any {
	t.Helper()
	var res struct {
		Calls []map[string]any `json:"calls"`
	}
	if err := json.Unmarshal([]byte(g.adminGet(t, "/calls")), &res); err != nil {
		t.Fatalf("harness: GET /calls: %v", err)
	}
	return res.Calls
}

// Baseline is what a gateway at rest looks like.
type Baseline struct {
	Goroutines float64
	FDs        float64
}

// TakeBaseline reads goroutines and open fds of an idle gateway.
func (g *Gateway) TakeBaseline(t testing.TB) Baseline {
	t.Helper()
	m := g.Metrics(t)
	return Baseline{Goroutines: m["go_goroutines"], FDs: m["process_open_fds"]}
}

// WaitBaseline waits up to timeout for the gateway to be back at rest: no
// active call, none listed by /calls, goroutines and open fds within slack
// of the baseline. It fails the test with what differs.
func (g *Gateway) WaitBaseline(t testing.TB, b Baseline, slack float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := g.Metrics(t)
		calls := g.Calls(t)
		var diffs []string
		if a := m["switchboard_calls_active"]; a != 0 {
			diffs = append(diffs, fmt.Sprintf("switchboard_calls_active %v", a))
		}
		if len(calls) != 0 {
			diffs = append(diffs, fmt.Sprintf("GET /calls lists %d calls: %v", len(calls), calls))
		}
		if gr := m["go_goroutines"]; gr > b.Goroutines+slack {
			diffs = append(diffs, fmt.Sprintf("goroutines %v, baseline %v", gr, b.Goroutines))
		}
		if fd := m["process_open_fds"]; fd > b.FDs+slack {
			diffs = append(diffs, fmt.Sprintf("open fds %v, baseline %v", fd, b.FDs))
		}
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: gateway not back at rest after %v: %s", timeout, strings.Join(diffs, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (g *Gateway) adminGet(t testing.TB, path string) string {
	t.Helper()
	if g.AdminAddr == "" {
		t.Fatal("harness: the gateway has no admin listener")
	}
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get("http://" + g.AdminAddr + path)
	if err != nil {
		t.Fatalf("harness: GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("harness: GET %s: %s %v\n%s", path, res.Status, err, body)
	}
	return string(body)
}
