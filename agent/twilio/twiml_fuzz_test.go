package twilio

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseTwiML: the Twiml parameter of the REST subset is outside input.
// Every document either fails with one of the two TwiML errors or asks for
// exactly one thing: a hang-up or a target that is a number or a SIP URI.
func FuzzParseTwiML(f *testing.F) {
	for _, doc := range []string{
		`<Response><Hangup/></Response>`,
		`<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+1 (555) 010-0199</Dial></Response>`,
		`<Response><Dial><Number>+15550100</Number></Dial></Response>`,
		`<Response><Dial><Sip>sip:agent@pbx.example.com;transport=tcp</Sip></Dial></Response>`,
		`<Response><Refer><Sip>sip:desk@pbx.example.com</Sip></Refer></Response>`,
		`<Response><Say>hello</Say></Response>`,
		`<Response><Hangup/></Response><!-- done -->`,
		`<Response><Dial><Number>1</Number><Number>2</Number></Dial></Response>`,
		`<Response><Dial><Sip><![CDATA[sip:a@b]]></Sip></Dial></Response>`,
		`<!DOCTYPE r [<!ENTITY x "sip:a@b">]><Response><Refer><Sip>&x;</Sip></Refer></Response>`,
	} {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		act, err := parseTwiML(doc)
		if err != nil {
			if !errors.Is(err, errTwiMLSyntax) && !errors.Is(err, errUnsupportedTwiML) {
				t.Fatalf("error %v wraps neither TwiML error", err)
			}
			if act != (twimlAction{}) {
				t.Fatalf("error %v with an action %+v", err, act)
			}
			return
		}
		switch {
		case act.hangup && act.target == "":
		case !act.hangup && strings.HasPrefix(act.target, "sip:"):
			if strings.ContainsAny(act.target, "\r\n\x00 <>\"") {
				t.Fatalf("SIP target %q has characters that break a header", act.target)
			}
		case !act.hangup && act.target != "":
			if strings.Trim(act.target, "+0123456789") != "" || strings.LastIndex(act.target, "+") > 0 {
				t.Fatalf("number target %q", act.target)
			}
		default:
			t.Fatalf("action %+v asks for nothing or for two things", act)
		}
	})
}
