package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// benchReport is a finished run's figures.
type benchReport struct {
	opts benchOptions

	idleFrom, idleTo, endAt     int // sample indexes
	placeWindow, wall           time.Duration
	metricsBefore, metricsAfter gatewayMetrics

	Attempted, Answered, Failed, Dropped int64
	Failures                             map[string]int
	AttemptCPS, AnsweredCPS              float64

	SetupP50, SetupP99, SetupMax          time.Duration
	InboundP50, InboundP99, InboundMax    time.Duration
	OutboundP50, OutboundP99, OutboundMax time.Duration
	RoundP50, RoundP99, RoundMax          time.Duration
	setup, inbound, outbound, round       string

	FramesSent, Warmup, BotGot, Echoes   int64
	LostInbound, LostOutbound, LostTotal int64
	LossPercent                          float64
	Dups, Late, Silence, Foreign         int64
	SendErrors, PacerStalls              int64
	BotConns, BotAbnormal, BotMalformed  int64

	// Gateway process, from /proc (zero without --pid).
	IdleCPUPercent, IdleRSSKB         float64
	PlateauCalls                      float64
	PlateauSeconds                    float64
	PlateauCPUPercent, PlateauRSSKB   float64
	CPUPerCallPercent                 float64 // above idle, % of one core
	RSSPerCallKB                      float64 // above idle
	BenchCPUPercent                   float64 // the bench itself (callers and bot) over the same stretch
	MachineBusyPercent                float64 // all CPUs, from /proc/stat, over the same stretch (-1: unknown)
	GoroutinesBefore, GoroutinesAfter float64
	ActiveAfter                       float64
}

func (r *benchReport) finish(st *benchStats, samples, self []procSample) {
	r.Attempted, r.Answered, r.Failed, r.Dropped = st.attempted.Load(), st.answered.Load(), st.failed.Load(), st.dropped.Load()
	st.mu.Lock()
	r.Failures = maps.Clone(st.failures)
	st.mu.Unlock()
	if s := r.placeWindow.Seconds(); s > 0 && r.Attempted > 1 {
		r.AttemptCPS = float64(r.Attempted-1) / s
		r.AnsweredCPS = r.AttemptCPS * float64(r.Answered) / float64(r.Attempted)
	}
	q := func(h *latencyHist) (time.Duration, time.Duration, time.Duration, string) {
		return h.quantile(.5), h.quantile(.99), time.Duration(h.max.Load()), h.summary()
	}
	r.SetupP50, r.SetupP99, r.SetupMax, r.setup = q(&st.setup)
	r.InboundP50, r.InboundP99, r.InboundMax, r.inbound = q(&st.inbound)
	r.OutboundP50, r.OutboundP99, r.OutboundMax, r.outbound = q(&st.outbound)
	r.RoundP50, r.RoundP99, r.RoundMax, r.round = q(&st.roundTrip)

	r.FramesSent, r.Warmup, r.BotGot, r.Echoes = st.framesSent.Load(), st.warmup.Load(), st.botGot.Load(), st.echoes.Load()
	r.LostTotal = r.FramesSent - r.Warmup - r.Echoes
	if r.BotGot > 0 {
		r.LostInbound = r.FramesSent - r.Warmup - r.BotGot
		r.LostOutbound = r.BotGot - r.Echoes
	}
	if d := r.FramesSent - r.Warmup; d > 0 {
		r.LossPercent = 100 * float64(r.LostTotal) / float64(d)
	}
	r.Dups, r.Late, r.Silence, r.Foreign = st.dups.Load(), st.late.Load(), st.silence.Load(), st.foreign.Load()
	r.SendErrors, r.PacerStalls = st.sendErrors.Load(), st.pacerStalls.Load()
	r.BotConns, r.BotAbnormal, r.BotMalformed = st.botConns.Load(), st.botAbnormal.Load(), st.botMalformed.Load()
	r.GoroutinesBefore, r.GoroutinesAfter, r.ActiveAfter = r.metricsBefore.goroutines, r.metricsAfter.goroutines, r.metricsAfter.active
	r.procFigures(samples, self)
}

// procFigures works out CPU and RSS per call: the gateway's CPU over the
// longest stretch of samples during which the call count stayed within 2%
// of its peak, minus its idle CPU, divided by the calls up; RSS likewise.
func (r *benchReport) procFigures(s, self []procSample) {
	if r.idleTo <= 0 || r.idleTo >= len(s) || r.idleFrom < 0 {
		return
	}
	r.IdleCPUPercent = cpuPercent(s[r.idleFrom], s[r.idleTo])
	r.IdleRSSKB = float64(s[r.idleTo].rssKB)
	end := min(r.endAt, len(s)-1)
	peak := 0
	for _, p := range s[r.idleTo:end] {
		peak = max(peak, p.calls)
	}
	if peak == 0 {
		return
	}
	floor := int(math.Ceil(0.98 * float64(peak)))
	bestFrom, bestTo := -1, -1
	for i := r.idleTo; i <= end; {
		if s[i].calls < floor {
			i++
			continue
		}
		j := i
		for j+1 <= end && s[j+1].calls >= floor {
			j++
		}
		if j-i > bestTo-bestFrom {
			bestFrom, bestTo = i, j
		}
		i = j + 1
	}
	if bestFrom < 0 || bestTo == bestFrom {
		return
	}
	var calls, rss float64
	for _, p := range s[bestFrom : bestTo+1] {
		calls += float64(p.calls)
		rss += float64(p.rssKB)
	}
	n := float64(bestTo - bestFrom + 1)
	r.PlateauCalls, r.PlateauRSSKB = calls/n, rss/n
	r.PlateauSeconds = s[bestTo].at.Sub(s[bestFrom].at).Seconds()
	r.PlateauCPUPercent = cpuPercent(s[bestFrom], s[bestTo])
	if bestTo < len(self) {
		r.BenchCPUPercent = cpuPercent(self[bestFrom], self[bestTo])
	}
	r.MachineBusyPercent = machineBusy(s[bestFrom], s[bestTo])
	r.CPUPerCallPercent = (r.PlateauCPUPercent - r.IdleCPUPercent) / r.PlateauCalls
	r.RSSPerCallKB = (r.PlateauRSSKB - r.IdleRSSKB) / r.PlateauCalls
}

func (r *benchReport) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "\nswitchboard bench: %d calls to %s, at most %d at once, %.0f calls/s, %v of media each\n",
		o.calls, o.target, o.concurrent, o.rate, o.callDuration)
	fmt.Fprintf(w, "calls      attempted %d  answered %d  failed %d  dropped %d  (placing took %v, run %v)\n",
		r.Attempted, r.Answered, r.Failed, r.Dropped, r.placeWindow.Round(time.Millisecond), r.wall.Round(time.Millisecond))
	for _, k := range slices.Sorted(maps.Keys(r.Failures)) {
		fmt.Fprintf(w, "           failure %q x%d\n", k, r.Failures[k])
	}
	fmt.Fprintf(w, "rate       %.1f calls/s attempted, %.1f answered\n", r.AttemptCPS, r.AnsweredCPS)
	fmt.Fprintf(w, "setup      INVITE -> 200 OK: %s\n", r.setup)
	fmt.Fprintf(w, "rtp        sent %d, back %d; lost %d (%.3f%%)", r.FramesSent, r.Echoes, r.LostTotal, r.LossPercent)
	if r.BotGot > 0 {
		fmt.Fprintf(w, ": %d on the way in, %d on the way out; %d warm-up frames before the bot was connected",
			r.LostInbound, r.LostOutbound, r.Warmup)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "           duplicates %d, late (> %v) %d, silence packets %d, misrouted %d, send errors %d, pacer stalls %d\n",
		r.Dups, benchRing*benchFrameTime, r.Late, r.Silence, r.Foreign, r.SendErrors, r.PacerStalls)
	if r.BotGot > 0 || o.botListen != "" {
		fmt.Fprintf(w, "latency    inbound  (RTP sent -> bot read):     %s\n", r.inbound)
		fmt.Fprintf(w, "           outbound (bot write -> RTP back):    %s\n", r.outbound)
		fmt.Fprintf(w, "           bot      connections %d, abnormal ends %d, malformed %d\n", r.BotConns, r.BotAbnormal, r.BotMalformed)
	}
	fmt.Fprintf(w, "           round trip (RTP sent -> echo back):  %s\n", r.round)
	if r.PlateauCalls > 0 {
		fmt.Fprintf(w, "gateway    idle: cpu %.2f%%, rss %.1f MB; with %.0f calls up for %.0f s: cpu %.1f%% of one core, rss %.1f MB\n",
			r.IdleCPUPercent, r.IdleRSSKB/1024, r.PlateauCalls, r.PlateauSeconds, r.PlateauCPUPercent, r.PlateauRSSKB/1024)
		fmt.Fprintf(w, "           per call: cpu %.3f%% of one core, rss %.1f KB (above idle)\n", r.CPUPerCallPercent, r.RSSPerCallKB)
		fmt.Fprintf(w, "           meanwhile the bench itself used %.1f%% of one core; the whole machine was %.0f%% busy\n", r.BenchCPUPercent, r.MachineBusyPercent)
	} else if o.pid != 0 {
		fmt.Fprintln(w, "gateway    no plateau of calls long enough to measure CPU and RSS per call (lengthen --call-duration)")
	}
	if r.metricsBefore.ok {
		fmt.Fprintf(w, "           goroutines %0.f before, %0.f after; active calls after %0.f; open fds %.0f before, %.0f after\n",
			r.GoroutinesBefore, r.GoroutinesAfter, r.ActiveAfter, r.metricsBefore.fds, r.metricsAfter.fds)
	}
}

func (r *benchReport) printJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// verdict fails the run on what must never happen on loopback: failed or
// dropped calls, media of one call reaching another, and a gateway that
// does not come back to its idle state.
func (r *benchReport) verdict() error {
	var problems []string
	if r.Failed > 0 || r.Dropped > 0 {
		problems = append(problems, fmt.Sprintf("%d calls failed and %d dropped", r.Failed, r.Dropped))
	}
	if r.Answered == 0 {
		problems = append(problems, "no call was answered")
	}
	if r.Foreign > 0 {
		problems = append(problems, fmt.Sprintf("%d packets of one call reached another", r.Foreign))
	}
	if r.metricsAfter.ok && r.ActiveAfter != 0 {
		problems = append(problems, fmt.Sprintf("the gateway still shows %.0f active calls", r.ActiveAfter))
	}
	// A few goroutines come and go (HTTP keep-alives, timers); a leak of
	// one per call does not hide under this margin.
	if r.metricsBefore.ok && r.metricsAfter.ok && r.GoroutinesAfter > r.GoroutinesBefore+20 {
		problems = append(problems, fmt.Sprintf("gateway goroutines %0.f after vs %0.f before", r.GoroutinesAfter, r.GoroutinesBefore))
	}
	if len(problems) > 0 {
		return errors.New("bench: " + strings.Join(problems, "; "))
	}
	return nil
}
