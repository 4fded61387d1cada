package sip

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	sipmsg "github.com/emiago/sipgo/sip"
)

// credentials answer digest challenges for a trunk or a call.
type credentials struct {
	Username string // the digest user
	Password string
	Realm    string // when set, the only realm we give credentials to
}

// ErrAuthRejected means the far end challenged again after we answered
// with our credentials and did not say the nonce was stale: the username or
// password is wrong. Retrying at once would only lock the account.
var ErrAuthRejected = errors.New("sip: digest credentials rejected")

// ErrNoCredentials means a request was challenged and we have no password.
var ErrNoCredentials = errors.New("sip: challenged, but no credentials are configured")

// Bounds of one request chain (a request and its authenticated retries).
const (
	maxChallenges = 4 // 401 and 407 together (a proxy and a registrar) with room for stale nonces
	maxStale      = 2 // stale=true retries, so a server cannot keep us going
)

// authState answers the challenges of a trunk's or a call's requests.
// It keeps the challenges it answered, so later requests (a retry after 423,
// a registration refresh) carry credentials for the same nonce with the
// next nonce count, and tells "our fresh answer was refused" (wrong
// credentials) from "a reused nonce was refused" (answer the new one).
type authState struct {
	cred    credentials
	chals   map[string]*heldChallenge // by header name: Authorization, Proxy-Authorization
	rounds  int                       // challenges in the current chain
	stale   int                       // stale=true retries in the current chain
	pending map[int]bool              // 401/407 -> the last request carried a fresh answer to it
}

type heldChallenge struct {
	ch Challenge
	nc uint32
}

func newAuthState(c credentials) *authState {
	return &authState{cred: c, chals: make(map[string]*heldChallenge, 2), pending: make(map[int]bool, 2)}
}

// begin starts a request chain: a new REGISTER, probe or INVITE.
func (a *authState) begin() {
	a.rounds, a.stale = 0, 0
	clear(a.pending)
}

// passed notes a response that was not a challenge: what we sent was accepted.
func (a *authState) passed() { clear(a.pending) }

// isChallenge reports whether a final response asks for digest credentials.
func isChallenge(res *sipmsg.Response) bool {
	return res.StatusCode == 401 || res.StatusCode == 407
}

// answer takes the challenge in res for the next request of the chain. It
// returns ErrNoCredentials, ErrAuthRejected (our fresh answer was refused:
// wrong credentials), or an error for a challenge we cannot or will not
// answer. Errors never contain the password.
func (a *authState) answer(res *sipmsg.Response) error {
	if a.cred.Password == "" {
		return ErrNoCredentials
	}
	a.rounds++
	if a.rounds > maxChallenges {
		return fmt.Errorf("%w: %d challenges in a row", ErrAuthRejected, a.rounds)
	}
	chName, authName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		chName, authName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	ch, err := a.pick(res.GetHeaders(chName))
	if err != nil {
		return err
	}
	// Held even when we give up: the next chain starts with the newest nonce.
	a.chals[authName] = &heldChallenge{ch: ch}
	if a.pending[res.StatusCode] {
		if !ch.Stale {
			return fmt.Errorf("%w by realm %q (%d %s)", ErrAuthRejected, ch.Realm, res.StatusCode, res.Reason)
		}
		a.stale++
		if a.stale > maxStale {
			return fmt.Errorf("%w: realm %q keeps answering stale=true", ErrAuthRejected, ch.Realm)
		}
	}
	a.pending[res.StatusCode] = true
	return nil
}

// pick returns the first challenge among hdrs we can answer for our realm.
func (a *authState) pick(hdrs []sipmsg.Header) (Challenge, error) {
	if len(hdrs) == 0 {
		return Challenge{}, errors.New("sip: challenge response without an authenticate header")
	}
	var firstErr error
	for _, h := range hdrs {
		ch, err := ParseChallenge(h.Value())
		if err == nil && a.cred.Realm != "" && ch.Realm != a.cred.Realm {
			err = fmt.Errorf("sip: challenge for realm %q, configured realm is %q", truncate(ch.Realm), a.cred.Realm)
		}
		if err == nil {
			return ch, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return Challenge{}, firstErr
}

// apply puts credentials for every held challenge on req, computed for its
// method and Request-URI with the next nonce count.
func (a *authState) apply(req *sipmsg.Request) error {
	for name, h := range a.chals {
		cnonce, err := newCnonce()
		if err != nil {
			return err
		}
		h.nc++
		value := h.ch.Authorize(string(req.Method), req.Recipient.String(), a.cred.Username, a.cred.Password, h.nc, cnonce)
		if CheckHeaderValue(value) != nil {
			// Only a username with CR/LF gets here (challenge values cannot
			// hold them); the value is not echoed: it holds a hash.
			return errors.New("sip: digest username contains CR, LF or NUL")
		}
		req.RemoveHeader(name)
		req.AppendHeader(sipmsg.NewHeader(name, value))
	}
	return nil
}

func newCnonce() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("sip: cnonce: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
