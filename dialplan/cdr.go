package dialplan

import (
	"sync"
	"time"
)

// CDR is the record of one call, written when it ends.
type CDR struct {
	CallID   string    `json:"call_id"`
	Trunk    string    `json:"trunk,omitempty"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Source   string    `json:"source"`
	Invite   time.Time `json:"invite_at"`
	Answer   time.Time `json:"answer_at,omitzero"`
	End      time.Time `json:"end_at"`
	SetupMs  float64   `json:"setup_ms,omitempty"`
	Duration float64   `json:"duration_s"`
	// Reason is why the call ended (End* values); HungUpBy is who ended it:
	// caller, gateway, agent, admin or system.
	Reason   string `json:"end_reason"`
	HungUpBy string `json:"hung_up_by"`
	Status   int    `json:"sip_status,omitempty"` // final response when refused
	Rule     string `json:"rule,omitempty"`
	// Actions is what the dialplan ran, in order.
	Actions []string `json:"actions,omitempty"`
	Agent   string   `json:"agent,omitempty"`
	// AgentError is why the agent failed, when it did (agent.FailureCause:
	// unreachable, handshake_refused, connect_timeout, dropped, silent,
	// protocol_violation, error), even when on_failure then carried the call
	// on; AgentErrorDetail explains it in words, without secrets.
	AgentError       string        `json:"agent_error,omitempty"`
	AgentErrorDetail string        `json:"agent_error_detail,omitempty"`
	Digits           string        `json:"digits,omitempty"` // every DTMF digit the caller pressed
	Transfers        []TransferCDR `json:"transfers,omitempty"`
	Media            *MediaCDR     `json:"media,omitempty"`
}

// TransferCDR is one transfer attempt.
type TransferCDR struct {
	Mode     string    `json:"mode"`
	Target   string    `json:"target"`
	Outcome  string    `json:"outcome"`
	Code     int       `json:"sip_code,omitempty"`
	Started  time.Time `json:"started_at"`
	Finished time.Time `json:"finished_at"`
}

// MediaCDR is the call's RTP summary.
type MediaCDR struct {
	Codec           string  `json:"codec"`
	PTimeMs         int64   `json:"ptime_ms"`
	PacketsReceived uint64  `json:"packets_received"`
	PacketsSent     uint64  `json:"packets_sent"`
	PacketsLost     uint64  `json:"packets_lost"`
	JitterMs        float64 `json:"jitter_ms"`
}

// hungUpBy says who ended a call that ended for reason.
func hungUpBy(reason string) string {
	switch reason {
	case EndRemoteBye, EndCancelled:
		return "caller"
	case EndAgentHangup:
		return "agent"
	case EndAdminHangup:
		return "admin"
	case EndRTPTimeout, EndNoAck, EndShutdown, EndAgentFailed, EndFailed:
		return "system"
	default:
		return "gateway"
	}
}

// digitLog collects a call's digits from the media and INFO goroutines.
type digitLog struct {
	mu     sync.Mutex
	digits []rune
}

func (d *digitLog) add(r rune) {
	d.mu.Lock()
	d.digits = append(d.digits, r)
	d.mu.Unlock()
}

func (d *digitLog) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return string(d.digits)
}
