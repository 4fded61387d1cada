package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// benchSampler reads the gateway's CPU time and RSS from /proc every
// --sample, with the number of calls up at that moment, and prints progress
// every --report-every (the soak's time series).
type benchSampler struct {
	o     benchOptions
	stats *benchStats
	out   io.Writer
	http  *http.Client

	mu      sync.Mutex
	samples []procSample
	self    []procSample // the bench's own process, at the same moments
	errs    int
}

func newBenchSampler(o benchOptions, stats *benchStats, out io.Writer) *benchSampler {
	return &benchSampler{o: o, stats: stats, out: out, http: &http.Client{Timeout: 2 * time.Second}}
}

func (s *benchSampler) run(ctx context.Context) {
	if s.o.pid == 0 && s.o.reportEvery == 0 {
		return
	}
	t := time.NewTicker(s.o.sample)
	defer t.Stop()
	var report <-chan time.Time
	if s.o.reportEvery > 0 {
		rt := time.NewTicker(s.o.reportEvery)
		defer rt.Stop()
		report = rt.C
	}
	s.take()
	lastReport := s.mark()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.take()
		case <-report:
			now := s.mark()
			s.progress(ctx, time.Since(start), lastReport, now)
			lastReport = now
		}
	}
}

// take records one sample (a no-op without --pid).
func (s *benchSampler) take() {
	if s.o.pid == 0 {
		return
	}
	p, err := readProc(s.o.pid)
	self, serr := readProc(os.Getpid())
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || serr != nil {
		s.errs++
		return
	}
	p.calls = int(s.stats.up.Load())
	self.calls = p.calls
	s.samples = append(s.samples, p)
	s.self = append(s.self, self)
}

// mark takes a sample now and returns its index.
func (s *benchSampler) mark() int {
	s.take()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.samples) - 1
}

func (s *benchSampler) snapshot() []procSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]procSample(nil), s.samples...)
}

func (s *benchSampler) selfSnapshot() []procSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]procSample(nil), s.self...)
}

func (s *benchSampler) progress(ctx context.Context, elapsed time.Duration, from, to int) {
	st := s.stats
	line := fmt.Sprintf("%8s  up %5d  answered %7d  failed %5d  dropped %4d",
		elapsed.Round(time.Second), st.up.Load(), st.answered.Load(), st.failed.Load(), st.dropped.Load())
	all := s.snapshot()
	if from >= 0 && to > from && to < len(all) {
		line += fmt.Sprintf("  cpu %5.1f%%  rss %6.1f MB", cpuPercent(all[from], all[to]), float64(all[to].rssKB)/1024)
	}
	if m := s.metrics(ctx); m.ok {
		line += fmt.Sprintf("  goroutines %6.0f  gw-active %5.0f  fds %5.0f", m.goroutines, m.active, m.fds)
	}
	fmt.Fprintln(s.out, line)
}

// gatewayMetrics are the few /metrics series the bench checks.
type gatewayMetrics struct {
	ok                      bool
	goroutines, active, fds float64
	heapInuse               float64
}

// metrics reads the gateway's /metrics (zero value without --admin).
func (s *benchSampler) metrics(ctx context.Context) gatewayMetrics {
	var m gatewayMetrics
	if s.o.admin == "" {
		return m
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.o.admin+"/metrics", nil)
	if err != nil {
		return m
	}
	res, err := s.http.Do(req)
	if err != nil {
		return m
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			m.goroutines, m.ok = v, true
		case "switchboard_calls_active":
			m.active = v
		case "process_open_fds":
			m.fds = v
		case "go_memstats_heap_inuse_bytes":
			m.heapInuse = v
		}
	}
	return m
}

// waitIdle polls /metrics until the gateway reports no active call, for at
// most d, and returns the last reading.
func (s *benchSampler) waitIdle(ctx context.Context, d time.Duration) gatewayMetrics {
	deadline := time.Now().Add(d)
	for {
		m := s.metrics(ctx)
		if m.ok && m.active == 0 {
			// Calls are gone; give their goroutines a moment to return.
			time.Sleep(time.Second)
			return s.metrics(ctx)
		}
		if !m.ok || time.Now().After(deadline) || ctx.Err() != nil {
			return m
		}
		time.Sleep(200 * time.Millisecond)
	}
}
