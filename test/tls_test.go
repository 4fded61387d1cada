package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/test/harness"
)

// writePKI writes a CA and a certificate it issued for names (PEM files in
// a temporary directory) and returns the paths and the CA as a pool.
func writePKI(t *testing.T, names ...string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, key := newKey(), newKey()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchboard e2e CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return certFile, keyFile, roots
}

// TestTLSGatewayDigest: the gateway binary serves SIP over TLS from its
// config (sip.tls) and, with access.digest users and no trusted network,
// challenges our call with 401. The caller, a sip.Server here, dials
// through a TLS trunk that verifies the gateway's certificate for its
// name, answers the challenge, and the echo agent answers the call.
func TestTLSGatewayDigest(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()
	const name = "gateway.switchboard.test"
	certFile, keyFile, roots := writePKI(t, name)
	tlsPort := harness.FreePortPair(t)
	sipPort := harness.FreePortPair(t)
	rtpMin, rtpMax := harness.FreeUDPPortRange(t, 20)
	pwFile := filepath.Join(t.TempDir(), "digest-password")
	if err := os.WriteFile(pwFile, []byte("e2e-digest-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := harness.ConfigTemplate(sipPort, rtpMin, rtpMax, `access:
  digest:
    realm: switchboard.test
    users:
      - {username: pbx, password_file: `+pwFile+`}
`)
	// sip.tls goes inside the template's sip section.
	cfg = strings.Replace(cfg, "  public_address: 127.0.0.1\n", "  public_address: 127.0.0.1\n  tls:\n"+
		"    listen: 127.0.0.1:"+strconv.Itoa(tlsPort)+"\n    cert_file: "+certFile+"\n    key_file: "+keyFile+"\n", 1)
	gw := harness.StartGateway(t, cfg)
	if got := gw.Ready.Str("sip_tls"); got != "127.0.0.1:"+strconv.Itoa(tlsPort) {
		t.Fatalf("gateway ready line: sip_tls %q, want 127.0.0.1:%d", got, tlsPort)
	}

	caller := startEndpointTLS(t, roots)
	trunk := &sip.Trunk{Name: "gw", Host: name, Port: tlsPort, Transport: "tls",
		Addresses: []string{"127.0.0.1:" + strconv.Itoa(tlsPort)}, Username: "pbx", Password: "e2e-digest-pw"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := caller.Dial(ctx, "+15550100", []byte(offerPCMU), sip.DialOptions{Trunk: trunk})
	if err != nil {
		t.Fatalf("Dial the gateway over TLS with digest: %v", err)
	}
	received := gw.Logs.WaitFor(t, 5*time.Second, harness.MsgIs("call received"))
	if tr := received.Str("transport"); !strings.EqualFold(tr, "tls") {
		t.Errorf("call received over %q, want TLS", tr)
	}
	// Like a person, talk a moment before hanging up: the gateway's INVITE
	// handler must have seen the ACK before the BYE (sipgo runs the two
	// concurrently even when they come in order on one connection).
	time.Sleep(300 * time.Millisecond)
	if err := call.Hangup(ctx, sip.CauseNormal.Reason()); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	ended := gw.Logs.WaitFor(t, 10*time.Second, harness.MsgIs("call ended"))
	wantStr(t, ended, "reason", "remote_bye")
	if strings.Contains(gw.Logs.Text(), "e2e-digest-pw") {
		t.Error("the digest password reached the gateway's log")
	}

	// The same call with a wrong password is challenged again and refused.
	trunk.Password = "wrong"
	_, err = caller.Dial(ctx, "+15550100", []byte(offerPCMU), sip.DialOptions{Trunk: trunk})
	var refused *sip.ResponseError
	if !errors.As(err, &refused) || refused.Code != 401 {
		t.Fatalf("Dial with a wrong password: %v, want the 401 as the answer", err)
	}
}

// startEndpointTLS is a caller whose TLS connections trust roots.
func startEndpointTLS(t *testing.T, roots *x509.CertPool) *sip.Server {
	t.Helper()
	port := harness.FreePortPair(t)
	srv, err := sip.NewServer(sip.Config{
		Listen:     netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)),
		Transports: []string{"udp"},
		TLS:        sip.TLSConfig{RootCAs: roots},
		Logger:     slog.New(slog.DiscardHandler),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, served := make(chan struct{}), make(chan error, 1)
	go func() { served <- srv.Serve(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() { cancel(); <-served })
	return srv
}
