package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// DigestConfig lets sources outside the allowed networks in after digest
// authentication (RFC 3261 22.4, RFC 2617: 401, MD5, qop=auth). No users
// means off.
type DigestConfig struct {
	Realm string
	// Users maps a username to its password. Passwords are never logged
	// nor put in an error; only MD5(user:realm:password) is kept.
	Users map[string]string
	// NonceTTL is how long a nonce may be answered; after it the answer
	// gets a new challenge with stale=true. Default 5 minutes.
	NonceTTL time.Duration
}

// String describes the configuration without passwords (%v and %+v).
func (c DigestConfig) String() string {
	return fmt.Sprintf("digest realm %q, %d users, passwords [redacted]", c.Realm, len(c.Users))
}

// GoString keeps %#v from printing the passwords.
func (c DigestConfig) GoString() string { return "sip.DigestConfig{" + c.String() + "}" }

// LogValue makes slog print it without passwords.
func (c DigestConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("realm", c.Realm), slog.Int("users", len(c.Users)))
}

const defaultNonceTTL = 5 * time.Minute

// maxNonces bounds the replay table: past it, new nonces are refused
// (answered with a fresh challenge) until old ones expire.
const maxNonces = 100_000

// digestAuth checks Authorization headers. Nonces carry their own time
// stamp and the source address under an HMAC, so nothing is stored per
// challenge; what is stored is the highest nonce count accepted for each
// nonce, so an answer cannot be replayed.
type digestAuth struct {
	realm string
	ha1   map[string]string
	ttl   time.Duration
	key   [32]byte // per process: a restart invalidates nonces, which is harmless
	now   func() time.Time

	mu   sync.Mutex
	used map[string]usedNonce
}

type usedNonce struct {
	nc      uint32
	expires time.Time
}

// authResult is what an Authorization header proved.
type authResult int

const (
	authNone  authResult = iota // absent, malformed, wrong, or replayed
	authOK                      // fresh and correct
	authStale                   // correct, but the nonce expired
)

func newDigestAuth(c DigestConfig) (*digestAuth, error) {
	if len(c.Users) == 0 {
		return nil, nil
	}
	if c.Realm == "" || strings.ContainsAny(c.Realm, "\"\\\r\n\x00") {
		return nil, errors.New("sip: digest realm must be set, without quotes, backslashes or line breaks")
	}
	a := &digestAuth{realm: c.Realm, ha1: make(map[string]string, len(c.Users)), ttl: c.NonceTTL, now: time.Now, used: map[string]usedNonce{}}
	if a.ttl <= 0 {
		a.ttl = defaultNonceTTL
	}
	for user, pw := range c.Users {
		if user == "" || strings.ContainsAny(user, "\"\\\r\n\x00") {
			return nil, fmt.Errorf("sip: digest username %q must be set, without quotes, backslashes or line breaks", truncate(user))
		}
		if pw == "" || strings.ContainsAny(pw, "\r\n\x00") {
			return nil, fmt.Errorf("sip: digest user %q: password is empty or contains CR, LF or NUL", truncate(user))
		}
		a.ha1[user] = md5hex(user + ":" + c.Realm + ":" + pw)
	}
	if _, err := rand.Read(a.key[:]); err != nil {
		return nil, fmt.Errorf("sip: digest nonce key: %w", err)
	}
	return a, nil
}

// challenge is a WWW-Authenticate value with a new nonce for src.
func (a *digestAuth) challenge(src netip.Addr, stale bool) string {
	v := `Digest realm=` + quote(a.realm) + `, nonce="` + a.nonce(src, a.now()) + `", algorithm=MD5, qop="auth"`
	if stale {
		v += ", stale=true"
	}
	return v
}

// nonce is base64url(time stamp | random | HMAC(time stamp | random | src)).
func (a *digestAuth) nonce(src netip.Addr, at time.Time) string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixNano()))
	_, _ = rand.Read(b[8:16]) // crypto/rand never fails on supported platforms
	copy(b[16:], a.mac(b[:16], src))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *digestAuth) mac(head []byte, src netip.Addr) []byte {
	m := hmac.New(sha256.New, a.key[:])
	m.Write(head)
	ip, _ := src.Unmap().MarshalBinary()
	m.Write(ip)
	return m.Sum(nil)[:16]
}

// nonceTime checks that nonce is ours and was issued to src; it returns
// when it was issued.
func (a *digestAuth) nonceTime(nonce string, src netip.Addr) (time.Time, bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 32 || !hmac.Equal(b[16:], a.mac(b[:16], src)) {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))), true
}

// check judges the request's Authorization headers (the one for our
// realm). The username is returned for logs when the answer is correct.
func (a *digestAuth) check(req *sipmsg.Request, src netip.Addr) (authResult, string) {
	for _, h := range req.GetHeaders("Authorization") {
		cr, err := ParseCredentials(h.Value())
		if err != nil || cr.Realm != a.realm {
			continue
		}
		return a.verify(req, src, cr), cr.Username
	}
	return authNone, ""
}

func (a *digestAuth) verify(req *sipmsg.Request, src netip.Addr, cr Credentials) authResult {
	if cr.Algorithm != "" && !strings.EqualFold(cr.Algorithm, "MD5") || cr.QOP != "auth" || cr.CNonce == "" {
		return authNone
	}
	nc, err := strconv.ParseUint(cr.NC, 16, 32)
	if err != nil || len(cr.NC) != 8 || nc == 0 {
		return authNone
	}
	if !sameRequestURI(cr.URI, req.Recipient) {
		return authNone
	}
	issued, ok := a.nonceTime(cr.Nonce, src)
	if !ok {
		return authNone
	}
	ha1, known := a.ha1[cr.Username]
	if !known {
		// The same work for an unknown user as for a wrong password.
		ha1 = md5hex(cr.Username + ":" + a.realm + ":")
	}
	want := md5hex(ha1 + ":" + cr.Nonce + ":" + cr.NC + ":" + cr.CNonce + ":auth:" + md5hex(string(req.Method)+":"+cr.URI))
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cr.Response))) != 1 || !known {
		return authNone
	}
	now := a.now()
	expires := issued.Add(a.ttl)
	if now.After(expires) || issued.After(now.Add(time.Minute)) {
		return authStale
	}
	if !a.use(cr.Nonce, uint32(nc), expires, now) {
		return authNone
	}
	return authOK
}

// use records nonce count nc, refusing one not above the last accepted:
// a captured answer replayed (even from a spoofed source) is refused.
func (a *digestAuth) use(nonce string, nc uint32, expires, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.used) >= maxNonces {
		for k, u := range a.used {
			if now.After(u.expires) {
				delete(a.used, k)
			}
		}
	}
	u, seen := a.used[nonce]
	if seen && nc <= u.nc || !seen && len(a.used) >= maxNonces {
		return false
	}
	a.used[nonce] = usedNonce{nc: nc, expires: expires}
	return true
}

// authenticate admits a stranger's request whose digest answer is right
// and challenges everything else with the same 401 (a new nonce each time),
// whoever was called and whichever user was tried.
func (s *Server) authenticate(req *sipmsg.Request, tx sipmsg.ServerTransaction, src netip.Addr, next sipgo.RequestHandler) {
	res, user := s.digest.check(req, src)
	if res == authOK {
		s.log.Debug("sip: digest authenticated", "source", src.String(), "method", req.Method.String(), "user", user)
		next(req, tx)
		return
	}
	s.log.Debug("sip: digest challenge", "source", src.String(), "method", req.Method.String(), "stale", res == authStale)
	s.respond(tx, req, 401, "Unauthorized", sipmsg.NewHeader("WWW-Authenticate", s.digest.challenge(src, res == authStale)))
}

// sameRequestURI reports whether the digest uri names the Request-URI:
// the client may spell it differently (parameter order, escaping), so the
// parts that route are compared.
func sameRequestURI(v string, ruri sipmsg.Uri) bool {
	var u sipmsg.Uri
	if err := sipmsg.ParseUri(v, &u); err != nil {
		return false
	}
	port := func(p int) int {
		if p == 0 {
			return 5060
		}
		return p
	}
	return strings.EqualFold(u.Scheme, ruri.Scheme) && u.User == ruri.User &&
		strings.EqualFold(strings.Trim(u.Host, "[]"), strings.Trim(ruri.Host, "[]")) && port(u.Port) == port(ruri.Port)
}

// Credentials is a parsed Authorization (or Proxy-Authorization) value.
type Credentials struct {
	Username, Realm, Nonce, URI, Response string
	Algorithm, CNonce, QOP, NC, Opaque    string
}

// ParseCredentials parses one Digest Authorization header value, with
// the same strict parser as ParseChallenge: anyone can send us one.
func ParseCredentials(v string) (Credentials, error) {
	if strings.ContainsAny(v, "\r\n\x00") {
		return Credentials{}, errors.New("sip: digest credentials contain CR, LF or NUL")
	}
	v = strings.TrimLeft(v, " \t")
	scheme, rest := v, ""
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		scheme, rest = v[:i], v[i:]
	}
	if !strings.EqualFold(scheme, "Digest") {
		return Credentials{}, fmt.Errorf("sip: %q is not Digest credentials", truncate(scheme))
	}
	p, err := parseAuthParams(rest)
	if err != nil {
		return Credentials{}, err
	}
	c := Credentials{Username: p["username"], Realm: p["realm"], Nonce: p["nonce"], URI: p["uri"], Response: p["response"],
		Algorithm: p["algorithm"], CNonce: p["cnonce"], QOP: strings.ToLower(p["qop"]), NC: p["nc"], Opaque: p["opaque"]}
	for name, val := range map[string]string{"username": c.Username, "realm": c.Realm, "nonce": c.Nonce, "uri": c.URI, "response": c.Response} {
		if val == "" {
			return Credentials{}, fmt.Errorf("sip: digest credentials without %s", name)
		}
	}
	return c, nil
}
