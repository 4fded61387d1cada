package twilio

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/agent"
)

// CallState is a live call as the REST API shows it.
type CallState struct {
	CallSid string
	From    string
	To      string
	// Status is Twilio's call status: "queued", "ringing", "in-progress",
	// "completed", "busy", "failed", "no-answer" or "canceled".
	Status    string
	StartTime time.Time
	Duration  time.Duration
}

// CallControl is what the REST API may do to one live call; the gateway
// implements it per call.
type CallControl interface {
	Hangup(reason string) error
	Transfer(req agent.TransferRequest) error
	State() CallState
}

// Directory finds live calls by call sid (see CallSid).
type Directory interface {
	Lookup(callSid string) (CallControl, bool)
}

const (
	apiVersion    = "2010-04-01"
	maxFormBytes  = 64 << 10
	restHangupWhy = "rest-api"
	twilioTime    = "Mon, 02 Jan 2006 15:04:05 -0700"
)

// NewRESTHandler serves the subset of Twilio's call resource that bots use
// to end or transfer calls:
//
//	GET  /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json
//	POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json
//	     Status=completed | Twiml=<Response><Hangup/|Dial|Refer></Response>
//
// Requests need HTTP basic auth with username and password (a bot's
// account sid and auth token). An empty accountSid means DefaultAccountSid
// (as for Config), an empty username the account sid; an empty password
// refuses every request.
func NewRESTHandler(dir Directory, accountSid, username, password string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if accountSid == "" {
		accountSid = DefaultAccountSid()
	}
	if username == "" {
		username = accountSid
	}
	h := &restHandler{dir: dir, accountSid: accountSid, log: log.With("component", "twilio-rest"),
		user: sha256.Sum256([]byte(username)), pass: sha256.Sum256([]byte(password)), enabled: password != ""}
	if !h.enabled {
		h.log.Warn("no REST API password configured: every request is refused")
	}
	h.mux = http.NewServeMux()
	const path = "/" + apiVersion + "/Accounts/{account}/Calls/{call}"
	h.mux.HandleFunc("GET "+path, h.get)
	h.mux.HandleFunc("POST "+path, h.update)
	h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
	})
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	})
	return h
}

type restHandler struct {
	dir        Directory
	accountSid string
	user, pass [sha256.Size]byte
	enabled    bool
	log        *slog.Logger
	mux        *http.ServeMux
}

func (h *restHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	// Both comparisons always run: no early exit to time.
	good := subtle.ConstantTimeCompare(u[:], h.user[:]) & subtle.ConstantTimeCompare(p[:], h.pass[:])
	if !ok || good != 1 || !h.enabled {
		w.Header().Set("WWW-Authenticate", `Basic realm="Switchboard"`)
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// lookup resolves the path to a live call, or writes the 404.
func (h *restHandler) lookup(w http.ResponseWriter, r *http.Request) (CallControl, bool) {
	sid, isJSON := strings.CutSuffix(r.PathValue("call"), ".json")
	if !isJSON || r.PathValue("account") != h.accountSid || !validSid(sid, prefixCall) {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return nil, false
	}
	cc, found := h.dir.Lookup(sid)
	if !found {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return nil, false
	}
	return cc, true
}

func (h *restHandler) get(w http.ResponseWriter, r *http.Request) {
	if cc, ok := h.lookup(w, r); ok {
		h.writeCall(w, cc.State())
	}
}

func (h *restHandler) update(w http.ResponseWriter, r *http.Request) {
	cc, ok := h.lookup(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, 20001, "Request body too large")
			return
		}
		writeError(w, http.StatusBadRequest, 20001, "Cannot parse form: "+err.Error())
		return
	}
	state := cc.State()
	log := h.log.With("call_sid", state.CallSid)
	status, twiml := r.PostForm.Get("Status"), r.PostForm.Get("Twiml")
	var act twimlAction
	switch {
	case status != "":
		if status != "completed" && status != "canceled" {
			writeError(w, http.StatusBadRequest, 20001, "Unsupported Status "+strconv.Quote(status)+": use completed")
			return
		}
		act.hangup = true
	case twiml != "":
		var err error
		if act, err = parseTwiML(twiml); err != nil {
			code := 12100
			if errors.Is(err, errUnsupportedTwiML) {
				code = 20001
			}
			writeError(w, http.StatusBadRequest, code, err.Error())
			return
		}
	case r.PostForm.Get("Url") != "":
		writeError(w, http.StatusBadRequest, 20001, "Url is not supported: send Twiml or Status")
		return
	default:
		writeError(w, http.StatusBadRequest, 20001, "Nothing to do: send Status=completed or Twiml")
		return
	}
	var err error
	if act.hangup {
		if final(state.Status) { // hanging up an ended call is a no-op, as on Twilio
			h.writeCall(w, state)
			return
		}
		log.Info("REST hangup")
		err = cc.Hangup(restHangupWhy)
	} else {
		if state.Status != "in-progress" {
			writeError(w, http.StatusBadRequest, 21220, "Call is not in-progress. Cannot redirect.")
			return
		}
		log.Info("REST transfer", "target", act.target)
		err = cc.Transfer(agent.TransferRequest{Mode: agent.TransferCold, Target: act.target})
	}
	if err != nil {
		log.Warn("REST call update failed", "error", err)
		if errors.Is(err, agent.ErrTransferUnavailable) {
			writeError(w, http.StatusBadRequest, 20001, err.Error())
		} else {
			writeError(w, http.StatusInternalServerError, 20500, err.Error())
		}
		return
	}
	h.writeCall(w, cc.State())
}

func final(status string) bool {
	switch status {
	case "completed", "busy", "failed", "no-answer", "canceled":
		return true
	}
	return false
}

// callResource is the JSON call resource, shaped like Twilio's.
type callResource struct {
	Sid         string  `json:"sid"`
	AccountSid  string  `json:"account_sid"`
	From        string  `json:"from"`
	To          string  `json:"to"`
	Status      string  `json:"status"`
	Direction   string  `json:"direction"`
	StartTime   *string `json:"start_time"`
	EndTime     *string `json:"end_time"`
	Duration    string  `json:"duration"`
	DateCreated *string `json:"date_created"`
	APIVersion  string  `json:"api_version"`
	URI         string  `json:"uri"`
}

func (h *restHandler) writeCall(w http.ResponseWriter, st CallState) {
	res := callResource{
		Sid: st.CallSid, AccountSid: h.accountSid, From: st.From, To: st.To, Status: st.Status,
		Direction: "inbound", Duration: strconv.FormatInt(int64(st.Duration/time.Second), 10),
		APIVersion: apiVersion, URI: "/" + apiVersion + "/Accounts/" + h.accountSid + "/Calls/" + st.CallSid + ".json",
	}
	if !st.StartTime.IsZero() {
		start := st.StartTime.UTC().Format(twilioTime)
		res.StartTime, res.DateCreated = &start, &start
		if final(st.Status) {
			end := st.StartTime.Add(st.Duration).UTC().Format(twilioTime)
			res.EndTime = &end
		}
	}
	writeJSON(w, http.StatusOK, &res)
}

// writeError writes a Twilio-style error body.
func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{
		"code": code, "message": msg, "status": status,
		"more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
