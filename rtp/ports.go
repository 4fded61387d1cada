package rtp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ErrNoPorts is returned (wrapped) by PortPool.Allocate when no pair can be handed out.
var ErrNoPorts = errors.New("rtp: no free ports")

// PortPool hands out pairs of UDP sockets: RTP on an even port, RTCP on the next odd one.
// It is safe for concurrent use.
type PortPool struct {
	ip         netip.Addr
	network    string
	quarantine time.Duration
	pairs      int
	now        func() time.Time // replaced in tests to step through quarantine without sleeping

	mu    sync.Mutex
	free  []freePair // FIFO, least recently released first, so releasedAt never decreases
	inUse map[int]struct{}
}

type freePair struct {
	port       int
	releasedAt time.Time
}

// NewPortPool serves even RTP ports in [min,max] (RTCP takes port+1, which must also lie in
// the range) bound on ip. A released pair is not handed out again for at least quarantine,
// so stale packets of the old call cannot reach a new one; reuse is FIFO (least recently
// released first), which also spreads calls over the range.
func NewPortPool(ip netip.Addr, min, max int, quarantine time.Duration) (*PortPool, error) {
	if !ip.IsValid() {
		return nil, errors.New("rtp: port pool: invalid IP address")
	}
	if min < 1 || max > 65535 || min > max {
		return nil, fmt.Errorf("rtp: port pool: invalid range %d-%d", min, max)
	}
	if quarantine < 0 {
		return nil, fmt.Errorf("rtp: port pool: negative quarantine %v", quarantine)
	}
	first := min + min%2
	p := &PortPool{
		ip:         ip.Unmap(),
		network:    "udp6",
		quarantine: quarantine,
		now:        time.Now,
		inUse:      make(map[int]struct{}),
	}
	if p.ip.Is4() {
		// "udp" would give a dual-stack socket reporting IPv4-mapped sources, which then
		// never compare equal to the IPv4 remote from SDP.
		p.network = "udp4"
	}
	for port := first; port+1 <= max; port += 2 {
		p.free = append(p.free, freePair{port: port})
	}
	p.pairs = len(p.free)
	if p.pairs == 0 {
		return nil, fmt.Errorf("rtp: port pool: range %d-%d holds no even/odd pair", min, max)
	}
	return p, nil
}

// Allocate binds a UDP socket on an even port and one on port+1, skipping ports the OS
// refuses (for example in use by another process). It returns ErrNoPorts, wrapped, when
// every pair is in use, in quarantine, or refused.
func (p *PortPool) Allocate() (rtpConn, rtcpConn *net.UDPConn, port int, err error) {
	var lastErr error
	for range p.pairs {
		candidate, ok := p.take()
		if !ok {
			break
		}
		rtpConn, rtcpConn, err = p.bind(candidate)
		if err != nil {
			// Someone else owns it: send it to the back of the queue and try the next one.
			lastErr = err
			p.giveBack(candidate)
			continue
		}
		return rtpConn, rtcpConn, candidate, nil
	}
	if lastErr != nil {
		return nil, nil, 0, fmt.Errorf("%w (%d pairs in use; last bind error: %w)", ErrNoPorts, p.InUse(), lastErr)
	}
	return nil, nil, 0, fmt.Errorf("%w (%d of %d pairs in use, the rest in quarantine)", ErrNoPorts, p.InUse(), p.pairs)
}

// Release returns a pair to the pool after its quarantine. The caller closes the conns
// first. Releasing a port that is not allocated is ignored, so a double release cannot hand
// one pair to two calls.
func (p *PortPool) Release(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.inUse[port]; !ok {
		return
	}
	delete(p.inUse, port)
	p.free = append(p.free, freePair{port: port, releasedAt: p.now()})
}

// InUse returns the number of allocated pairs.
func (p *PortPool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inUse)
}

// take pops the least recently released pair if its quarantine is over. Because the queue is
// ordered by release time, a head still in quarantine means every other pair is too.
func (p *PortPool) take() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return 0, false
	}
	head := p.free[0]
	if !head.releasedAt.IsZero() && p.now().Sub(head.releasedAt) < p.quarantine {
		return 0, false
	}
	p.free = p.free[1:]
	p.inUse[head.port] = struct{}{}
	return head.port, true
}

// giveBack undoes take after a failed bind.
func (p *PortPool) giveBack(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.inUse, port)
	p.free = append(p.free, freePair{port: port, releasedAt: p.now()})
}

func (p *PortPool) bind(port int) (rtpConn, rtcpConn *net.UDPConn, err error) {
	rtpConn, err = net.ListenUDP(p.network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port))))
	if err != nil {
		return nil, nil, fmt.Errorf("bind RTP port %d: %w", port, err)
	}
	rtcpConn, err = net.ListenUDP(p.network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port+1))))
	if err != nil {
		rtpConn.Close()
		return nil, nil, fmt.Errorf("bind RTCP port %d: %w", port+1, err)
	}
	return rtpConn, rtcpConn, nil
}
