package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/dialplan"
	"github.com/switchboard-voice/switchboard/store"
	"github.com/switchboard-voice/switchboard/transfer"
)

// callView is one call as the admin API shows it.
type callView struct {
	ID       string    `json:"id"`
	Instance string    `json:"instance"`
	Trunk    string    `json:"trunk,omitempty"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	State    string    `json:"state"`
	Rule     string    `json:"rule,omitempty"`
	Agent    string    `json:"agent,omitempty"`
	Transfer string    `json:"transfer,omitempty"` // in progress or last: "warm sip:ann@pbx: briefing"
	Legs     []legView `json:"legs,omitempty"`     // the caller's first
	Started  time.Time `json:"started"`
}

// legView is one SIP leg of a call.
type legView struct {
	CallID string `json:"call_id,omitempty"` // none yet while a transfer leg is dialled
	Role   string `json:"role"`              // caller | transfer
	Target string `json:"target,omitempty"`
	State  string `json:"state,omitempty"`
}

// callList is GET /calls. Partial says the fleet's registry could not be
// read (a Redis outage): the calls are this instance's only.
type callList struct {
	Calls   []callView `json:"calls"`
	Partial bool       `json:"partial,omitempty"`
	Error   string     `json:"error,omitempty"` // why the list is partial
}

// callControl lists and acts on calls, wherever in the fleet they run.
type callControl interface {
	List(ctx context.Context) (callList, error)
	Hangup(ctx context.Context, id, reason string) error
	Transfer(ctx context.Context, id string, req agent.TransferRequest) error
}

var errCallNotFound = errors.New("no such call")

// Refusals of a call-control request, as they travel between instances
// (store.ControlReply.Code), so the instance a request came to answers as
// the call's owner would have.
const (
	codeNoCall     = "no_call"     // 404: no such call
	codeConflict   = "conflict"    // 409: a transfer is running already, or no agent to transfer from
	codeForbidden  = "forbidden"   // 403: the target is not on the allowlist
	codeBadRequest = "bad_request" // 400: a malformed target or header
)

// refusalCode classifies err; "" for anything else (a failure, not a
// refusal).
func refusalCode(err error) string {
	var re *remoteError
	switch {
	case errors.As(err, &re):
		return re.code
	case errors.Is(err, errCallNotFound), errors.Is(err, dialplan.ErrNoCall):
		return codeNoCall
	case errors.Is(err, dialplan.ErrTransferBusy), errors.Is(err, agent.ErrTransferUnavailable):
		return codeConflict
	case errors.Is(err, transfer.ErrNotAllowed):
		return codeForbidden
	case errors.Is(err, dialplan.ErrBadTransfer):
		return codeBadRequest
	}
	return ""
}

// remoteError is a refusal or failure reported by the instance that owns
// the call.
type remoteError struct {
	instance, code, msg string
}

func (e *remoteError) Error() string { return "instance " + e.instance + ": " + e.msg }

// httpStatus is the admin API's answer to a call-control request that
// ended with err.
func httpStatus(err error) int {
	switch refusalCode(err) {
	case codeNoCall:
		return http.StatusNotFound
	case codeConflict:
		return http.StatusConflict
	case codeForbidden:
		return http.StatusForbidden
	case codeBadRequest:
		return http.StatusBadRequest
	}
	if errors.Is(err, store.ErrUnavailable) {
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// adminServer is the HTTP side of operations: probes, metrics, call control.
type adminServer struct {
	log           *slog.Logger
	token         string // bearer token; empty: no auth (loopback default)
	publicMetrics bool
	pprof         bool // serve /debug/pprof/
	ready         func() bool
	metrics       http.Handler
	calls         callControl
	twilio        http.Handler     // Twilio REST subset, its own basic auth; may be nil
	trunks        http.HandlerFunc // trunk states; may be nil
}

func (a *adminServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	metrics := a.metrics
	if !a.publicMetrics {
		metrics = a.authed(metrics)
	}
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET /calls", a.authed(http.HandlerFunc(a.listCalls)))
	mux.Handle("POST /calls/{id}/hangup", a.authed(http.HandlerFunc(a.hangup)))
	mux.Handle("POST /calls/{id}/transfer", a.authed(http.HandlerFunc(a.transfer)))
	if a.trunks != nil {
		mux.Handle("GET /trunks", a.authed(a.trunks))
	}
	if a.twilio != nil {
		mux.Handle("/2010-04-01/", a.twilio)
	}
	if a.pprof {
		mux.Handle("GET /debug/pprof/", a.authed(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", a.authed(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("GET /debug/pprof/profile", a.authed(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", a.authed(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", a.authed(http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

// authed demands the bearer token when one is configured.
func (a *adminServer) authed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (a *adminServer) listCalls(w http.ResponseWriter, r *http.Request) {
	list, err := a.calls.List(r.Context())
	if err != nil {
		a.log.Warn("admin: listing calls failed", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	if list.Partial {
		a.log.Warn("admin: fleet registry unreachable; listing this instance's calls only", "error", list.Error)
	}
	if list.Calls == nil {
		list.Calls = []callView{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (a *adminServer) hangup(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	a.answer(w, a.calls.Hangup(r.Context(), r.PathValue("id"), body.Reason))
}

func (a *adminServer) transfer(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Mode    string            `json:"mode"`
		Target  string            `json:"target"`
		Headers map[string]string `json:"headers"`
		Context string            `json:"context"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	mode := agent.TransferMode(body.Mode)
	if mode == "" {
		mode = agent.TransferCold
	}
	if (mode != agent.TransferCold && mode != agent.TransferWarm) || body.Target == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `need "target" and "mode" cold or warm`})
		return
	}
	req := agent.TransferRequest{Mode: mode, Target: body.Target, Headers: body.Headers, Context: body.Context}
	a.answer(w, a.calls.Transfer(r.Context(), r.PathValue("id"), req))
}

func (a *adminServer) answer(w http.ResponseWriter, err error) {
	if err == nil {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
		return
	}
	writeJSON(w, httpStatus(err), map[string]string{"error": err.Error()})
}

// readJSON decodes an optional, bounded JSON body.
func readJSON(w http.ResponseWriter, r *http.Request, into any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	if err := json.Unmarshal(body, into); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON: " + err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// serveAdmin listens on addr until ctx ends; it reports the bound address
// (port 0 picks one) through bound before serving.
func serveAdmin(ctx context.Context, addr string, h http.Handler, bound func(string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	bound(ln.Addr().String())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
		return nil
	case err := <-done:
		return err
	}
}
