package sip

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestTrunkNormalizeDefaults(t *testing.T) {
	got, err := Trunk{Name: "telnyx", Host: "sip.telnyx.com", Username: "acme", Password: "pw"}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := Trunk{Name: "telnyx", Host: "sip.telnyx.com", Transport: "udp", Username: "acme", AuthUsername: "acme",
		Password: "pw", FromUser: "acme", FromDomain: "sip.telnyx.com", Expires: time.Hour, CallerIDMode: CallerIDFrom}
	if fmt.Sprint(got.LogValue()) != fmt.Sprint(want.LogValue()) || got.AuthUsername != want.AuthUsername ||
		got.FromUser != want.FromUser || got.FromDomain != want.FromDomain || got.Expires != want.Expires ||
		got.CallerIDMode != want.CallerIDMode || got.Transport != want.Transport {
		t.Errorf("Normalize = %#v\nwant        %#v", got, want)
	}
	got, err = Trunk{Name: "x", Host: "::1", Transport: "TLS", Expires: 90500 * time.Millisecond, CallerIDMode: "PAI"}.Normalize()
	if err != nil || got.Transport != "tls" || got.Expires != 90*time.Second || got.CallerIDMode != CallerIDPAI || got.uriHost() != "[::1]" {
		t.Errorf("Normalize = %+v, %v", got, err)
	}
}

func TestTrunkNormalizeRejects(t *testing.T) {
	base := Trunk{Name: "t", Host: "carrier.test", Username: "acme", Password: "hunter2-secret"}
	tests := map[string]func(*Trunk){
		"no host":            func(t *Trunk) { t.Host = "" },
		"host with CRLF":     func(t *Trunk) { t.Host = "a\r\nX: y" },
		"host with space":    func(t *Trunk) { t.Host = "a b" },
		"transport":          func(t *Trunk) { t.Transport = "sctp" },
		"port":               func(t *Trunk) { t.Port = 70000 },
		"from user with @":   func(t *Trunk) { t.FromUser = "a@b" },
		"from user with <":   func(t *Trunk) { t.FromUser = "a<b" },
		"username with LF":   func(t *Trunk) { t.Username = "a\nb" },
		"realm with CR":      func(t *Trunk) { t.Realm = "r\r" },
		"password with CRLF": func(t *Trunk) { t.Password = "hunter2-secret\r\n" },
		"expires too short":  func(t *Trunk) { t.Expires = time.Millisecond },
		"negative keepalive": func(t *Trunk) { t.KeepAlive = -time.Second },
		"caller id mode":     func(t *Trunk) { t.CallerIDMode = "rpid" },
		"outbound proxy":     func(t *Trunk) { t.OutboundProxy = "proxy:notaport" },
		"address":            func(t *Trunk) { t.Addresses = []string{"1.2.3.4:0"} },
	}
	for name, mod := range tests {
		tr := base
		mod(&tr)
		_, err := tr.Normalize()
		if !errors.Is(err, ErrBadTrunk) {
			t.Errorf("%s: err = %v, want ErrBadTrunk", name, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the password is in the error: %v", name, err)
		}
	}
}

// The password appears in no printed or logged form of a Trunk.
func TestTrunkRedaction(t *testing.T) {
	tr := Trunk{Name: "t", Host: "carrier.test", Username: "acme", Password: "hunter2-secret"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("trunk", "trunk", tr)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("trunk", "trunk", tr)
	for _, s := range []string{fmt.Sprint(tr), fmt.Sprintf("%v %+v %#v %s", tr, tr, tr, tr), fmt.Sprintf("%v", &tr), buf.String()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password printed: %s", s)
		}
		if !strings.Contains(s, "redacted") {
			t.Errorf("redaction not shown: %s", s)
		}
	}
}

func TestCheckUserPart(t *testing.T) {
	for _, ok := range []string{"", "+15550100", "alice", "a.b-c_d", "*67;phone-context=x", "%40"} {
		if err := checkUserPart(ok); err != nil {
			t.Errorf("checkUserPart(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"a@b", "a b", "a>b", "a\"b", "a\r\n", "ü"} {
		if checkUserPart(bad) == nil {
			t.Errorf("checkUserPart(%q) accepted", bad)
		}
	}
}
