package sip

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// testCA signs the certificates of one test, in memory.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var certSerial atomic.Int64

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(certSerial.Add(1)),
		Subject:               pkix.Name{CommonName: "switchboard test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a server certificate for names (DNS names or IPs).
func (ca *testCA) leaf(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(certSerial.Add(1)),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range names {
		if ip, err := netip.ParseAddr(n); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// freeTCPAddr is a loopback TCP address that was free a moment ago.
func freeTCPAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return netip.MustParseAddrPort(l.Addr().String())
}

// TestTLSInviteThroughTrunk: one Server dials another through a TLS trunk.
// The certificate must be issued by a trusted CA for the trunk's host
// name (or its IP, when the trunk is configured by IP); the connection goes
// to the explicit address, so no name is resolved.
func TestTLSInviteThroughTrunk(t *testing.T) {
	const gwName = "gw.switchboard.test"
	ca, otherCA := newTestCA(t), newTestCA(t)
	for _, tc := range []struct {
		name      string
		host      string // the trunk's host
		cert      tls.Certificate
		wantErr   any // pointer to the error type expected in the chain; nil: answered
		errSubstr string
	}{
		{name: "certificate for the trunk's name", host: gwName, cert: ca.leaf(t, gwName)},
		{name: "trunk by IP, IP in the certificate", host: "127.0.0.1", cert: ca.leaf(t, "127.0.0.1")},
		{name: "certificate for another name", host: gwName, cert: ca.leaf(t, "other.switchboard.test", "127.0.0.1"),
			wantErr: new(x509.HostnameError), errSubstr: "TLS to " + gwName},
		{name: "untrusted issuer", host: gwName, cert: otherCA.leaf(t, gwName),
			wantErr: new(x509.UnknownAuthorityError), errSubstr: "TLS to " + gwName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tlsAddr := freeTCPAddr(t)
			calls := make(chan *InboundCall, 1)
			startServer(t, func(ctx context.Context, c *InboundCall) {
				calls <- c
				if _, err := c.Answer(ctx, []byte(answerSDP)); err != nil {
					return
				}
				<-ctx.Done()
			}, func(c *Config) {
				c.TLS = TLSConfig{Listen: tlsAddr, Certificates: []tls.Certificate{tc.cert}}
			})
			client := startServer(t, func(ctx context.Context, c *InboundCall) { _ = c.Reject(486, "") }, func(c *Config) {
				c.TLS = TLSConfig{RootCAs: ca.pool}
			})

			// A client that connects and never shakes hands must not
			// hold up the others.
			idle, err := net.Dial("tcp", tlsAddr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer idle.Close()

			trunk := &Trunk{Name: "gw", Host: tc.host, Port: int(tlsAddr.Port()), Transport: "tls", Addresses: []string{tlsAddr.String()}}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			call, err := client.Dial(ctx, "+15550100", []byte(offerSDP), DialOptions{Trunk: trunk})
			if tc.wantErr != nil {
				if err == nil {
					_ = call.Hangup(ctx, CauseNormal.Reason())
					t.Fatal("the call was answered over a certificate that must be refused")
				}
				if !errors.As(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Fatalf("error %q: want a %T naming %q", err, tc.wantErr, tc.errSubstr)
				}
				select {
				case c := <-calls:
					t.Fatalf("the gateway got call %s over a refused connection", c.CallID)
				default:
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial over TLS: %v", err)
			}
			gwCall := recv(t, calls, "the call at the gateway")
			if !strings.EqualFold(gwCall.Transport, "tls") {
				t.Errorf("gateway saw transport %q, want TLS", gwCall.Transport)
			}
			if !strings.HasSuffix(gwCall.RequestURI, ";transport=tls") || !strings.Contains(gwCall.RequestURI, tc.host) {
				t.Errorf("Request-URI %q: want the trunk host and transport=tls", gwCall.RequestURI)
			}
			contact := call.dlg.InviteResponse.Contact()
			if tr, _ := contact.Address.UriParams.Get("transport"); tr != "tls" || contact.Address.Port != int(tlsAddr.Port()) {
				t.Errorf("gateway Contact %s: want its TLS port %d and transport=tls", contact.Address.String(), tlsAddr.Port())
			}
			if err := call.Hangup(ctx, CauseNormal.Reason()); err != nil {
				t.Fatalf("BYE over TLS: %v", err)
			}
			closed(t, gwCall.Done(), "the gateway's call to end on BYE")
			if !errors.Is(gwCall.Err(), ErrRemoteHangup) {
				t.Errorf("gateway call ended with %v, want the caller's BYE", gwCall.Err())
			}
		})
	}
}

// tlsRegistrar is a registrar on sipgo's own TLS server: it challenges the
// first REGISTER of a series with 401 and checks the answer.
type tlsRegistrar struct {
	addr       netip.AddrPort
	registered chan *sipmsg.Request // every REGISTER it accepted
}

func startTLSRegistrar(t *testing.T, cert tls.Certificate, user, password string) *tlsRegistrar {
	t.Helper()
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	r := &tlsRegistrar{registered: make(chan *sipmsg.Request, 8)}
	ch := Challenge{Realm: "switchboard.test", Nonce: "registrar-nonce", QOP: []string{"auth"}}
	srv.OnRegister(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		h := req.GetHeader("Authorization")
		if h == nil {
			res := sipmsg.NewResponseFromRequest(req, 401, "Unauthorized", nil)
			res.AppendHeader(sipmsg.NewHeader("WWW-Authenticate", `Digest realm="switchboard.test", nonce="registrar-nonce", qop="auth"`))
			_ = tx.Respond(res)
			return
		}
		cr, err := ParseCredentials(h.Value())
		nc, _ := strconv.ParseUint(cr.NC, 16, 32)
		want, _ := ParseCredentials(ch.Authorize(string(req.Method), cr.URI, user, password, uint32(nc), cr.CNonce))
		if err != nil || cr.Response != want.Response {
			_ = tx.Respond(sipmsg.NewResponseFromRequest(req, 403, "Forbidden", nil))
			return
		}
		r.registered <- req
		res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
		if c := req.Contact(); c != nil {
			res.AppendHeader(sipmsg.HeaderClone(c))
		}
		res.AppendHeader(sipmsg.NewHeader("Expires", headerOf(req, "Expires")))
		_ = tx.Respond(res)
	})
	l, err := tls.Listen("tcp4", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	r.addr = netip.MustParseAddrPort(l.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(l) }()
	t.Cleanup(func() {
		_ = l.Close()
		<-served
		_ = ua.Close()
	})
	return r
}

func headerOf(req *sipmsg.Request, name string) string {
	if h := req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// TestTLSRegister: a TLS trunk registers over TLS with digest, the
// registrar's certificate verified for its name, and withdraws the
// registration (Expires: 0) over the same connection.
func TestTLSRegister(t *testing.T) {
	const name = "registrar.switchboard.test"
	ca := newTestCA(t)
	reg := startTLSRegistrar(t, ca.leaf(t, name), "alice", "s3cret")
	srv := startServer(t, nil, func(c *Config) { c.TLS = TLSConfig{RootCAs: ca.pool} })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := srv.Register(ctx, Trunk{Name: "tls-reg", Host: name, Port: int(reg.addr.Port()), Transport: "tls",
		Addresses: []string{reg.addr.String()}, Username: "alice", Password: "s3cret", Expires: time.Minute})
	eventually(t, "registered over TLS", func() bool { return r.State().State == StateRegistered })

	req := recv(t, reg.registered, "an accepted REGISTER")
	if req.Transport() != "TLS" {
		t.Errorf("REGISTER came over %s, want TLS", req.Transport())
	}
	if tr, _ := req.Contact().Address.UriParams.Get("transport"); tr != "tls" {
		t.Errorf("Contact %s: want transport=tls", req.Contact().Address.String())
	}
	if !strings.HasPrefix(req.Recipient.String(), "sip:"+name) {
		t.Errorf("Request-URI %s: want the registrar's name", req.Recipient.String())
	}
	cancel()
	closed(t, r.Done(), "the registration to stop")
	for {
		req := recv(t, reg.registered, "the un-REGISTER")
		if headerOf(req, "Expires") == "0" {
			break
		}
	}
}
