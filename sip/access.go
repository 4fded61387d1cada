package sip

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// AccessConfig decides who may start calls. An edge with a public address is
// probed by scanners and toll-fraud bots from its first hour, so the answer to
// a stranger is uniform (403, or nothing in quiet mode) whatever it asked for.
type AccessConfig struct {
	// Trunks name the carriers and the sources their calls come from. A
	// call from one of them carries the trunk's name.
	Trunks []TrunkAccess
	// Allow lists further networks (a PBX, a lab) whose calls are accepted.
	Allow []netip.Prefix
	// Quiet drops refused requests without an answer instead of 403.
	Quiet bool
	// RatePerSecond and Burst bound out-of-dialog requests per source IP
	// that is not a trunk; a source that keeps exceeding them is banned for
	// BanFor. Zero RatePerSecond turns the limit off.
	RatePerSecond float64
	Burst         int
	BanFor        time.Duration
	// MaxMessageSize refuses larger requests with 513. Zero: no limit
	// below the parser's own.
	MaxMessageSize int
	// DropUserAgents are case-insensitive User-Agent substrings of SIP
	// scanners; their requests get no answer at all.
	DropUserAgents []string
	// Digest, with users, challenges (401) what strangers start instead of
	// refusing it: a PBX without a fixed address gets in with a password.
	// Strangers are then challenged even in quiet mode, or no one could
	// answer.
	Digest DigestConfig
}

// TrunkAccess is where one trunk's requests come from.
type TrunkAccess struct {
	Name     string
	Networks []netip.Prefix
	// Addresses, when set, returns the trunk's current signalling addresses
	// (the registrar we registered with, resolved from DNS).
	Addresses func() []netip.Addr
}

// DefaultScannerAgents are User-Agent fragments of well-known SIP scanners.
func DefaultScannerAgents() []string {
	return []string{"friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sipsak", "sundayddr", "iwar", "sivus", "smap", "vaxsipuseragent", "pplsip", "voipbuster"}
}

// verdict is what the guard decided about one request.
type verdict int

const (
	admit    verdict = iota
	drop             // no answer at all
	forbid           // 403, or drop when quiet
	tooLarge         // 513
)

// guard applies AccessConfig. It is safe for concurrent use.
type guard struct {
	cfg    AccessConfig
	open   bool // nothing configured: everyone may call (the laptop default)
	agents []string

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	swept   time.Time
	now     func() time.Time
}

type bucket struct {
	tokens  float64
	last    time.Time
	strikes int
	banned  time.Time // until
}

func newGuard(cfg AccessConfig) *guard {
	g := &guard{cfg: cfg, buckets: make(map[netip.Addr]*bucket), now: time.Now}
	// Configured users mean strangers must authenticate: not open.
	g.open = len(cfg.Allow) == 0 && len(cfg.Digest.Users) == 0 && !slices.ContainsFunc(cfg.Trunks, func(t TrunkAccess) bool {
		return len(t.Networks) > 0 || t.Addresses != nil
	})
	for _, a := range cfg.DropUserAgents {
		g.agents = append(g.agents, strings.ToLower(a))
	}
	if g.cfg.Burst <= 0 {
		g.cfg.Burst = max(1, int(2*g.cfg.RatePerSecond))
	}
	if g.cfg.BanFor <= 0 {
		g.cfg.BanFor = 10 * time.Minute
	}
	return g
}

// trunkFor names the trunk src belongs to; ok is false for a stranger.
func (g *guard) trunkFor(src netip.Addr) (name string, ok bool) {
	for _, t := range g.cfg.Trunks {
		for _, p := range t.Networks {
			if p.Contains(src) {
				return t.Name, true
			}
		}
		if t.Addresses != nil && slices.Contains(t.Addresses(), src) {
			return t.Name, true
		}
	}
	for _, p := range g.cfg.Allow {
		if p.Contains(src) {
			return "", true
		}
	}
	return "", g.open
}

// trunkName names the trunk src belongs to, or "".
func (g *guard) trunkName(src netip.Addr) string {
	name, _ := g.trunkFor(src)
	return name
}

// check judges a request. dialogCreating requests need an allowed source;
// every request from a non-trunk source counts against its rate.
func (g *guard) check(req *sipmsg.Request, src netip.Addr, dialogCreating bool) verdict {
	if g.isScanner(req) {
		return drop
	}
	trunk, allowed := g.trunkFor(src)
	if !allowed || trunk == "" {
		// Trunks may legitimately send hundreds of calls a second; the rate
		// limit is for everyone else.
		if !g.allowRate(src) {
			return drop
		}
	}
	if g.cfg.MaxMessageSize > 0 && messageSize(req) > g.cfg.MaxMessageSize {
		return tooLarge
	}
	if dialogCreating && !allowed {
		return forbid
	}
	return admit
}

func (g *guard) isScanner(req *sipmsg.Request) bool {
	if len(g.agents) == 0 {
		return false
	}
	h := req.GetHeader("User-Agent")
	if h == nil {
		return false
	}
	ua := strings.ToLower(h.Value())
	return slices.ContainsFunc(g.agents, func(a string) bool { return strings.Contains(ua, a) })
}

// allowRate is a token bucket per source. Running dry repeatedly earns a ban,
// so a flood costs us one map lookup per packet.
func (g *guard) allowRate(src netip.Addr) bool {
	if g.cfg.RatePerSecond <= 0 {
		return true
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweep(now)
	b := g.buckets[src]
	if b == nil {
		b = &bucket{tokens: float64(g.cfg.Burst), last: now}
		g.buckets[src] = b
	}
	if now.Before(b.banned) {
		return false
	}
	b.tokens = min(float64(g.cfg.Burst), b.tokens+now.Sub(b.last).Seconds()*g.cfg.RatePerSecond)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	b.strikes++
	if b.strikes >= g.cfg.Burst {
		b.banned = now.Add(g.cfg.BanFor)
		b.strikes = 0
	}
	return false
}

// sweep forgets idle, unbanned sources so the table cannot grow without bound
// under a spoofed-source flood.
func (g *guard) sweep(now time.Time) {
	if now.Sub(g.swept) < time.Minute && len(g.buckets) < 100_000 {
		return
	}
	g.swept = now
	for ip, b := range g.buckets {
		if now.After(b.banned) && now.Sub(b.last) > time.Minute {
			delete(g.buckets, ip)
		}
	}
}

// Banned reports whether src is currently banned by the rate limit.
func (g *guard) banned(src netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.buckets[src]
	return b != nil && g.now().Before(b.banned)
}

// messageSize approximates the request's wire size without re-serialising it.
func messageSize(req *sipmsg.Request) int {
	n := len(req.Body()) + len(req.Method) + len(req.Recipient.String()) + 12
	for _, h := range req.Headers() {
		n += len(h.Name()) + len(h.Value()) + 4
	}
	return n
}
