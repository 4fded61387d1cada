package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the gateway's Prometheus series. They live in their own
// registry (no package globals), served on the admin listener.
type metrics struct {
	reg *prometheus.Registry

	callsActive     prometheus.Gauge
	callsTotal      *prometheus.CounterVec // by end reason
	callsRejected   *prometheus.CounterVec // before answer, by reason
	setupSeconds    prometheus.Histogram
	durationSeconds prometheus.Histogram
	rtpPackets      *prometheus.CounterVec // by direction
	rtpLost         prometheus.Counter
	rtpJitter       prometheus.Histogram
	agentConnect    *prometheus.HistogramVec // by agent
	agentErrors     *prometheus.CounterVec   // by agent
	transfers       *prometheus.CounterVec   // by type and outcome
	trunkRegistered *prometheus.GaugeVec     // by trunk
	dialplanReloads *prometheus.CounterVec   // by result
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg}
	m.callsActive = prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_calls_active", Help: "Calls in progress on this instance."})
	m.callsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_calls_total", Help: "Calls ended, by end reason."}, []string{"outcome"})
	m.callsRejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_calls_rejected_total", Help: "Calls refused before answer, by reason."}, []string{"reason"})
	m.setupSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchboard_call_setup_seconds", Help: "INVITE received to 200 OK sent.",
		Buckets: []float64{.001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}})
	m.durationSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchboard_call_duration_seconds", Help: "Answered call duration.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14)})
	m.rtpPackets = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_rtp_packets_total", Help: "RTP packets, by direction."}, []string{"direction"})
	m.rtpLost = prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_rtp_packets_lost_total", Help: "RTP packets lost on the way in."})
	m.rtpJitter = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchboard_rtp_jitter_seconds", Help: "Inbound interarrival jitter per call (RFC 3550), at call end.",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1}})
	m.agentConnect = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchboard_agent_connect_seconds", Help: "Time for an agent to accept a call.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"agent"})
	m.agentErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_agent_errors_total", Help: "Agents that failed to start or failed mid-call."}, []string{"agent"})
	m.transfers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_transfers_total", Help: "Transfers, by type and outcome."}, []string{"type", "outcome"})
	m.trunkRegistered = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "switchboard_trunk_registered", Help: "1 while the trunk's registration is current."}, []string{"trunk"})
	m.dialplanReloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_dialplan_reloads_total", Help: "Dialplan reloads, by result."}, []string{"result"})
	for _, c := range []prometheus.Collector{m.callsActive, m.callsTotal, m.callsRejected, m.setupSeconds, m.durationSeconds, m.rtpPackets, m.rtpLost,
		m.rtpJitter, m.agentConnect, m.agentErrors, m.transfers, m.trunkRegistered, m.dialplanReloads} {
		f(c)
	}
	return m
}

// watchFleet adds the fleet's series, read when scraped: the Redis store's
// health, its CDR outage buffer and the dead instances it reaped, and CDR
// sink write failures.
func (m *metrics) watchFleet(f *fleet) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchboard_cdr_write_errors_total",
		Help: "CDRs a sink refused (file write or sync failed, or a closed sink)."}, func() float64 { return float64(f.cdrErrors.Load()) }))
	r := f.redis
	if r == nil {
		return
	}
	up := func() float64 {
		if r.Healthy() {
			return 1
		}
		return 0
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchboard_store_up", Help: "1 while the last ping reached Redis."}, up),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchboard_cdr_buffered", Help: "CDRs waiting in memory for Redis (bounded)."},
			func() float64 { return float64(r.CDRStats().Buffered) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchboard_cdr_dropped_total",
			Help: "CDRs lost: the outage buffer overflowed, Redis refused them, or they were unsent at shutdown."},
			func() float64 { return float64(r.CDRStats().Dropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchboard_fleet_instances_reaped_total",
			Help: "Instances this one found gone without deregistering (each death is counted by one survivor)."},
			func() float64 { return float64(r.ReapedInstances()) }),
	)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func seconds(d time.Duration) float64 { return d.Seconds() }
