package main

import (
	"log/slog"
	"time"

	"github.com/switchboard-voice/switchboard/dialplan"
)

// observer turns call events into metrics and records.
type observer struct {
	m     *metrics
	fleet *fleet
	log   *slog.Logger
}

func (o *observer) CallStarted(c dialplan.CallSnapshot) {
	o.m.callsActive.Inc()
	o.fleet.callStarted(c)
}

func (o *observer) CallUpdated(c dialplan.CallSnapshot) { o.fleet.callUpdated(c) }

func (o *observer) AgentStarted(name string, connect time.Duration, err error) {
	if err != nil {
		o.m.agentErrors.WithLabelValues(name).Inc()
		return
	}
	o.m.agentConnect.WithLabelValues(name).Observe(connect.Seconds())
}

func (o *observer) AgentFailed(name string, err error) { o.m.agentErrors.WithLabelValues(name).Inc() }

func (o *observer) CallEnded(c dialplan.CallSnapshot, cdr dialplan.CDR) {
	o.m.callsActive.Dec()
	o.fleet.callEnded(c, cdr)
	o.m.callsTotal.WithLabelValues(cdr.Reason).Inc()
	if cdr.Answer.IsZero() {
		o.m.callsRejected.WithLabelValues(cdr.Reason).Inc()
	} else {
		o.m.setupSeconds.Observe(cdr.SetupMs / 1000)
		o.m.durationSeconds.Observe(cdr.Duration)
	}
	if md := cdr.Media; md != nil {
		o.m.rtpPackets.WithLabelValues("in").Add(float64(md.PacketsReceived))
		o.m.rtpPackets.WithLabelValues("out").Add(float64(md.PacketsSent))
		o.m.rtpLost.Add(float64(md.PacketsLost))
		o.m.rtpJitter.Observe(md.JitterMs / 1000)
	}
	for _, t := range cdr.Transfers {
		o.m.transfers.WithLabelValues(t.Mode, t.Outcome).Inc()
	}
}
