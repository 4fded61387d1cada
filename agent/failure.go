package agent

import "errors"

// FailureCause says, in one machine-readable word, why an agent failed. It
// goes to the "agent failed" log line, the "call ended" line and the CDR, so
// that operators can count failures by cause without parsing messages.
type FailureCause string

// Failure causes. An agent that fails without saying why is CauseError.
const (
	// CauseUnreachable: the bot's address refused or dropped the connection
	// before the handshake (nothing listening, DNS, TLS).
	CauseUnreachable FailureCause = "unreachable"
	// CauseHandshakeRefused: the bot answered the upgrade with an HTTP
	// status other than 101 (401, 403, 404, 503 ...).
	CauseHandshakeRefused FailureCause = "handshake_refused"
	// CauseConnectTimeout: dialling, the handshake or the opening messages
	// took longer than the agent's connect timeout.
	CauseConnectTimeout FailureCause = "connect_timeout"
	// CauseDropped: the connection ended mid-call without a normal close
	// (reset, EOF without a close frame, an abnormal close status, a read
	// or write error).
	CauseDropped FailureCause = "dropped"
	// CauseSilent: the bot sent nothing for its silence timeout while none
	// of its audio was playing.
	CauseSilent FailureCause = "silent"
	// CauseProtocol: the bot broke the protocol (too many malformed
	// messages, a message over the size limit, a bad handshake response).
	CauseProtocol FailureCause = "protocol_violation"
	// CauseError: any other failure.
	CauseError FailureCause = "error"
)

// Failure is an agent failure with its cause. Detail is a short
// human-readable explanation that is safe to log and record: agents must
// never put credentials (tokens, URL queries, passwords) in it.
type Failure struct {
	Cause  FailureCause
	Detail string
	Err    error // the underlying error, for errors.Is/As
}

func (f *Failure) Error() string {
	if f.Err != nil {
		return f.Err.Error()
	}
	return "agent failed: " + string(f.Cause) + ": " + f.Detail
}

func (f *Failure) Unwrap() error { return f.Err }

// FailureOf returns err's cause and detail: those of the *Failure it wraps,
// CauseError and err's message for any other error, nothing for nil.
func FailureOf(err error) (FailureCause, string) {
	if err == nil {
		return "", ""
	}
	var f *Failure
	if errors.As(err, &f) {
		return f.Cause, f.Detail
	}
	return CauseError, err.Error()
}
