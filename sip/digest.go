package sip

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Challenge is a parsed Digest challenge (WWW-Authenticate or
// Proxy-Authenticate, RFC 2617 / RFC 7616 / RFC 3261 22.4).
type Challenge struct {
	Realm     string
	Nonce     string
	Opaque    string
	Algorithm string   // as the server spelt it; "" means MD5
	QOP       []string // qop options offered, lower case
	Stale     bool     // the nonce expired: retry with the new one, credentials were fine
}

// ErrUnsupportedDigest is returned for a well-formed challenge we cannot
// answer (an algorithm other than MD5 or MD5-sess, or only qop=auth-int).
var ErrUnsupportedDigest = errors.New("sip: unsupported digest challenge")

// ParseChallenge parses one Digest challenge header value. It is our own
// parser (not sipgo's) because the value comes from any carrier or from
// anyone who can send us a response: it must be strict and fuzzed. For an
// unsupported algorithm or qop it returns the parsed challenge and an error
// wrapping ErrUnsupportedDigest, so a caller can try the next challenge.
func ParseChallenge(v string) (Challenge, error) {
	if strings.ContainsAny(v, "\r\n\x00") {
		return Challenge{}, errors.New("sip: digest challenge contains CR, LF or NUL")
	}
	v = strings.TrimLeft(v, " \t")
	scheme, rest := v, ""
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		scheme, rest = v[:i], v[i:]
	}
	if !strings.EqualFold(scheme, "Digest") {
		return Challenge{}, fmt.Errorf("sip: %q is not a Digest challenge", truncate(scheme))
	}
	params, err := parseAuthParams(rest)
	if err != nil {
		return Challenge{}, err
	}
	realm, ok := params["realm"]
	if !ok {
		return Challenge{}, errors.New("sip: digest challenge without realm")
	}
	c := Challenge{Realm: realm, Nonce: params["nonce"], Opaque: params["opaque"], Algorithm: params["algorithm"]}
	if c.Nonce == "" {
		return Challenge{}, errors.New("sip: digest challenge without nonce")
	}
	c.Stale = strings.EqualFold(params["stale"], "true")
	for _, q := range strings.Split(params["qop"], ",") {
		if q = strings.ToLower(strings.TrimSpace(q)); q != "" {
			c.QOP = append(c.QOP, q)
		}
	}
	switch {
	case c.Algorithm != "" && !strings.EqualFold(c.Algorithm, "MD5") && !strings.EqualFold(c.Algorithm, "MD5-sess"):
		return c, fmt.Errorf("%w: algorithm %q (supported: MD5, MD5-sess)", ErrUnsupportedDigest, truncate(c.Algorithm))
	case len(c.QOP) > 0 && !slices.Contains(c.QOP, "auth"):
		return c, fmt.Errorf("%w: qop %q (supported: auth)", ErrUnsupportedDigest, truncate(params["qop"]))
	}
	return c, nil
}

// Authorize computes the Authorization (or Proxy-Authorization) value for
// a request: method and uri are the request's method and Request-URI, nc
// the nonce count (1 for a fresh nonce), cnonce a random client nonce. Call
// it only on a challenge ParseChallenge accepted: anything that is not
// MD5-sess is answered as MD5. With qop=auth offered it is used (RFC 2617
// 3.2.2.1); without qop the RFC 2069 form is sent.
func (c Challenge) Authorize(method, uri, username, password string, nc uint32, cnonce string) string {
	sess := strings.EqualFold(c.Algorithm, "MD5-sess")
	ha1 := md5hex(username + ":" + c.Realm + ":" + password)
	if sess {
		ha1 = md5hex(ha1 + ":" + c.Nonce + ":" + cnonce)
	}
	ha2 := md5hex(method + ":" + uri)
	qop := slices.Contains(c.QOP, "auth")
	ncs := fmt.Sprintf("%08x", nc)
	var response string
	if qop {
		response = md5hex(ha1 + ":" + c.Nonce + ":" + ncs + ":" + cnonce + ":auth:" + ha2)
	} else {
		response = md5hex(ha1 + ":" + c.Nonce + ":" + ha2)
	}

	var b strings.Builder
	b.WriteString("Digest username=" + quote(username))
	b.WriteString(", realm=" + quote(c.Realm))
	b.WriteString(", nonce=" + quote(c.Nonce))
	b.WriteString(", uri=" + quote(uri))
	b.WriteString(", response=" + quote(response))
	switch {
	case sess:
		b.WriteString(", algorithm=MD5-sess")
	case c.Algorithm != "":
		b.WriteString(", algorithm=MD5")
	}
	if qop || sess {
		b.WriteString(", cnonce=" + quote(cnonce))
	}
	if c.Opaque != "" {
		b.WriteString(", opaque=" + quote(c.Opaque))
	}
	if qop {
		b.WriteString(", qop=auth, nc=" + ncs)
	}
	return b.String()
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// quote writes a quoted-string, escaping the two characters that need it.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// parseAuthParams parses a comma-separated auth-param list:
// name=token or name="quoted string", names case-insensitive. A repeated
// name is an error (RFC 7616 3.3: each MUST NOT appear more than once), so
// two different realms or nonces can never be confused.
func parseAuthParams(s string) (map[string]string, error) {
	params := make(map[string]string, 8)
	i, n := 0, len(s)
	skip := func(set string) {
		for i < n && strings.IndexByte(set, s[i]) >= 0 {
			i++
		}
	}
	for {
		skip(" \t,")
		if i >= n {
			return params, nil
		}
		start := i
		for i < n && isTokenChar(s[i]) {
			i++
		}
		name := strings.ToLower(s[start:i])
		if name == "" {
			return nil, fmt.Errorf("sip: digest parameter expected at %d", i)
		}
		skip(" \t")
		if i >= n || s[i] != '=' {
			return nil, fmt.Errorf("sip: digest parameter %q without value", truncate(name))
		}
		i++
		skip(" \t")
		var value string
		if i < n && s[i] == '"' {
			var b strings.Builder
			i++
			for ; i < n && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < n {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= n {
				return nil, fmt.Errorf("sip: digest parameter %q: unterminated quoted string", truncate(name))
			}
			i++ // closing quote
			value = b.String()
		} else {
			start := i
			for i < n && isTokenChar(s[i]) {
				i++
			}
			value = s[start:i]
		}
		skip(" \t")
		if i < n && s[i] != ',' {
			return nil, fmt.Errorf("sip: digest parameter %q: unexpected %q", truncate(name), s[i])
		}
		if _, dup := params[name]; dup {
			return nil, fmt.Errorf("sip: digest parameter %q repeated", truncate(name))
		}
		params[name] = value
	}
}

// isTokenChar: RFC 3261 token characters.
func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("-.!%*_+`'~", c) >= 0
}
