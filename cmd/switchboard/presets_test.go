package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/configs"
)

// writeTestCert writes a self-signed certificate and its key (PEM) for
// the SignalWire preset's TLS listener.
func writeTestCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway.test"},
		DNSNames: []string{"gateway.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
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
	return certFile, keyFile
}

// TestCarrierPresets: the Telnyx and SignalWire presets load over the
// defaults with their environment set, validate, and map onto trunks, the
// access guard and TLS; without their secrets they are refused by name.
func TestCarrierPresets(t *testing.T) {
	certFile, keyFile := writeTestCert(t)
	for _, tc := range []struct {
		file  string
		env   map[string]string
		check func(t *testing.T, cfg *Config)
	}{
		{"telnyx.yaml", map[string]string{
			"TELNYX_USERNAME": "acme", "TELNYX_PASSWORD": "telnyx-pw", "TELNYX_NUMBER": "+15550100", "SWITCHBOARD_PUBLIC_ADDRESS": "203.0.113.7",
		}, func(t *testing.T, cfg *Config) {
			tr := cfg.Trunks[0]
			if tr.Host != "sip.telnyx.com" || tr.Realm != "sip.telnyx.com" || tr.Diversion != "+15550100" || !tr.Register || tr.Password != "telnyx-pw" {
				t.Errorf("telnyx trunk %+v", tr)
			}
		}},
		{"signalwire.yaml", map[string]string{
			"SIGNALWIRE_SPACE": "example", "SIGNALWIRE_USERNAME": "agent", "SIGNALWIRE_PASSWORD": "sw-pw",
			"SWITCHBOARD_PUBLIC_ADDRESS": "203.0.113.7", "SWITCHBOARD_TLS_CERT": certFile, "SWITCHBOARD_TLS_KEY": keyFile,
		}, func(t *testing.T, cfg *Config) {
			tr := cfg.Trunks[0]
			if tr.Host != "example.sip.signalwire.com" || tr.Transport != "tls" || tr.SRTP != "optional" || !tr.Register {
				t.Errorf("signalwire trunk %+v", tr)
			}
			tlsCfg, err := sipTLS(cfg, netip.MustParseAddrPort(cfg.SIP.Listen))
			if err != nil || tlsCfg.Listen.Port() != 5061 || len(tlsCfg.Certificates) != 1 {
				t.Errorf("TLS listener %+v: %v", tlsCfg.Listen, err)
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("..", "..", "configs", tc.file)
			for k := range tc.env {
				t.Setenv(k, "") // unset below; Setenv restores it after the test
				os.Unsetenv(k)
			}
			if _, err := LoadConfig(path, configs.DefaultGateway()); err == nil || !strings.Contains(err.Error(), "is not set") {
				t.Errorf("without its environment: %v, want an unset-variable error", err)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadConfig(path, configs.DefaultGateway())
			if err != nil {
				t.Fatalf("%s does not validate:\n%v", tc.file, err)
			}
			if len(cfg.Trunks) != 1 {
				t.Fatalf("%d trunks, want 1", len(cfg.Trunks))
			}
			trunks, err := buildTrunks(cfg)
			if err != nil {
				t.Fatalf("trunks: %v", err)
			}
			if _, err := accessConfig(cfg, trunks); err != nil {
				t.Fatalf("access: %v", err)
			}
			if cfg.Transfer.Fallback != "bridge" {
				t.Errorf("transfer.fallback %q: both presets fall back to a bridged transfer", cfg.Transfer.Fallback)
			}
			tc.check(t, cfg)
		})
	}
}

// TestTLSAndDigestConfig: sip.tls and access.digest mistakes are refused
// with the key's path, and passwords stay out of the messages.
func TestTLSAndDigestConfig(t *testing.T) {
	certFile, keyFile := writeTestCert(t)
	for _, tc := range []struct {
		name, yaml, wantErr string // wantErr "": valid
	}{
		{"listener with certificate", "sip:\n  tls:\n    cert_file: " + certFile + "\n    key_file: " + keyFile + "\n", ""},
		{"key without certificate", "sip:\n  tls:\n    key_file: " + keyFile + "\n", "sip.tls.cert_file"},
		{"listener without certificate", "sip:\n  tls:\n    listen: 127.0.0.1:5061\n", "sip.tls.listen"},
		{"listener on sip.listen's port", "sip:\n  tls:\n    listen: 127.0.0.1:5060\n    cert_file: " + certFile + "\n    key_file: " + keyFile + "\n", "port 5060"},
		{"missing CA file", "sip:\n  tls:\n    ca_file: /nonexistent/ca.pem\n", "sip.tls.ca_file"},
		{"digest user", "access:\n  digest:\n    realm: pbx.test\n    users:\n      - {username: pbx, password: digest-Secret-1}\n", ""},
		{"digest without realm", "access:\n  digest:\n    users:\n      - {username: pbx, password: digest-Secret-1}\n", "access.digest.realm"},
		{"digest user twice", "access:\n  digest:\n    realm: r\n    users:\n      - {username: pbx, password: digest-Secret-1}\n      - {username: pbx, password: digest-Secret-1}\n", "listed twice"},
		{"digest user without password", "access:\n  digest:\n    realm: r\n    users:\n      - {username: pbx}\n", "users.0.password"},
		{"short nonce lifetime", "access:\n  digest:\n    nonce_ttl: 1s\n", "access.digest.nonce_ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gw.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(path, configs.DefaultGateway())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), "digest-Secret-1"):
				t.Fatalf("password in the error: %v", err)
			case err == nil:
				d, err := digestConfig(cfg)
				if err != nil || len(d.Users) != len(cfg.Access.Digest.Users) {
					t.Fatalf("digest users %v: %v", d, err)
				}
				if _, err := sipTLS(cfg, netip.MustParseAddrPort(cfg.SIP.Listen)); err != nil {
					t.Fatalf("TLS: %v", err)
				}
			}
		})
	}
}
