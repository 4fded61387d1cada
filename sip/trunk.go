package sip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Trunk is one carrier account: where its signalling goes, how we
// authenticate, and whether we register and probe it. The cmd layer maps the
// YAML configuration onto it; Normalize fills the defaults.
type Trunk struct {
	Name string
	// Host is the carrier's domain or IP. With Port 0 and a domain, the
	// next hops come from DNS SRV, then A/AAAA (RFC 3263); an explicit Port
	// skips SRV, as RFC 3263 4.2 says.
	Host      string
	Port      int
	Transport string // "udp" (default), "tcp" or "tls"

	// Username is the account; AuthUsername the digest user when it differs.
	// Password is never logged nor put in an error. Realm, when set, is the
	// only digest realm we answer: credentials are not given to another one.
	Username, AuthUsername, Password, Realm string

	FromUser   string // From and Contact user; default Username
	FromDomain string // From and To domain; default Host

	Register bool
	Expires  time.Duration // requested registration lifetime; default 3600 s

	OutboundProxy string        // host[:port]: every request goes there first
	KeepAlive     time.Duration // OPTIONS interval; 0 = no probing
	CallerIDMode  string        // "from" (default) or "pai"
	// Addresses, when set, are the next hops (host:port) in failover order,
	// instead of DNS.
	Addresses []string

	// Diversion is the number put in a Diversion header on transfers
	// (REFER and the bridged leg): Telnyx requires its own number there.
	Diversion string
	// SRTP is the media encryption policy: "off" (default), "optional"
	// (offer and accept SDES-SRTP) or "required" (refuse plain RTP).
	SRTP string
}

// Caller id modes: where DialOptions.CallerID goes.
const (
	CallerIDFrom = "from" // in the From header
	CallerIDPAI  = "pai"  // in P-Asserted-Identity; From stays the account
)

const defaultRegisterExpires = 3600 * time.Second

// ErrBadTrunk is wrapped by every configuration error Normalize reports.
var ErrBadTrunk = errors.New("sip: bad trunk configuration")

// Normalize returns the trunk with defaults filled in, or an error naming
// the field that is wrong. Values end up in SIP headers, so CR/LF and
// characters that would change a URI's structure are refused here, once.
func (t Trunk) Normalize() (Trunk, error) {
	bad := func(format string, args ...any) (Trunk, error) {
		return Trunk{}, fmt.Errorf("%w: trunk %q: %s", ErrBadTrunk, t.Name, fmt.Sprintf(format, args...))
	}
	t.Transport = strings.ToLower(t.Transport)
	switch t.Transport {
	case "":
		t.Transport = "udp"
	case "udp", "tcp", "tls":
	default:
		return bad("transport %q is not udp, tcp or tls", t.Transport)
	}
	if err := checkHost(t.Host); err != nil {
		return bad("host: %v", err)
	}
	if t.Port < 0 || t.Port > 65535 {
		return bad("port %d out of range", t.Port)
	}
	if t.AuthUsername == "" {
		t.AuthUsername = t.Username
	}
	if t.FromUser == "" {
		t.FromUser = t.Username
	}
	if t.FromDomain == "" {
		t.FromDomain = t.Host
	}
	for name, v := range map[string]string{"name": t.Name, "username": t.Username, "auth_username": t.AuthUsername, "realm": t.Realm} {
		if err := CheckHeaderValue(v); err != nil {
			return bad("%s: %v", name, err)
		}
	}
	if strings.ContainsAny(t.Password, "\r\n\x00") {
		return bad("password contains CR, LF or NUL") // the value itself stays out of the error
	}
	if err := checkUserPart(t.FromUser); err != nil {
		return bad("from user: %v", err)
	}
	if err := checkHost(t.FromDomain); err != nil {
		return bad("from domain: %v", err)
	}
	switch {
	case t.Expires == 0:
		t.Expires = defaultRegisterExpires
	case t.Expires < time.Second:
		return bad("expires %v is below one second", t.Expires)
	}
	t.Expires = t.Expires.Truncate(time.Second) // Expires is whole seconds on the wire
	if t.KeepAlive < 0 {
		return bad("keepalive %v is negative", t.KeepAlive)
	}
	t.CallerIDMode = strings.ToLower(t.CallerIDMode)
	switch t.CallerIDMode {
	case "":
		t.CallerIDMode = CallerIDFrom
	case CallerIDFrom, CallerIDPAI:
	default:
		return bad("caller id mode %q is not from or pai", t.CallerIDMode)
	}
	if t.OutboundProxy != "" {
		if _, _, err := splitHostPort(t.OutboundProxy, 0); err != nil {
			return bad("outbound proxy: %v", err)
		}
	}
	for _, a := range t.Addresses {
		if _, _, err := splitHostPort(a, 0); err != nil {
			return bad("address: %v", err)
		}
	}
	return t, nil
}

// String describes the trunk without its password, for logs and errors
// (fmt's %v and %+v use it).
func (t Trunk) String() string {
	return fmt.Sprintf("trunk %q %s:%d/%s user %q password %s", t.Name, t.Host, t.Port, t.Transport, t.Username, redacted(t.Password))
}

// GoString keeps %#v from printing the password too.
func (t Trunk) GoString() string { return "sip.Trunk{" + t.String() + "}" }

// LogValue makes slog print the trunk without its password.
func (t Trunk) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", t.Name),
		slog.String("host", t.Host),
		slog.Int("port", t.Port),
		slog.String("transport", t.Transport),
		slog.String("username", t.Username),
		slog.String("password", redacted(t.Password)),
		slog.Bool("register", t.Register),
	)
}

func redacted(p string) string {
	if p == "" {
		return "(none)"
	}
	return "[redacted]"
}

// credentials are what digest challenges on this trunk are answered with.
func (t Trunk) credentials() credentials {
	return credentials{Username: t.AuthUsername, Password: t.Password, Realm: t.Realm}
}

// uriHost is the host[:port] of the trunk's request URIs.
func (t Trunk) uriHost() string {
	h := t.Host
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
		h = "[" + h + "]"
	}
	if t.Port > 0 {
		return h + ":" + strconv.Itoa(t.Port)
	}
	return h
}

// sipTransport is the transport as sipgo and Via spell it.
func sipTransport(tr string) string { return strings.ToUpper(tr) }

// checkHost accepts an IP address (IPv6 with or without brackets) or a DNS
// name: nothing that could end a URI or a header.
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty")
	}
	if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil {
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("%q is too long", h)
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("%q is neither an IP address nor a host name", h)
		}
	}
	return nil
}

// checkUserPart accepts the characters RFC 3261 allows unescaped in a SIP
// URI's user part (unreserved and user-unreserved) plus %-escapes: phone
// numbers, account names. "" is allowed (means unset).
func checkUserPart(u string) error {
	for _, c := range u {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("-_.!~*'()&=+$,;?/%", c) {
			return fmt.Errorf("user %q: character %q is not allowed in a SIP URI user part", u, c)
		}
	}
	return nil
}

// splitHostPort splits host[:port] (IPv6 in brackets when a port is given);
// a missing port is def.
func splitHostPort(s string, def int) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the whole string is the host.
		host, portStr = s, ""
	}
	if err := checkHost(host); err != nil {
		return "", 0, err
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if portStr == "" {
		return host, def, nil
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q in %q is not a port number", portStr, s)
	}
	return host, port, nil
}

// defaultPort is the SIP port for a transport when nothing names one.
func defaultPort(transport string) int {
	if transport == "tls" {
		return 5061
	}
	return 5060
}
