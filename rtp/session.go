package rtp

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInactive is returned (wrapped) by ReadLoop when no RTP arrived for InactivityTimeout.
var ErrInactive = errors.New("rtp: media inactivity timeout")

const (
	maxPacketSize       = 1500 // largest datagram accepted or sent
	readBufferSize      = 2048 // larger than maxPacketSize so oversize datagrams are seen as such
	defaultClockRate    = 8000
	defaultRTCPInterval = 5 * time.Second
)

// Config describes one call leg's media.
type Config struct {
	Pool *PortPool
	// Remote is the address from SDP. The zero value means unknown yet (late offer): nothing
	// is sent until it is known or latched.
	Remote netip.AddrPort
	// Latch enables symmetric RTP: the source of the first valid packet becomes the remote,
	// and packets from other sources are dropped, until SetRemote is called again.
	Latch bool
	// PayloadTypes are accepted (audio and telephone-event); other packets are dropped.
	PayloadTypes []uint8
	// ClockRate of the audio, 8000 when zero.
	ClockRate uint32
	// InactivityTimeout ends ReadLoop with ErrInactive when no RTP arrives for this long
	// (callers use 30 s). Zero turns it off.
	InactivityTimeout time.Duration
	// RTCPInterval between reports, 5 s when zero, no reports when negative. Each interval
	// is randomised by ±50% (RFC 3550 6.2) so calls started together do not report together.
	RTCPInterval time.Duration
	// CNAME for RTCP SDES; a random one when empty.
	CNAME  string
	Logger *slog.Logger
}

// Session is one call leg's RTP/RTCP socket pair. One goroutine writes, one runs ReadLoop;
// Stats, Remote, SetRemote and SetHold are safe from any goroutine.
type Session struct {
	pool     *PortPool
	port     int
	rtpConn  *net.UDPConn
	rtcpConn *net.UDPConn

	log          *slog.Logger
	latch        bool
	clockRate    uint32
	inactivity   time.Duration
	rtcpInterval time.Duration
	cname        string
	payloadTypes [2]uint64 // bit set per accepted payload type (0-127)
	epoch        time.Time // monotonic origin for arrival times

	peers peers
	tx    sender
	rx    receiver
	srtcp srtcpState

	hold        atomic.Bool
	lastRTP     atomic.Int64 // nanoseconds since epoch of the last accepted RTP packet
	rtcpSent    atomic.Uint64
	rtcpRecv    atomic.Uint64
	reading     atomic.Bool
	closed      atomic.Bool
	closeOnce   sync.Once
	closeResult error

	// srtcpDropped counts RTCP datagrams SRTCP refused: bad tag, replay, malformed.
	srtcpDropped atomic.Uint64
	srtpMu       sync.Mutex // serialises SetSRTP
	srtpKeys     SRTPKeys   // what SetSRTP last applied
}

// peers is where we send and whom we accept from. Guarded by mu because SetRemote (signalling
// goroutine), latching (reader) and sending (writer) all touch it.
type peers struct {
	mu         sync.Mutex
	remote     netip.AddrPort // RTP destination; invalid = send nothing
	armed      bool           // the next valid packet's source becomes remote (symmetric RTP)
	latched    bool           // packets from other sources than source are dropped
	source     netip.AddrPort // latched RTP source
	rtcpRemote netip.AddrPort // latched RTCP source; invalid = remote port+1
}

// Open allocates a port pair from cfg.Pool and prepares the session. Nothing is read until
// ReadLoop runs.
func Open(cfg Config) (*Session, error) {
	if cfg.Pool == nil {
		return nil, errors.New("rtp: open session: no port pool")
	}
	s, err := newSession(cfg)
	if err != nil {
		return nil, err
	}
	rtpConn, rtcpConn, port, err := cfg.Pool.Allocate()
	if err != nil {
		return nil, fmt.Errorf("rtp: open session: %w", err)
	}
	s.pool, s.rtpConn, s.rtcpConn, s.port = cfg.Pool, rtpConn, rtcpConn, port
	s.log = s.log.With("rtp_port", port)
	return s, nil
}

// newSession builds everything but the sockets, so the packet paths can be tested, fuzzed
// and benchmarked without syscalls.
func newSession(cfg Config) (*Session, error) {
	if len(cfg.PayloadTypes) == 0 {
		return nil, errors.New("rtp: open session: no payload types")
	}
	s := &Session{
		log:          cfg.Logger,
		latch:        cfg.Latch,
		clockRate:    cfg.ClockRate,
		inactivity:   cfg.InactivityTimeout,
		rtcpInterval: cfg.RTCPInterval,
		cname:        cfg.CNAME,
		epoch:        time.Now(),
	}
	for _, pt := range cfg.PayloadTypes {
		if pt > 127 {
			return nil, fmt.Errorf("rtp: open session: payload type %d out of range", pt)
		}
		s.payloadTypes[pt/64] |= 1 << (pt % 64)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clockRate == 0 {
		s.clockRate = defaultClockRate
	}
	if s.rtcpInterval == 0 {
		s.rtcpInterval = defaultRTCPInterval
	}
	s.tx.init(rand.Uint32(), uint16(rand.Uint32()), rand.Uint32())
	if s.cname == "" {
		s.cname = fmt.Sprintf("%08x@switchboard", rand.Uint32())
	}
	if len(s.cname) > 255 {
		s.cname = s.cname[:255] // SDES items carry an 8-bit length
	}
	s.peers.remote = usableRemote(cfg.Remote)
	s.peers.armed = cfg.Latch
	return s, nil
}

// LocalPort is the RTP port to put in SDP (RTCP is LocalPort+1).
func (s *Session) LocalPort() int { return s.port }

// SetRemote points the session at a new remote (a re-INVITE moved the far end). With Latch,
// the next valid packet's source is latched again. A zero or unspecified address (c=0.0.0.0
// hold) stops sending and leaves the receive side as it is.
func (s *Session) SetRemote(addr netip.AddrPort) {
	addr = usableRemote(addr)
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	s.peers.remote = addr
	s.peers.rtcpRemote = netip.AddrPort{}
	if addr.IsValid() && s.latch {
		s.peers.armed = true
		s.peers.latched = false
	} else {
		// Hold: latching now would resume sending on the first packet the far end sends.
		s.peers.armed = false
	}
}

// Remote is where RTP is sent now (after latching); zero when nothing is sent.
func (s *Session) Remote() netip.AddrPort {
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	return s.peers.remote
}

// SetHold suspends the inactivity timeout while on hold: a held far end may legitimately
// stop sending. Leaving hold restarts the timeout from now.
func (s *Session) SetHold(on bool) {
	if !on {
		s.lastRTP.Store(int64(time.Since(s.epoch)))
	}
	s.hold.Store(on)
}

// Close closes both sockets, which ends ReadLoop, and returns the ports to the pool. It is
// idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		var errs []error
		if s.rtpConn != nil {
			errs = append(errs, s.rtpConn.Close())
		}
		if s.rtcpConn != nil {
			errs = append(errs, s.rtcpConn.Close())
		}
		if s.pool != nil {
			s.pool.Release(s.port)
		}
		if err := errors.Join(errs...); err != nil {
			s.closeResult = fmt.Errorf("rtp: close: %w", err)
		}
	})
	return s.closeResult
}

// usableRemote maps "no destination" (zero, unspecified address, port 0) to the zero value
// and IPv4-mapped addresses to plain IPv4 so they compare equal to packet sources.
func usableRemote(addr netip.AddrPort) netip.AddrPort {
	if !addr.IsValid() || addr.Addr().IsUnspecified() || addr.Port() == 0 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
}

// acceptsPayloadType reports whether pt was configured.
func (s *Session) acceptsPayloadType(pt uint8) bool {
	return pt < 128 && s.payloadTypes[pt/64]&(1<<(pt%64)) != 0
}

// sinceEpoch is now on the session's monotonic clock.
func (s *Session) sinceEpoch(now time.Time) time.Duration { return now.Sub(s.epoch) }

// rtpUnits converts a time on the session clock to timestamp units (wrapping).
func (s *Session) rtpUnits(d time.Duration) uint32 {
	return uint32(samplesIn(d, s.clockRate))
}
