package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/configs"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEmbeddedDefaultsLoad(t *testing.T) {
	cfg, err := LoadConfig("", configs.DefaultGateway())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.Listen != "127.0.0.1:5060" || cfg.DefaultAgent != "echo" || time.Duration(cfg.Media.InactivityTimeout) != 30*time.Second {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestConfigFileOverridesDefaults(t *testing.T) {
	path := writeConfig(t, "sip:\n  listen: 127.0.0.1:5080\nmedia:\n  codecs: [PCMA]\n")
	cfg, err := LoadConfig(path, configs.DefaultGateway())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.Listen != "127.0.0.1:5080" || len(cfg.Media.Codecs) != 1 || cfg.Media.Codecs[0] != "PCMA" {
		t.Fatalf("file values not applied: %+v", cfg)
	}
	if cfg.Media.RTPPortMin != 10000 || cfg.DefaultAgent != "echo" || cfg.Agents["echo"].Type != "echo" {
		t.Fatalf("defaults lost: %+v", cfg)
	}
}

func TestConfigErrorsNameFileLineAndProblem(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		line       int
		want       string
	}{
		{"unknown key", "sip:\n  listen: 127.0.0.1:5060\n  lisen: x\n", 3, `unknown key "lisen"`},
		{"unknown section", "log:\n  level: info\nmedai:\n  codecs: [PCMU]\n", 3, `unknown key "medai"`},
		{"bad listen", "sip:\n  listen: localhost\n", 2, `sip.listen: "localhost" is not IP:port`},
		{"wildcard listen needs a public address", "sip:\n  listen: 0.0.0.0:5060\n", 1, "set it to the address callers reach us on"},
		{"bad duration", "media:\n  inactivity_timeout: soon\n", 2, `"soon" is not a duration`},
		{"bad codec", "media:\n  codecs: [PCMU, G729]\n", 2, `unsupported codec "G729"`},
		{"bad port range", "media:\n  rtp_port_min: 20000\n  rtp_port_max: 10000\n", 2, "rtp_port_min < rtp_port_max"},
		{"unknown agent type", "agents:\n  bot:\n    type: telepathy\ndefault_agent: bot\n", 3, `unknown agent type "telepathy"`},
		{"missing default agent", "default_agent: nobody\n", 1, `no agent named "nobody"`},
		{"prompt without file", "agents:\n  hello:\n    type: prompt\ndefault_agent: hello\n", 2, "needs a WAV file"},
		{"bad log format", "log:\n  format: xml\n", 2, `"xml" is not text or json`},
		{"wrong type", "sip:\n  ringing: sometimes\n", 2, "cannot unmarshal"},
		{"trunk transport", "trunks:\n  - name: a\n    host: sip.example.com\n  - name: b\n    host: sip.example.net\n    transport: sctp\n", 6, `"sctp" is not udp, tcp or tls`},
		{"duplicate trunk", "trunks:\n  - name: a\n    host: h1\n  - name: a\n    host: h2\n", 4, `trunk "a" is defined twice`},
		{"registration needs a user", "trunks:\n  - name: a\n    host: h1\n    register: true\n", 2, "registration needs a username"},
		{"bad network", "access:\n  allow: [10.0.0.0/33]\n", 2, `"10.0.0.0/33" is not an address or CIDR network`},
		{"redis without url", "store:\n  type: redis\n", 1, "a redis store needs url"},
		{"bad admin listen", "admin:\n  listen: localhost:80\n", 2, "is not IP:port"},
		{"admin off loopback without a token", "admin:\n  listen: 0.0.0.0:8080\n", 2, "admin.listen: 0.0.0.0:8080 is reachable from other hosts: set admin.token"},
		{"bad reject code", "limits:\n  reject_code: 200\n", 2, "is not a SIP error code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.body)
			_, err := LoadConfig(path, configs.DefaultGateway())
			var errs ConfigErrors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v is not ConfigErrors", err)
			}
			for _, e := range errs {
				if e.File == path && e.Line == tc.line && strings.Contains(e.Msg, tc.want) {
					return
				}
			}
			t.Fatalf("want %s:%d: ...%s...; got:\n%v", path, tc.line, tc.want, err)
		})
	}
}

func TestConfigExpandsEnvironmentInValuesOnly(t *testing.T) {
	t.Setenv("SB_TEST_UA", "Acme Gateway")
	path := writeConfig(t, "# set ${NOT_SET_ANYWHERE} in production\nsip:\n  user_agent: ${SB_TEST_UA} # from ${ALSO_NOT_SET}\n")
	cfg, err := LoadConfig(path, configs.DefaultGateway())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.UserAgent != "Acme Gateway" {
		t.Fatalf("user_agent = %q", cfg.SIP.UserAgent)
	}

	path = writeConfig(t, "sip:\n  user_agent: ${SB_TEST_SURELY_UNSET}\n")
	_, err = LoadConfig(path, configs.DefaultGateway())
	if err == nil || !strings.Contains(err.Error(), ":2: environment variable SB_TEST_SURELY_UNSET is not set") {
		t.Fatalf("unset variable: got %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	t.Setenv("SB_TEST_TRUNK_PASSWORD", "hunter2-very-secret")
	path := writeConfig(t, "trunks:\n  - name: a\n    host: sip.example.com\n    username: u\n    password: ${SB_TEST_TRUNK_PASSWORD}\n")
	cfg, err := LoadConfig(path, configs.DefaultGateway())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("password printed: %s", s)
		}
	}
	if v, _ := cfg.Trunks[0].Password.Value(""); v != "hunter2-very-secret" {
		t.Fatalf("password value lost: %q", v)
	}
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := Secret("").Value(file); err != nil || v != "from-file" {
		t.Fatalf("password_file: %q, %v", v, err)
	}
}
