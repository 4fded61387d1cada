package dialplan

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
)

// record collects what the end-of-call log line and the CDR say.
type record struct {
	log      *slog.Logger
	call     *sip.InboundCall
	start    time.Time
	answered time.Time
	reason   string
	status   int
	rule     string
	agent    string
	// agentError and agentErrorDetail are the last agent failure's cause
	// (agent.FailureCause) and explanation.
	agentError       string
	agentErrorDetail string
	outcome          Outcome
	leg              *media.Leg
	neg              media.Negotiated
	digits           digitLog
	// transfers is written by transfer goroutines too.
	transfers transferLog
}

// cdr builds the call's record; ended is when the call ended.
func (r *record) cdr(ended time.Time) CDR {
	c := CDR{
		CallID: r.call.CallID, Trunk: r.call.Trunk, From: r.call.From, To: r.call.To,
		Source: r.call.Source.String(), Invite: r.start, Answer: r.answered, End: ended,
		Reason: r.reason, HungUpBy: hungUpBy(r.reason), Status: r.status,
		Rule: r.rule, Actions: r.outcome.Actions, Agent: r.agent, Digits: r.digits.String(),
		AgentError: r.agentError, AgentErrorDetail: r.agentErrorDetail,
		Transfers: r.transfers.snapshot(),
	}
	if !r.answered.IsZero() {
		c.SetupMs = float64(r.answered.Sub(r.start).Microseconds()) / 1000
		c.Duration = ended.Sub(r.answered).Seconds()
	}
	if r.leg != nil {
		st := r.leg.Stats()
		c.Media = &MediaCDR{
			Codec: r.neg.Codec.Name, PTimeMs: r.neg.PTime.Milliseconds(),
			PacketsReceived: st.RTP.PacketsReceived, PacketsSent: st.RTP.PacketsSent,
			PacketsLost: st.RTP.PacketsLost, JitterMs: st.RTP.JitterMs,
		}
	}
	return c
}

// logEnd writes the "call ended" line.
func (r *record) logEnd(c CDR, activeAfter int) {
	attrs := []any{
		"reason", c.Reason,
		"hung_up_by", c.HungUpBy,
		"duration_ms", c.End.Sub(c.Invite).Milliseconds(),
		"active_calls_after", activeAfter,
	}
	if c.Status != 0 {
		attrs = append(attrs, "status", c.Status)
	}
	if c.SetupMs != 0 {
		attrs = append(attrs, "setup_ms", c.SetupMs)
	}
	if c.Rule != "" {
		attrs = append(attrs, "rule", c.Rule)
	}
	if len(c.Actions) > 0 {
		attrs = append(attrs, "actions", strings.Join(c.Actions, "; "))
	}
	if c.Agent != "" {
		attrs = append(attrs, "agent", c.Agent)
	}
	if c.AgentError != "" {
		attrs = append(attrs, "agent_error", c.AgentError, "agent_error_detail", c.AgentErrorDetail)
	}
	if c.Digits != "" {
		attrs = append(attrs, "digits", c.Digits)
	}
	if len(c.Transfers) > 0 {
		parts := make([]string, len(c.Transfers))
		for i, t := range c.Transfers {
			parts[i] = fmt.Sprintf("%s %s %s %d", t.Mode, t.Target, t.Outcome, t.Code)
		}
		attrs = append(attrs, "transfers", strings.Join(parts, "; "))
	}
	if r.leg != nil {
		st := r.leg.Stats()
		attrs = append(attrs,
			"codec", c.Media.Codec,
			"ptime_ms", c.Media.PTimeMs,
			"rtp_packets_received", c.Media.PacketsReceived,
			"rtp_packets_sent", c.Media.PacketsSent,
			"rtp_packets_lost", c.Media.PacketsLost,
			"rtp_jitter_ms", c.Media.JitterMs,
			"agent_frames_in", st.FramesIn,
			"agent_frames_out", st.FramesOut,
		)
	}
	r.log.Info("call ended", attrs...)
}
