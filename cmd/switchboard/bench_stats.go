package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// latencyHist is a lock-free histogram of durations: 1 µs buckets below
// 1 ms, 10 µs below 10 ms, 100 µs below 100 ms, 1 ms below 10 s. Many
// goroutines record into one histogram at 100k samples/s, so a sample costs
// one atomic add and no allocation; the resolution is finer than anything
// the percentiles are compared against.
type latencyHist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const histBuckets = 1000 + 900 + 900 + 9900 + 1 // the last one: 10 s and over

func histBucket(d time.Duration) int {
	us := d.Microseconds()
	switch {
	case us < 0:
		return 0
	case us < 1000:
		return int(us)
	case us < 10_000:
		return 1000 + int((us-1000)/10)
	case us < 100_000:
		return 1900 + int((us-10_000)/100)
	case us < 10_000_000:
		return 2800 + int((us-100_000)/1000)
	}
	return histBuckets - 1
}

// bucketUpper is the upper bound of bucket i: percentiles are reported
// conservatively, never below the true value.
func bucketUpper(i int) time.Duration {
	var us int64
	switch {
	case i < 1000:
		us = int64(i) + 1
	case i < 1900:
		us = 1000 + int64(i-1000+1)*10
	case i < 2800:
		us = 10_000 + int64(i-1900+1)*100
	default:
		us = 100_000 + int64(i-2800+1)*1000
	}
	return time.Duration(us) * time.Microsecond
}

func (h *latencyHist) add(d time.Duration) {
	h.counts[histBucket(d)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// quantile returns the nearest-rank q-quantile (0 < q <= 1), or 0 when empty.
func (h *latencyHist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	rank = max(1, min(rank, n))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(bucketUpper(i), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

func (h *latencyHist) summary() string {
	if h.n.Load() == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)",
		fmtDur(h.quantile(.5)), fmtDur(h.quantile(.9)), fmtDur(h.quantile(.99)), fmtDur(time.Duration(h.max.Load())), h.n.Load())
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(time.Millisecond).String()
}

// procSample is one reading of a process's CPU time and memory.
type procSample struct {
	at       time.Time
	cpuTicks uint64 // utime + stime, in clock ticks
	rssKB    uint64
	calls    int // calls up at the bench tool when the sample was taken
	machine  cpuStat
}

// clockTicks is USER_HZ. Linux has reported 100 to user space on every
// architecture for decades (the kernel's internal HZ is not exposed), and Go
// has no sysconf without cgo.
const clockTicks = 100

// readProc reads /proc/<pid>/stat (utime, stime) and /proc/<pid>/status
// (VmRSS).
func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("bench: gateway cpu: %w", err)
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("bench: /proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state is field 3, so utime (14) and stime (15) are f[11], f[12].
	if len(f) < 13 {
		return s, fmt.Errorf("bench: /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("bench: /proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	s.cpuTicks = ut + st
	s.machine, _ = readCPUStat()
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("bench: gateway rss: %w", err)
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			s.rssKB, err = strconv.ParseUint(kb, 10, 64)
			if err != nil {
				return s, fmt.Errorf("bench: VmRSS %q: %w", v, err)
			}
			return s, nil
		}
	}
	return s, fmt.Errorf("bench: /proc/%d/status: no VmRSS", pid)
}

// cpuPercent is the CPU used between two samples as a percentage of one core.
func cpuPercent(a, b procSample) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return 0
	}
	return float64(b.cpuTicks-a.cpuTicks) / clockTicks / wall * 100
}

// cpuStat is the machine's total and idle jiffies from /proc/stat.
type cpuStat struct{ total, idle uint64 }

func readCPUStat() (cpuStat, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return cpuStat{}, false
	}
	var c cpuStat
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuStat{}, false
		}
		if i < 8 { // user..steal; guest time is already in user
			c.total += n
		}
		if i == 3 || i == 4 { // idle, iowait
			c.idle += n
		}
	}
	return c, true
}

// machineBusy is how busy all CPUs were between two samples, in percent of
// the whole machine; -1 when unknown.
func machineBusy(a, b procSample) float64 {
	total := b.machine.total - a.machine.total
	if total == 0 || b.machine.total < a.machine.total {
		return -1
	}
	return 100 * float64(total-(b.machine.idle-a.machine.idle)) / float64(total)
}
