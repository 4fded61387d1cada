package sip

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// The MD5 examples of RFC 2617 (3.5) and RFC 7616 (3.9.1), answered with
// the nonce count and cnonce the RFCs used.
func TestDigestRFCExamples(t *testing.T) {
	tests := []struct {
		name, challenge, method, uri, user, pass, cnonce, want string
	}{
		{
			name:      "RFC 2617 3.5",
			challenge: `Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
			method:    "GET", uri: "/dir/index.html", user: "Mufasa", pass: "Circle Of Life", cnonce: "0a4f113b",
			want: "6629fae49393a05397450978507c4ef1",
		},
		{
			name:      "RFC 7616 3.9.1 MD5",
			challenge: `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
			method:    "GET", uri: "/dir/index.html", user: "Mufasa", pass: "Circle of Life", cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
			want: "8ca523f5e9506fed4657c9700eebdbec",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := ParseChallenge(tc.challenge)
			if err != nil {
				t.Fatal(err)
			}
			got := ch.Authorize(tc.method, tc.uri, tc.user, tc.pass, 1, tc.cnonce)
			p, err := parseAuthParams(strings.TrimPrefix(got, "Digest "))
			if err != nil {
				t.Fatalf("our own Authorization does not parse: %v\n%s", err, got)
			}
			if p["response"] != tc.want {
				t.Errorf("response = %s, want %s\n%s", p["response"], tc.want, got)
			}
			for k, v := range map[string]string{"qop": "auth", "nc": "00000001", "cnonce": tc.cnonce, "opaque": ch.Opaque, "uri": tc.uri, "username": tc.user, "realm": ch.Realm, "nonce": ch.Nonce} {
				if p[k] != v {
					t.Errorf("%s = %q, want %q", k, p[k], v)
				}
			}
		})
	}
}

// Forms without an RFC vector, checked against the formulas written out.
func TestDigestFormulas(t *testing.T) {
	user, pass, realm, nonce, uri, cn := "acme", "pw", "sip.test", "n0nce", "sip:+1555@carrier.test", "c0ffee"
	ha1 := md5hex(user + ":" + realm + ":" + pass)
	ha2 := md5hex("INVITE:" + uri)
	tests := []struct {
		name, challenge, want string
		nc                    uint32
	}{
		{"RFC 2069 (no qop)", `Digest realm="sip.test", nonce="n0nce"`, md5hex(ha1 + ":" + nonce + ":" + ha2), 1},
		{"qop auth nc 2", `Digest realm="sip.test", nonce="n0nce", qop="auth"`, md5hex(ha1 + ":" + nonce + ":00000002:" + cn + ":auth:" + ha2), 2},
		{"MD5-sess", `Digest realm="sip.test", nonce="n0nce", qop=auth, algorithm=MD5-sess`,
			md5hex(md5hex(ha1+":"+nonce+":"+cn) + ":" + nonce + ":00000001:" + cn + ":auth:" + ha2), 1},
		{"lower-case md5", `digest realm="sip.test", nonce="n0nce", algorithm=md5`, md5hex(ha1 + ":" + nonce + ":" + ha2), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := ParseChallenge(tc.challenge)
			if err != nil {
				t.Fatal(err)
			}
			got := ch.Authorize("INVITE", uri, user, pass, tc.nc, cn)
			p, err := parseAuthParams(strings.TrimPrefix(got, "Digest "))
			if err != nil || p["response"] != tc.want {
				t.Errorf("response %q (err %v), want %s\n%s", p["response"], err, tc.want, got)
			}
			if len(ch.QOP) == 0 && (p["nc"] != "" || p["qop"] != "") {
				t.Errorf("qop/nc sent to a challenge without qop: %s", got)
			}
		})
	}
}

func TestParseChallenge(t *testing.T) {
	good := []struct {
		in   string
		want Challenge
	}{
		{`Digest realm="sip.telnyx.com", nonce="abc", algorithm=MD5, qop="auth"`,
			Challenge{Realm: "sip.telnyx.com", Nonce: "abc", Algorithm: "MD5", QOP: []string{"auth"}}},
		{"DIGEST\trealm=r,nonce=n,stale=TRUE, opaque=\"o\"",
			Challenge{Realm: "r", Nonce: "n", Opaque: "o", Stale: true}},
		{`Digest realm="a \"quoted\" \\ realm", nonce="n",, qop="auth-int, AUTH"`,
			Challenge{Realm: `a "quoted" \ realm`, Nonce: "n", QOP: []string{"auth-int", "auth"}}},
		{`Digest realm="", nonce="n", domain="sip:a sip:b", charset=UTF-8`,
			Challenge{Nonce: "n"}},
	}
	for _, tc := range good {
		got, err := ParseChallenge(tc.in)
		if err != nil {
			t.Errorf("ParseChallenge(%q): %v", tc.in, err)
			continue
		}
		if got.Realm != tc.want.Realm || got.Nonce != tc.want.Nonce || got.Opaque != tc.want.Opaque ||
			got.Algorithm != tc.want.Algorithm || got.Stale != tc.want.Stale || !slices.Equal(got.QOP, tc.want.QOP) {
			t.Errorf("ParseChallenge(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}

	bad := []string{
		``, `Basic realm="r"`, `Digest`, `Digest nonce="n"`, `Digest realm="r"`, `Digest realm="r", nonce=""`,
		`Digest realm="r", nonce="n`, `Digest realm="r" nonce="n"`, `Digest realm="r", nonce="n", realm="x"`,
		`Digest realm, nonce="n"`, `Digest =x, realm="r", nonce="n"`, "Digest realm=\"r\r\nX: y\", nonce=\"n\"",
		`Digest realm="r", nonce="n" junk`, `Digest realm="r", nonce="n", "x"`,
	}
	for _, in := range bad {
		if c, err := ParseChallenge(in); err == nil {
			t.Errorf("ParseChallenge(%q) = %+v, want an error", in, c)
		}
	}

	for _, in := range []string{
		`Digest realm="r", nonce="n", algorithm=SHA-256`,
		`Digest realm="r", nonce="n", algorithm=AKAv1-MD5`,
		`Digest realm="r", nonce="n", qop="auth-int"`,
	} {
		c, err := ParseChallenge(in)
		if !errors.Is(err, ErrUnsupportedDigest) {
			t.Errorf("ParseChallenge(%q): err %v, want ErrUnsupportedDigest", in, err)
		}
		if c.Realm != "r" || c.Nonce != "n" {
			t.Errorf("unsupported challenge not returned parsed: %+v", c)
		}
	}
}

// Quotes and backslashes in our values survive into a parsable header.
func TestAuthorizeQuoting(t *testing.T) {
	ch, err := ParseChallenge(`Digest realm="we \"quote\"", nonce="a\\b", opaque="x"`)
	if err != nil {
		t.Fatal(err)
	}
	got := ch.Authorize("REGISTER", "sip:x", `us"er\`, "p", 1, "c")
	p, err := parseAuthParams(strings.TrimPrefix(got, "Digest "))
	if err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	if p["username"] != `us"er\` || p["realm"] != `we "quote"` || p["nonce"] != `a\b` {
		t.Errorf("round trip: %v", p)
	}
}
