package main

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
)

// TrunkConfig is one carrier trunk.
type TrunkConfig struct {
	Name          string   `yaml:"name"`
	Host          string   `yaml:"host"`
	Port          int      `yaml:"port"`
	Transport     string   `yaml:"transport"`
	Username      string   `yaml:"username"`
	AuthUsername  string   `yaml:"auth_username"`
	Password      Secret   `yaml:"password"`
	PasswordFile  string   `yaml:"password_file"`
	Realm         string   `yaml:"realm"`
	FromUser      string   `yaml:"from_user"`
	FromDomain    string   `yaml:"from_domain"`
	Register      bool     `yaml:"register"`
	Expires       Duration `yaml:"expires"`
	OutboundProxy string   `yaml:"outbound_proxy"`
	KeepAlive     Duration `yaml:"keepalive"`
	CallerIDMode  string   `yaml:"caller_id"`
	Addresses     []string `yaml:"addresses"`
	// InboundNetworks are the carrier's signalling networks (CIDR).
	InboundNetworks []string `yaml:"inbound_networks"`
	// Diversion is the number sent in a Diversion header on transfers.
	Diversion string `yaml:"diversion"`
	// SRTP is "off", "optional" or "required" (SDES-SRTP media).
	SRTP string `yaml:"srtp"`
}

// AccessSection screens who may place calls through the gateway.
type AccessSection struct {
	Allow     []string `yaml:"allow"`
	Quiet     bool     `yaml:"quiet"`
	RateLimit struct {
		PerSecond float64  `yaml:"per_second"`
		Burst     int      `yaml:"burst"`
		BanFor    Duration `yaml:"ban_for"`
	} `yaml:"rate_limit"`
	MaxMessageSize int      `yaml:"max_message_size"`
	DropUserAgents []string `yaml:"drop_user_agents"`
	// Digest lets strangers in with a username and password (401 challenge).
	Digest DigestSection `yaml:"digest"`
}

// AdminConfig is the HTTP listener for health, metrics and call control.
// The bearer token guards everything but /health and /ready (probes) and,
// with PublicMetrics, /metrics; a listener reachable from other hosts must
// have one.
type AdminConfig struct {
	Listen        string `yaml:"listen"`
	Token         Secret `yaml:"token"`
	TokenFile     string `yaml:"token_file"`
	PublicMetrics bool   `yaml:"public_metrics"`
	// Pprof serves Go's profiler under /debug/pprof/ (behind the token).
	Pprof  bool `yaml:"pprof"`
	Twilio struct {
		AccountSid string `yaml:"account_sid"`
		Username   string `yaml:"username"`
		Password   Secret `yaml:"password"`
	} `yaml:"twilio"`
}

// StoreConfig selects where shared call state lives.
type StoreConfig struct {
	Type      string   `yaml:"type"` // memory | redis
	URL       Secret   `yaml:"url"`
	Prefix    string   `yaml:"prefix"`
	Instance  string   `yaml:"instance"`
	Heartbeat Duration `yaml:"heartbeat"`
	TTL       Duration `yaml:"ttl"`
	// OnOutage is what new calls meet while Redis is down: fail_open
	// (local limits only) or refuse.
	OnOutage string `yaml:"on_outage"`
}

// LimitsConfig caps concurrent calls across the fleet.
type LimitsConfig struct {
	MaxCalls   int `yaml:"max_calls"`
	PerTrunk   int `yaml:"per_trunk"`
	PerNumber  int `yaml:"per_number"`
	RejectCode int `yaml:"reject_code"`
	// RetryAfterSec goes with limit refusals as Retry-After (0: none).
	RetryAfterSec int `yaml:"retry_after"`
}

// DrainConfig is how the gateway stops: on SIGTERM or SIGINT it refuses new
// calls and waits for calls in progress; a second signal stops at once.
type DrainConfig struct {
	Timeout    Duration `yaml:"timeout"`
	Unregister bool     `yaml:"unregister"`
}

// CDRConfig says where call records go: the Redis stream <prefix>cdr when
// the store is Redis, a JSON-lines file otherwise, or both.
type CDRConfig struct {
	// File is the JSON-lines file. "auto" (the default) is cdr.jsonl in
	// the config file's directory (the working directory with the embedded
	// defaults), unless the Redis stream takes the records; "" writes no
	// file; any other path is that file, next to the stream if there is
	// one.
	File string `yaml:"file"`
	// Stream sends the records to the Redis stream when store.type is
	// redis (ignored with the memory store).
	Stream bool `yaml:"redis_stream"`
	// dir is the config file's directory, where "auto" puts the file.
	dir string
}

// cdrAuto is cdr.file's default; cdrAutoFile the file it means.
const (
	cdrAuto     = "auto"
	cdrAutoFile = "cdr.jsonl"
)

// cdrSinks says where the records go with a store of storeType: the file
// ("" for none; auto when the file was chosen by default) and whether the
// Redis stream takes them.
func (c CDRConfig) cdrSinks(storeType string) (file string, auto, stream bool) {
	stream = c.Stream && storeType == "redis"
	if c.File != cdrAuto {
		return c.File, false, stream
	}
	if stream {
		return "", true, true
	}
	return filepath.Join(c.dir, cdrAutoFile), true, false
}

// Secret is a string that never prints: passwords and tokens end up in
// %v of a config only as "[redacted]".
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the value either.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// Value reads the secret, from file when it is empty and file is set.
func (s Secret) Value(file string) (string, error) {
	if s != "" || file == "" {
		return string(s), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR network", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// validateSections checks trunks, access, admin, store, limits and CDRs.
func (c *Config) validateSections(bad func(path, format string, args ...any)) {
	seen := map[string]bool{}
	for i, t := range c.Trunks {
		path := fmt.Sprintf("trunks.%d", i)
		switch {
		case t.Name == "":
			bad(path+".name", "every trunk needs a name")
		case seen[t.Name]:
			bad(path+".name", "trunk %q is defined twice", t.Name)
		}
		seen[t.Name] = true
		if t.Host == "" || strings.ContainsAny(t.Host, " \r\n/@;") {
			bad(path+".host", "%q is not a host name or IP address", t.Host)
		}
		switch t.Transport {
		case "", "udp", "tcp", "tls":
		default:
			bad(path+".transport", "%q is not udp, tcp or tls", t.Transport)
		}
		if t.Port < 0 || t.Port > 65535 {
			bad(path+".port", "%d is not a port", t.Port)
		}
		if t.Register && t.Username == "" {
			bad(path+".username", "registration needs a username")
		}
		if t.Password != "" && t.PasswordFile != "" {
			bad(path+".password_file", "set password or password_file, not both")
		}
		if t.PasswordFile != "" {
			if _, err := os.Stat(t.PasswordFile); err != nil {
				bad(path+".password_file", "cannot read %q", t.PasswordFile)
			}
		}
		switch t.CallerIDMode {
		case "", "from", "pai":
		default:
			bad(path+".caller_id", "%q is not from or pai", t.CallerIDMode)
		}
		if _, err := media.ParseSRTPPolicy(t.SRTP); err != nil {
			bad(path+".srtp", "%q is not off, optional or required", t.SRTP)
		}
		if _, err := parsePrefixes(t.InboundNetworks); err != nil {
			bad(path+".inbound_networks", "%v", err)
		}
		if t.Expires != 0 && time.Duration(t.Expires) < 60*time.Second {
			bad(path+".expires", "must be at least 60s")
		}
	}
	if _, err := parsePrefixes(c.Access.Allow); err != nil {
		bad("access.allow", "%v", err)
	}
	if c.Access.RateLimit.PerSecond < 0 || c.Access.RateLimit.Burst < 0 {
		bad("access.rate_limit", "rates must not be negative")
	}
	if c.Admin.Listen != "" {
		ap, err := netip.ParseAddrPort(c.Admin.Listen)
		switch {
		case err != nil:
			bad("admin.listen", "%q is not IP:port (example: 127.0.0.1:8080)", c.Admin.Listen)
		case !ap.Addr().IsLoopback() && c.Admin.Token == "" && c.Admin.TokenFile == "":
			// Without a token, call control would be open to anyone who
			// reaches the port.
			bad("admin.listen", "%s is reachable from other hosts: set admin.token (or token_file), or listen on 127.0.0.1 "+
				"(/health and /ready stay open for probes, /metrics too with public_metrics)", ap)
		}
	}
	switch c.Store.Type {
	case "memory":
	case "redis":
		if !redisURL(string(c.Store.URL)) {
			bad("store.url", "a redis store needs url: redis://host:port/db (or rediss://, or unix:///path/to/redis.sock)")
		}
	default:
		bad("store.type", "%q is not memory or redis", c.Store.Type)
	}
	switch c.Store.OnOutage {
	case "fail_open", "refuse":
	default:
		bad("store.on_outage", "%q is not fail_open or refuse", c.Store.OnOutage)
	}
	if c.Limits.MaxCalls < 0 || c.Limits.PerTrunk < 0 || c.Limits.PerNumber < 0 {
		bad("limits", "limits must not be negative (0 means no limit)")
	}
	if c.Limits.RetryAfterSec < 0 {
		bad("limits.retry_after", "%d is negative: seconds, or 0 for no Retry-After", c.Limits.RetryAfterSec)
	}
	if c.Limits.RejectCode < 400 || c.Limits.RejectCode > 699 {
		bad("limits.reject_code", "%d is not a SIP error code (486 or 503 are usual)", c.Limits.RejectCode)
	}
}

// redisURL accepts the URL forms the store connects with: redis:// and
// rediss:// (Sentinel and Cluster forms included), and unix:// with a
// socket path.
func redisURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "redis", "rediss":
		return true
	case "unix":
		return u.Path != ""
	}
	return false
}

// trunkSRTP maps each trunk's name to its media encryption policy (validated above).
func trunkSRTP(cfg *Config) map[string]media.SRTPPolicy {
	m := make(map[string]media.SRTPPolicy, len(cfg.Trunks))
	for _, t := range cfg.Trunks {
		p, _ := media.ParseSRTPPolicy(t.SRTP)
		m[t.Name] = p
	}
	return m
}

// SIPTLS is SIP over TLS: a listener (on when cert_file is set) and extra
// roots that verify carriers' certificates.
type SIPTLS struct {
	Listen   string `yaml:"listen"` // default: sip.listen's IP, port 5061
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
}

// DigestSection is inbound digest authentication for sources outside the
// trunks' networks and access.allow.
type DigestSection struct {
	Realm    string       `yaml:"realm"`
	NonceTTL Duration     `yaml:"nonce_ttl"`
	Users    []DigestUser `yaml:"users"`
}

// DigestUser is one account a stranger may authenticate as.
type DigestUser struct {
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// validateSecurity checks sip.tls and access.digest.
func (c *Config) validateSecurity(bad func(path, format string, args ...any)) {
	t := c.SIP.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad("sip.tls.cert_file", "set cert_file and key_file together")
	}
	for path, f := range map[string]string{"sip.tls.cert_file": t.CertFile, "sip.tls.key_file": t.KeyFile, "sip.tls.ca_file": t.CAFile} {
		if _, err := os.Stat(f); f != "" && err != nil {
			bad(path, "cannot read %q", f)
		}
	}
	if t.Listen != "" {
		ap, err := netip.ParseAddrPort(t.Listen)
		switch {
		case err != nil:
			bad("sip.tls.listen", "%q is not IP:port (example: 0.0.0.0:5061)", t.Listen)
		case t.CertFile == "":
			bad("sip.tls.listen", "a TLS listener needs cert_file and key_file")
		case ap.Port() == sipPort(c.SIP.Listen):
			bad("sip.tls.listen", "port %d is sip.listen's: TLS needs a port of its own (5061 is usual)", ap.Port())
		}
	}
	d := c.Access.Digest
	if len(d.Users) > 0 && (d.Realm == "" || strings.ContainsAny(d.Realm, "\"\\\r\n")) {
		bad("access.digest.realm", "set a realm (no quotes or backslashes) for the digest users")
	}
	if d.NonceTTL != 0 && time.Duration(d.NonceTTL) < 10*time.Second {
		bad("access.digest.nonce_ttl", "must be at least 10s")
	}
	seen := map[string]bool{}
	for i, u := range d.Users {
		path := fmt.Sprintf("access.digest.users.%d", i)
		switch {
		case u.Username == "" || strings.ContainsAny(u.Username, "\"\\\r\n"):
			bad(path+".username", "set a username without quotes, backslashes or line breaks")
		case seen[u.Username]:
			bad(path+".username", "user %q is listed twice", u.Username)
		}
		seen[u.Username] = true
		switch {
		case (u.Password == "") == (u.PasswordFile == ""):
			bad(path+".password", "set password or password_file (one of them)")
		case u.PasswordFile != "":
			if _, err := os.Stat(u.PasswordFile); err != nil {
				bad(path+".password_file", "cannot read %q", u.PasswordFile)
			}
		}
	}
}

// sipPort is sip.listen's port, 0 when it does not parse.
func sipPort(listen string) uint16 {
	ap, _ := netip.ParseAddrPort(listen)
	return ap.Port()
}

// digestConfig reads the digest users' passwords (from their files too).
func digestConfig(c *Config) (sip.DigestConfig, error) {
	d := sip.DigestConfig{Realm: c.Access.Digest.Realm, NonceTTL: time.Duration(c.Access.Digest.NonceTTL)}
	for _, u := range c.Access.Digest.Users {
		pw, err := u.Password.Value(u.PasswordFile)
		if err != nil {
			return sip.DigestConfig{}, fmt.Errorf("access.digest user %s: %w", u.Username, err)
		}
		if d.Users == nil {
			d.Users = make(map[string]string, len(c.Access.Digest.Users))
		}
		d.Users[u.Username] = pw
	}
	return d, nil
}
