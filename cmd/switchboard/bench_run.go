package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
)

// benchStats is everything a run counts; calls add to it concurrently.
type benchStats struct {
	attempted, answered, failed, dropped atomic.Int64
	up                                   atomic.Int64 // calls sending media now

	setup, inbound, outbound, roundTrip latencyHist

	framesSent, warmup, botGot, botEchoed, echoes atomic.Int64
	dups, late, silence, foreign, otherPT         atomic.Int64
	sendErrors, pacerStalls                       atomic.Int64
	botConns, botAbnormal, botMalformed, botMedia atomic.Int64

	mu       sync.Mutex
	failures map[string]int // reason -> count
}

func (s *benchStats) fail(reason string) {
	s.failed.Add(1)
	s.mu.Lock()
	s.failures[reason]++
	s.mu.Unlock()
}

// benchRun is one run's moving parts.
type benchRun struct {
	o       benchOptions
	log     *slog.Logger
	out     io.Writer
	clock   *benchClock
	stats   *benchStats
	calls   *benchRegistry
	srv     *sip.Server
	pacers  []*benchPacer
	sampler *benchSampler
}

// runBench places the calls and returns what it measured.
func runBench(parent context.Context, o benchOptions, out io.Writer, log *slog.Logger) (*benchReport, error) {
	ctx, cancel := context.WithTimeout(parent, o.hardDeadline())
	defer cancel()
	r := &benchRun{o: o, log: log, out: out, clock: &benchClock{epoch: time.Now()},
		stats: &benchStats{failures: map[string]int{}}, calls: newBenchRegistry(min(o.calls, benchMaxIndex))}

	listen := o.listen
	if listen.Port() == 0 {
		port, err := freeSIPPort(listen.Addr())
		if err != nil {
			return nil, err
		}
		listen = netip.AddrPortFrom(listen.Addr(), uint16(port))
	}
	srv, err := sip.NewServer(sip.Config{Listen: listen, Transports: []string{"udp"}, Logger: log},
		func(ctx context.Context, call *sip.InboundCall) { _ = call.Reject(486, "") })
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r.srv = srv
	// The SIP endpoint outlives the run's context so that calls still up
	// when it ends can send their BYE.
	srvCtx, stopSrv := context.WithCancel(context.Background())
	served := make(chan error, 1)
	ready := make(chan struct{})
	go func() { served <- srv.Serve(srvCtx, func() { close(ready) }) }()
	defer func() { stopSrv(); <-served }()
	select {
	case <-ready:
	case err := <-served:
		return nil, fmt.Errorf("bench: sip: %w", err)
	}

	if o.botListen != "" {
		stopBot, err := r.serveBot(ctx)
		if err != nil {
			return nil, err
		}
		defer stopBot()
	}

	// One pacer per 500 calls: a pacer's wake-up is cheap, its sends are not.
	stopPacers := make(chan struct{})
	var pacing sync.WaitGroup
	for range max(1, (o.concurrent+499)/500) {
		p := &benchPacer{stats: r.stats}
		r.pacers = append(r.pacers, p)
		pacing.Add(1)
		go func() { defer pacing.Done(); p.run(stopPacers) }()
	}
	defer func() { close(stopPacers); pacing.Wait() }()

	r.sampler = newBenchSampler(o, r.stats, out)
	samplerDone := make(chan struct{})
	samplerCtx, stopSampler := context.WithCancel(ctx)
	go func() { defer close(samplerDone); r.sampler.run(samplerCtx) }()
	defer func() { stopSampler(); <-samplerDone }()

	// The idle gateway: CPU and RSS before any call.
	idleFrom := r.sampler.mark()
	if o.idle > 0 {
		select {
		case <-time.After(o.idle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rep := &benchReport{opts: o}
	rep.idleFrom, rep.idleTo = idleFrom, r.sampler.mark()
	rep.metricsBefore = r.sampler.metrics(ctx)

	placeStart := time.Now()
	last := r.place(ctx)
	rep.placeWindow = last.Sub(placeStart)
	rep.wall = time.Since(placeStart)
	rep.endAt = r.sampler.mark()

	// Back to baseline: the gateway should show no call a moment later.
	rep.metricsAfter = r.sampler.waitIdle(ctx, 10*time.Second)
	rep.finish(r.stats, r.sampler.snapshot(), r.sampler.selfSnapshot())
	return rep, nil
}

// place runs the call schedule: no faster than the rate, no more than
// --concurrent up, nothing new after --max-time. It returns when every call
// it placed has ended, with the time of the last attempt.
func (r *benchRun) place(ctx context.Context) time.Time {
	o := r.o
	slots := make(chan struct{}, o.concurrent)
	var wg sync.WaitGroup
	defer wg.Wait()
	interval := time.Duration(float64(time.Second) / o.rate)
	stopAt := time.Now().Add(o.maxTime)
	next := time.Now()
	var last time.Time
	for i := 0; i < o.calls; i++ {
		// Never faster than the rate, and never a burst to catch up after
		// the concurrency limit held us back.
		if d := time.Until(next); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return last
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return last
		case <-time.After(time.Until(stopAt)):
			return last
		}
		now := time.Now()
		if now.After(stopAt) {
			<-slots
			return last
		}
		last = now
		// Hold the rate on average (sleep overshoot does not accumulate),
		// but never burst to catch up after the concurrency limit held us.
		next = next.Add(interval)
		if now.Sub(next) > interval {
			next = now
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-slots }()
			r.call(ctx, i)
		}(i)
	}
	return last
}

// call places one call, streams media for the call duration, and hangs up.
func (r *benchRun) call(ctx context.Context, i int) {
	o, st := r.o, r.stats
	st.attempted.Add(1)
	network := "udp4"
	if o.target.Addr().Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(o.listen.Addr(), 0)))
	if err != nil {
		st.fail("local socket: " + err.Error())
		return
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	// telephone-event too, as carriers offer it: without it the gateway
	// listens for in-band DTMF on every frame, which no trunk call costs.
	offerCfg := media.AnswerConfig{Codecs: []string{"PCMU"}, LocalAddr: local.Addr(), LocalPort: int(local.Port()),
		SessionID: rand.Uint64() >> 2, SessionVersion: 1, Username: "bench"}
	dctx, cancel := context.WithTimeout(ctx, o.setupTimeout)
	defer cancel()
	began := time.Now()
	call, err := r.srv.Dial(dctx, "sip:"+o.user+"@"+o.target.String(), media.BuildOffer(offerCfg, 101),
		sip.DialOptions{FromUser: fmt.Sprintf("bench%d", i)})
	setup := time.Since(began)
	if err != nil {
		var refused *sip.ResponseError
		switch {
		case errors.As(err, &refused):
			st.fail(fmt.Sprintf("%d %s", refused.Code, refused.Reason))
		case dctx.Err() != nil:
			st.fail("no answer within --setup-timeout")
		default:
			st.fail(err.Error())
		}
		return
	}
	hangup := func() {
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer hcancel()
		_ = call.Hangup(hctx, sip.CauseNormal.Reason())
	}
	st.setup.add(setup)
	desc, err := media.ParseDescription(call.Answer)
	var neg media.Negotiated
	if err == nil {
		neg, err = media.ApplyAnswer(desc, offerCfg)
	}
	if err != nil || !neg.Remote.IsValid() || neg.Codec.Name != "PCMU" {
		st.fail(fmt.Sprintf("unusable answer SDP (codec %q): %v", neg.Codec.Name, err))
		hangup()
		return
	}
	st.answered.Add(1)

	idx := uint32(i % benchMaxIndex)
	m := newBenchMedia(idx, conn, neg.Remote, uint32(o.callDuration/benchFrameTime), r.clock, st)
	r.calls.set(idx, m)
	received := make(chan struct{})
	go func() { defer close(received); m.receive() }()
	pacer := r.pacers[i%len(r.pacers)]
	st.up.Add(1)
	pacer.add(m)
	dropped := false
	select {
	case <-m.done:
	case <-call.Done():
		dropped = true
		st.dropped.Add(1)
		pacer.remove(m)
	case <-ctx.Done():
		pacer.remove(m)
	}
	st.up.Add(-1)
	if !dropped {
		select { // echoes still in flight
		case <-time.After(o.drain):
		case <-call.Done():
		}
		hangup()
	}
	_ = conn.Close()
	<-received
	r.calls.set(idx, nil)
	r.account(m)
}

// account adds a finished call's media counters to the run's.
func (r *benchRun) account(m *benchMedia) {
	st := r.stats
	sent := int64(m.sent.Load())
	st.framesSent.Add(sent)
	// Frames before the first one the bot read never reached it because the
	// agent was not connected yet; counted apart from loss. A call whose bot
	// never read anything has no warm-up: all of it is lost.
	if first := int64(m.botFirst.Load()); first > 0 {
		st.warmup.Add(first - 1)
	}
	st.botGot.Add(int64(m.botGot.Load()))
	st.botEchoed.Add(int64(m.botEchoed.Load()))
	st.echoes.Add(int64(m.echoes.Load()))
	st.dups.Add(int64(m.dups.Load()))
	st.late.Add(int64(m.late.Load()))
	st.silence.Add(int64(m.silence.Load()))
	st.foreign.Add(int64(m.foreign.Load()))
	st.otherPT.Add(int64(m.otherPT.Load()))
}

// serveBot starts the in-process echo bot on --bot-listen.
func (r *benchRun) serveBot(ctx context.Context) (stop func(), err error) {
	ln, err := net.Listen("tcp", r.o.botListen)
	if err != nil {
		return nil, fmt.Errorf("bench: bot listener: %w", err)
	}
	botCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	mux := http.NewServeMux()
	mux.Handle("/media", &benchBot{calls: r.calls, clock: r.clock, stats: r.stats, log: r.log, ctx: botCtx})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	fmt.Fprintf(r.out, "bench bot listening on ws://%s/media\n", ln.Addr())
	return func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer scancel()
		_ = hs.Shutdown(sctx)
		<-done
	}, nil
}
