package twilio

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxTwiML is Twilio's own limit on the Twiml parameter.
const maxTwiML = 4000

// twimlAction is what a supported TwiML document asks for: hang up, or hand
// the caller to target (a cold transfer).
type twimlAction struct {
	hangup bool
	target string
}

type twimlNode struct {
	XMLName xml.Name
	Text    string      `xml:",chardata"`
	Nodes   []twimlNode `xml:",any"`
}

// errUnsupportedTwiML wraps TwiML that parses but asks for more than the
// subset: <Hangup/>, <Dial>number</Dial>, <Dial><Number|Sip>, <Refer><Sip>.
var errUnsupportedTwiML = errors.New("unsupported TwiML")

// errTwiMLSyntax wraps TwiML that is not a well-formed <Response> document.
var errTwiMLSyntax = errors.New("TwiML parse failure")

// parseTwiML reads a <Response> with exactly one supported verb.
func parseTwiML(doc string) (twimlAction, error) {
	if len(doc) > maxTwiML {
		return twimlAction{}, fmt.Errorf("%w: over %d characters", errTwiMLSyntax, maxTwiML)
	}
	dec := xml.NewDecoder(strings.NewReader(doc))
	var root twimlNode
	if err := dec.Decode(&root); err != nil {
		return twimlAction{}, fmt.Errorf("%w: %v", errTwiMLSyntax, err)
	}
	if err := expectEnd(dec); err != nil {
		return twimlAction{}, err
	}
	if root.XMLName.Local != "Response" {
		return twimlAction{}, fmt.Errorf("%w: root element is <%s>, want <Response>", errTwiMLSyntax, root.XMLName.Local)
	}
	if len(root.Nodes) != 1 || blank(root.Text) != nil {
		return twimlAction{}, fmt.Errorf("%w: want exactly one verb in <Response>", errUnsupportedTwiML)
	}
	verb := root.Nodes[0]
	switch verb.XMLName.Local {
	case "Hangup":
		if len(verb.Nodes) != 0 || blank(verb.Text) != nil {
			return twimlAction{}, fmt.Errorf("%w: <Hangup> takes no content", errUnsupportedTwiML)
		}
		return twimlAction{hangup: true}, nil
	case "Dial":
		if len(verb.Nodes) == 0 {
			target, err := phoneNumber(verb.Text)
			return twimlAction{target: target}, err
		}
		return nounTarget(verb, "Number", "Sip")
	case "Refer":
		return nounTarget(verb, "Sip")
	}
	return twimlAction{}, fmt.Errorf("%w: <%s>", errUnsupportedTwiML, verb.XMLName.Local)
}

// nounTarget reads the single noun of a <Dial> or <Refer>.
func nounTarget(verb twimlNode, allowed ...string) (twimlAction, error) {
	if len(verb.Nodes) != 1 || blank(verb.Text) != nil {
		return twimlAction{}, fmt.Errorf("%w: <%s> needs exactly one of %v", errUnsupportedTwiML, verb.XMLName.Local, allowed)
	}
	noun := verb.Nodes[0]
	if len(noun.Nodes) != 0 {
		return twimlAction{}, fmt.Errorf("%w: <%s> has nested elements", errUnsupportedTwiML, noun.XMLName.Local)
	}
	for _, name := range allowed {
		if noun.XMLName.Local != name {
			continue
		}
		var target string
		var err error
		if name == "Number" {
			target, err = phoneNumber(noun.Text)
		} else {
			target, err = sipURI(noun.Text)
		}
		return twimlAction{target: target}, err
	}
	return twimlAction{}, fmt.Errorf("%w: <%s> in <%s>", errUnsupportedTwiML, noun.XMLName.Local, verb.XMLName.Local)
}

// expectEnd checks that nothing but comments, whitespace and processing
// instructions follows the root element.
func expectEnd(dec *xml.Decoder) error {
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errTwiMLSyntax, err)
		}
		switch t := tok.(type) {
		case xml.Comment, xml.ProcInst:
		case xml.CharData:
			if err := blank(string(t)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: content after </Response>", errTwiMLSyntax)
		}
	}
}

func blank(s string) error {
	if strings.TrimSpace(s) != "" {
		return fmt.Errorf("%w: unexpected text %q", errUnsupportedTwiML, strings.TrimSpace(s))
	}
	return nil
}

// phoneNumber normalises a dialled number ("+1 (555) 010-0199") to
// "+15550100199"; 3 to 15 digits, an optional leading +.
func phoneNumber(s string) (string, error) {
	var b strings.Builder
	for i, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case strings.ContainsRune(" -().", r):
		default:
			return "", fmt.Errorf("%w: %q is not a phone number", errUnsupportedTwiML, s)
		}
	}
	n := b.String()
	digits := len(strings.TrimPrefix(n, "+"))
	if digits < 3 || digits > 15 {
		return "", fmt.Errorf("%w: %q is not a phone number", errUnsupportedTwiML, s)
	}
	return n, nil
}

// sipURI checks a sip: or sips: URI that will go into a Refer-To header.
func sipURI(s string) (string, error) {
	s = strings.TrimSpace(s)
	lower := strings.ToLower(s)
	ok := (strings.HasPrefix(lower, "sip:") || strings.HasPrefix(lower, "sips:")) &&
		len(s) <= maxTargetLen && printable(s, false) && !strings.ContainsAny(s, `<>"`)
	if !ok || strings.IndexByte(s, ':') == len(s)-1 {
		return "", fmt.Errorf("%w: %q is not a SIP URI", errUnsupportedTwiML, s)
	}
	return s, nil
}
