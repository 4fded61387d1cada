package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// TLSConfig is SIP over TLS (RFC 3261 26.3.1): the listener carriers call
// us on, and the roots their certificates are verified against when we
// call them. The cmd layer loads the files once and hands the values here.
type TLSConfig struct {
	// Listen is the TLS listener's address; the zero value serves no TLS
	// (outbound TLS to trunks still works).
	Listen netip.AddrPort
	// Certificates are what the listener presents, and what we present
	// when a carrier asks our client side for a certificate.
	Certificates []tls.Certificate
	// RootCAs verify the far end's certificate; nil means the system roots.
	RootCAs *x509.CertPool
}

// tlsHandshakeTimeout bounds connecting and the handshake of one TLS
// connection we open, whatever the request's own deadline.
const tlsHandshakeTimeout = 10 * time.Second

func (c TLSConfig) server() *tls.Config {
	return &tls.Config{Certificates: c.Certificates, MinVersion: tls.VersionTLS12}
}

// client is what sipgo dials TLS with when it opens a connection itself
// (to a DNS name, or to an IP when the request names that IP): verified
// against that name, never skipped.
func (c TLSConfig) client() *tls.Config {
	return &tls.Config{RootCAs: c.RootCAs, Certificates: c.Certificates, MinVersion: tls.VersionTLS12}
}

// requester sends every request of our client. It exists because the
// client is pinned to the UDP listener (see NewServer) and sipgo applies
// that pin to TCP and TLS too: a stream would be dialled from the
// listener's own port (EADDRINUSE next to the TCP listener) or share an
// unrelated connection. It also opens TLS connections to trunks itself,
// so that they are verified against the trunk's name, not its IP.
type requester struct{ s *Server }

func (r requester) Request(ctx context.Context, req *sipmsg.Request) (sipmsg.ClientTransaction, error) {
	if err := r.s.prepareStream(ctx, req); err != nil {
		return nil, err
	}
	if req.IsAck() {
		// sipgo's WriteRequest path: an ACK has no transaction.
		return nil, r.s.ua.TransportLayer().WriteMsg(req)
	}
	tx, err := r.s.ua.TransactionLayer().Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// prepareStream lifts the UDP pin from stream requests and, for TLS to an
// IP next hop chosen by us, opens a connection verified against the name
// the request is for.
func (s *Server) prepareStream(ctx context.Context, req *sipmsg.Request) error {
	network := strings.ToLower(req.Transport())
	if network == "udp" || network == "" {
		return nil
	}
	// A stream gets its own local port; sipgo reuses it by remote address.
	req.Laddr = sipmsg.Addr{}
	if network != "tls" {
		return nil
	}
	host, port, err := sipmsg.ParseAddr(req.Destination())
	if err != nil {
		return fmt.Errorf("sip: TLS destination %q: %w", req.Destination(), err)
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	name := tlsName(req)
	if err != nil || name == "" || isIP(name) {
		// sipgo dials the destination itself and verifies the name it
		// dials: a DNS name, or an IP the request itself names.
		return nil
	}
	if port == 0 {
		port = defaultPort("tls")
	}
	return s.tlsConns.ensure(ctx, netip.AddrPortFrom(ip.Unmap(), uint16(port)), name)
}

// tlsName is the host a TLS connection for req must prove to be (RFC
// 5922 4): the first Route's (an outbound proxy), else the Request-URI's.
func tlsName(req *sipmsg.Request) string {
	uri := req.Recipient
	if r := req.Route(); r != nil {
		uri = r.Address
	}
	return strings.Trim(uri.Host, "[]")
}

// tlsConns opens TLS connections for sipgo and gives them to its TLS
// transport through a listener it serves (the only way into sipgo's
// connection pool from outside), where requests to the same address then
// find and reuse them.
type tlsConns struct {
	tp interface {
		GetConnection(network, addr string) (sipmsg.Connection, error)
	}
	config *tls.Config
	ln     *handoff
	locks  sync.Map // address -> *sync.Mutex: one dial per address at a time
}

// ensure makes sure sipgo holds a TLS connection to addr whose certificate
// was verified for name.
func (c *tlsConns) ensure(ctx context.Context, addr netip.AddrPort, name string) error {
	key := addr.String() // sipgo's pool key: the remote address
	mu, _ := c.locks.LoadOrStore(key, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if conn, err := c.tp.GetConnection("tls", key); err == nil && conn != nil {
		_, _ = conn.TryClose() // GetConnection took a reference
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", key)
	if err != nil {
		return fmt.Errorf("sip: TLS to %s at %s: %w", name, key, err)
	}
	conf := c.config.Clone()
	conf.ServerName = name // SNI and the name the certificate must carry
	conn := tls.Client(raw, conf)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return fmt.Errorf("sip: TLS to %s at %s: %w", name, key, err)
	}
	if err := c.ln.give(ctx, conn); err != nil {
		_ = conn.Close()
		return fmt.Errorf("sip: TLS to %s at %s: %w", name, key, err)
	}
	return nil
}

// handoff is a net.Listener whose connections are the ones we dialled.
// sipgo's Serve loop registers each accepted connection in its pool and
// then calls Accept again: that next call is how give knows the
// connection is in the pool.
type handoff struct {
	addr   net.Addr
	conns  chan handed
	closed chan struct{}
	once   sync.Once
	prev   chan struct{} // owned by the Accept goroutine
}

type handed struct {
	conn net.Conn
	done chan struct{}
}

var errNotServing = errors.New("sip: not serving")

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, conns: make(chan handed), closed: make(chan struct{})}
}

func (h *handoff) Accept() (net.Conn, error) {
	if h.prev != nil {
		close(h.prev)
		h.prev = nil
	}
	select {
	case c := <-h.conns:
		h.prev = c.done
		return c.conn, nil
	case <-h.closed:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.closed) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }

// give hands conn to sipgo and returns once it is in the pool.
func (h *handoff) give(ctx context.Context, conn net.Conn) error {
	c := handed{conn: conn, done: make(chan struct{})}
	select {
	case h.conns <- c:
	case <-h.closed:
		return errNotServing
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-c.done:
		return nil
	case <-h.closed:
		return errNotServing
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handshakeListener gives each accepted connection tlsHandshakeTimeout to
// finish its handshake: sipgo reads without a deadline, so a client that
// connects and says nothing would otherwise hold a socket and a goroutine
// for ever.
type handshakeListener struct {
	net.Listener
	conf *tls.Config
}

func (l handshakeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(c, l.conf)}, nil
}

// serverConn shakes hands, bounded, on its first Read (sipgo's reader
// goroutine), not in Accept: one slow client must not stall the others.
type serverConn struct {
	*tls.Conn
	once sync.Once
	err  error
}

func (c *serverConn) Read(b []byte) (int, error) {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
		defer cancel()
		c.err = c.HandshakeContext(ctx)
	})
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(b)
}
