package sip

import (
	"strings"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
)

func TestCheckRequest(t *testing.T) {
	const base = "INVITE sip:+15550100@gw.example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n" +
		"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:+15550100@gw.example.com>\r\n" +
		"Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
	for _, tc := range []struct {
		name, msg  string
		code       int
		wantHeader string // "Name: value" the refusal carries
	}{
		{"plain INVITE", base + "Content-Length: 0\r\n\r\n", 0, ""},
		{"Accept with SDP", base + "Accept: text/plain, application/sdp;level=1\r\nContent-Length: 0\r\n\r\n", 0, ""},
		{"Accept with a wildcard", base + "Accept: */*\r\nContent-Length: 0\r\n\r\n", 0, ""},
		{"other version", strings.Replace(base, "gw.example.com SIP/2.0", "gw.example.com SIP/7.0", 1) + "Content-Length: 0\r\n\r\n", 505, ""},
		{"tel URI", strings.Replace(base, "sip:+15550100@gw.example.com SIP", "tel:+15550100 SIP", 1) + "Content-Length: 0\r\n\r\n", 0, ""},
		{"unknown scheme", strings.Replace(base, "sip:+15550100@gw.example.com SIP", "mailto:a@b.example SIP", 1) + "Content-Length: 0\r\n\r\n", 416, ""},
		{"two Call-IDs", base + "Call-ID: c2\r\nContent-Length: 0\r\n\r\n", 400, ""},
		{"CSeq of another method", strings.Replace(base, "CSeq: 1 INVITE", "CSeq: 1 OPTIONS", 1) + "Content-Length: 0\r\n\r\n", 400, ""},
		{"Require", base + "Require: 100rel, timer\r\nContent-Length: 0\r\n\r\n", 420, "Unsupported: 100rel, timer"},
		{"headers in the Request-URI", strings.Replace(base, "gw.example.com SIP/2.0", "gw.example.com?Route=%3Csip:example.com%3E SIP/2.0", 1) + "Content-Length: 0\r\n\r\n", 400, ""},
		{"Date not in GMT (ignored: the gateway does not use Date)", base + "Date: Fri, 01 Jan 2010 16:00:00 EST\r\nContent-Length: 0\r\n\r\n", 0, ""},
		{"SDP refused with q=0", base + "Accept: application/sdp;q=0, text/plain\r\nContent-Length: 0\r\n\r\n", 406, "Accept: application/sdp"},
		{"version in lower case", strings.Replace(base, "gw.example.com SIP/2.0", "gw.example.com sip/2.0", 1) + "Content-Length: 0\r\n\r\n", 0, ""},
		{"BYE with Require and two Call-IDs still ends the call", strings.NewReplacer("INVITE sip:", "BYE sip:", "CSeq: 1 INVITE", "CSeq: 2 BYE").Replace(base) + "Require: timer\r\nCall-ID: c2\r\nContent-Length: 0\r\n\r\n", 0, ""},
		{"ACK is never refused", strings.NewReplacer("INVITE sip:", "ACK sip:", "CSeq: 1 INVITE", "CSeq: 1 ACK").Replace(base) + "Require: timer\r\nContent-Length: 0\r\n\r\n", 0, ""},
		{"a method named like part of one we serve is still unknown", strings.NewReplacer("INVITE sip:", "INV sip:", "CSeq: 1 INVITE", "CSeq: 1 INV").Replace(base) + "Require: timer\r\nContent-Length: 0\r\n\r\n", 0, ""},
		{"unknown method gets its 501, not 420", strings.NewReplacer("INVITE sip:", "PUBLISH sip:", "CSeq: 1 INVITE", "CSeq: 1 PUBLISH").Replace(base) + "Require: timer\r\nContent-Length: 0\r\n\r\n", 0, ""},
		{"Accept without SDP", base + "Accept: text/nonsense\r\nContent-Length: 0\r\n\r\n", 406, "Accept: application/sdp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := sipmsg.ParseMessage([]byte(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			r, ok := checkRequest(msg.(*sipmsg.Request))
			if ok != (tc.code == 0) || r.code != tc.code {
				t.Fatalf("refusal %+v ok=%v, want code %d", r, ok, tc.code)
			}
			if tc.wantHeader != "" {
				name, value, _ := strings.Cut(tc.wantHeader, ": ")
				if len(r.headers) != 1 || r.headers[0].Name() != name || r.headers[0].Value() != value {
					t.Fatalf("headers %v, want %s", r.headers, tc.wantHeader)
				}
			}
		})
	}
}
