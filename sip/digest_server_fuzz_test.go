package sip

import (
	"strings"
	"testing"
)

// FuzzParseCredentials feeds arbitrary Authorization values to the parser
// the digest server uses on strangers' requests. Whatever it accepts has
// every required field and no line break; and an answer we compute with
// the input as username parses back to that same username, so one value
// can never bleed into another.
func FuzzParseCredentials(f *testing.F) {
	for _, s := range []string{
		`Digest username="pbx", realm="switchboard", nonce="bm9uY2U", uri="sip:+15550100@127.0.0.1", response="0123456789abcdef0123456789abcdef", algorithm=MD5, cnonce="c", qop=auth, nc=00000001`,
		`Digest username="a\"b", realm="r", nonce="n", uri="sip:x", response="r"`,
		`digest   username=u,realm=r,nonce=n,uri="sip:a;b=c",response=x`,
		`Digest username="u", username="v", realm="r", nonce="n", uri="u", response="r"`,
		`Digest username="u", realm="r", nonce="n", uri="u"`,
		`Digest username="u`,
		`Basic dTpw`,
		"Digest\tusername=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if c, err := ParseCredentials(in); err == nil {
			for _, v := range []string{c.Username, c.Realm, c.Nonce, c.URI, c.Response} {
				if v == "" {
					t.Fatalf("accepted %q without a required field: %+v", in, c)
				}
			}
			if strings.ContainsAny(c.Username+c.Realm+c.Nonce+c.URI+c.Response+c.CNonce+c.NC+c.QOP, "\r\n\x00") {
				t.Fatalf("a field of %q holds a line break: %+v", in, c)
			}
		}
		if strings.ContainsAny(in, "\r\n\x00") || in == "" {
			return
		}
		ch := Challenge{Realm: "switchboard", Nonce: "bm9uY2U", QOP: []string{"auth"}}
		out := ch.Authorize("INVITE", "sip:+15550100@127.0.0.1", in, "secret", 1, "c")
		c, err := ParseCredentials(out)
		if err != nil || c.Username != in || c.Realm != ch.Realm || c.URI != "sip:+15550100@127.0.0.1" || c.NC != "00000001" {
			t.Fatalf("username %q: %s parsed as %+v, %v", in, out, c, err)
		}
	})
}
