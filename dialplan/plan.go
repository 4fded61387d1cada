package dialplan

import (
	"context"
	"time"
)

// LoadOptions says what a dialplan may refer to.
type LoadOptions struct {
	// Agents are the known agent names; an agent action naming another one
	// is an error. Nil: agent names are not checked.
	Agents []string
	// Trunks are the known trunk names; a trunk match naming another one is
	// an error. Nil: trunk names are not checked.
	Trunks []string
	// Now is the clock Route uses for Facts without a time (tests); nil is
	// time.Now.
	Now func() time.Time
}

// Plan is a loaded, validated dialplan. It is immutable: calls keep the
// *Plan they were routed with while a newer one is loaded.
type Plan struct {
	File     string         // the file it was loaded from, as named
	Hash     string         // sha256 of the file's bytes, hex
	Timezone *time.Location // top-level timezone; nil when not set
	Rules    []*Rule        // in file order, the default rule included
	Menus    map[string]*Menu
	Default  *Rule // the rule used when no other rule matches

	holidays map[string]bool // "2006-01-02"
	prompts  map[string]*Prompt
	now      func() time.Time
}

// Rule is one routing rule: a match and the actions it runs.
type Rule struct {
	Name    string
	Default bool
	Line    int // where the rule starts in the file

	match matcher
	body  *block
}

// Menu is a named action list reached by goto or a gather branch.
type Menu struct {
	Name string
	Line int

	body *block
}

// Prompts lists the prompts the plan plays, each loaded once.
func (p *Plan) Prompts() []*Prompt {
	out := make([]*Prompt, 0, len(p.prompts))
	for _, pr := range p.prompts {
		out = append(out, pr)
	}
	return out
}

// Facts are what Route matches a call on.
type Facts struct {
	To, From, Trunk, CallID string
	// Headers returns the value of a SIP header of the INVITE ("" when
	// absent); nil means no headers.
	Headers func(name string) string
	// At is when the call arrived; zero means now.
	At time.Time
}

// Vars are what templates ({{caller}}, {{header.X}} ...) expand to.
type Vars struct {
	Caller, Called, Trunk, CallID string
	Header                        func(name string) string // nil: every header is ""
}

// Runtime is what actions act on. The executor implements it on a real call;
// DryRun prints instead. Every method must return promptly once ctx ends.
type Runtime interface {
	Answer(ctx context.Context) error
	// Play returns when the prompt has been played (or ctx ended).
	Play(ctx context.Context, p *Prompt) error
	// Gather plays g.Prompt and collects digits per g's rules, without the
	// terminator; "" means no input.
	Gather(ctx context.Context, g GatherRequest) (string, error)
	// Agent runs a conversation: nil when the agent is done (the plan goes
	// on), an error wrapping agent.ErrHangup to end the call, any other error
	// is a failure (on_failure runs).
	Agent(ctx context.Context, name string, params map[string]string) error
	// Transfer hands the caller over; nil means the call is no longer ours
	// (Run returns without hanging up). An error is a failure.
	Transfer(ctx context.Context, t TransferRequest) error
	// Hangup ends the call: BYE when answered, a final error response when
	// not. Causes: CauseNormal, CauseAgentHangup, CauseError.
	Hangup(ctx context.Context, cause string) error
	// Reject refuses the unanswered call with a SIP final response.
	Reject(ctx context.Context, code int, reason string) error
}

// Hangup causes Run passes to Runtime.Hangup.
const (
	CauseNormal      = "normal"
	CauseAgentHangup = "agent_hangup"
	CauseError       = "error"
)

// Prompt is an audio file of the plan, as 8 kHz mono linear PCM.
type Prompt struct {
	Name    string // as written in the plan
	Samples []int16
}

// Duration is how long the prompt plays.
func (p *Prompt) Duration() time.Duration {
	return time.Duration(len(p.Samples)) * time.Second / 8000
}

// GatherRequest is one attempt at collecting digits.
type GatherRequest struct {
	Prompt            *Prompt // nil: no prompt, just wait
	MaxDigits         int
	Timeout           time.Duration // for the first digit, after the prompt
	InterDigitTimeout time.Duration
	Terminator        string // "" or one DTMF key that ends input early
}

// TransferRequest is a transfer with its templates expanded.
type TransferRequest struct {
	Mode     string // "cold" or "warm"
	Target   string
	CallerID string // "" keeps the caller's
	Headers  map[string]string
}

// Outcome is how Run ended, for the CDR.
type Outcome struct {
	Rule    string
	Actions []string // what ran, e.g. "answer", "play welcome.wav", "gather 1", "agent support failed"
	Digits  string   // the last gather's digits
	Ended   string   // one of the Ended* values
}

// Values of Outcome.Ended.
const (
	EndedHangup      = "hangup"       // a hangup action
	EndedReject      = "reject"       // a reject action
	EndedCompleted   = "completed"    // the actions ran out: hung up normally
	EndedAgentHangup = "agent_hangup" // an agent asked to end the call
	EndedTransferred = "transferred"  // a transfer took the call
	EndedFailed      = "failed"       // an action failed without on_failure, or too many gotos
	EndedCtx         = "ctx"          // ctx ended (the caller hung up, or shutdown)
)

// MaxGotos bounds the jumps (goto and named gather branches) of one call.
const MaxGotos = 32

// block is an action list a goto can reach: a rule's or a menu's.
type block struct {
	name    string
	kind    string // "rule" or "menu"
	line    int
	col     int
	actions []*action
}

// action is one parsed action. Only the fields of its kind are set.
type action struct {
	kind      string
	line, col int
	onFailure []*action

	prompt   *Prompt     // play
	gather   *gatherSpec // gather
	agent    string      // agent
	params   map[string]template
	transfer *transferSpec
	cause    string // hangup
	code     int    // reject
	reason   string
	target   string // goto
	to       *block
}

type gatherSpec struct {
	req      GatherRequest
	retries  int
	name     string
	branches map[string]*branch
	noInput  *branch
	noMatch  *branch
}

// branch is where a gather goes: a named rule or menu, or an inline list
// that returns to the action after the gather.
type branch struct {
	target    string
	to        *block
	actions   []*action
	line, col int
}

type transferSpec struct {
	mode     string
	target   template
	callerID template
	headers  map[string]template
}
