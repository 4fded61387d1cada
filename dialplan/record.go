package dialplan

import (
	"log/slog"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// record collects what the end-of-call log line (and later the CDR) says.
type record struct {
	log      *slog.Logger
	start    time.Time
	answered time.Time
	reason   string
	status   int
	agent    string
	leg      *media.Leg
	neg      media.Negotiated
}

func (r *record) finish(activeAfter int) {
	attrs := []any{
		"reason", r.reason,
		"duration_ms", time.Since(r.start).Milliseconds(),
		"active_calls_after", activeAfter,
	}
	if r.status != 0 {
		attrs = append(attrs, "status", r.status)
	}
	if !r.answered.IsZero() {
		attrs = append(attrs, "setup_ms", float64(r.answered.Sub(r.start).Microseconds())/1000)
	}
	if r.agent != "" {
		attrs = append(attrs, "agent", r.agent)
	}
	if r.leg != nil {
		st := r.leg.Stats()
		attrs = append(attrs,
			"codec", r.neg.Codec.Name,
			"ptime_ms", r.neg.PTime.Milliseconds(),
			"rtp_packets_received", st.RTP.PacketsReceived,
			"rtp_packets_sent", st.RTP.PacketsSent,
			"rtp_packets_lost", st.RTP.PacketsLost,
			"rtp_jitter_ms", st.RTP.JitterMs,
			"agent_frames_in", st.FramesIn,
			"agent_frames_out", st.FramesOut,
		)
	}
	r.log.Info("call ended", attrs...)
}
