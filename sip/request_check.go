package sip

import (
	"strconv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// refusal is how a request that no handler may see is answered.
type refusal struct {
	code    int
	reason  string
	headers []sipmsg.Header
}

// singleHeaders may appear once in a request (RFC 3261 §7.3.1, §20): two
// different Call-IDs or Content-Lengths make the message ambiguous.
var singleHeaders = [...]string{"Call-ID", "From", "To", "CSeq", "Max-Forwards", "Content-Length"}

// checkRequest applies the checks RFC 3261 §8.2 puts before any method's
// processing, in its order: version, URI scheme, well-formedness, required
// extensions, acceptable bodies. ok is true for a request to process.
//
// ACK, BYE and CANCEL only get the version check: ACK cannot be answered,
// and a refused BYE or CANCEL would end the call for the far end but leave
// it up here until the media timeout.
func checkRequest(req *sipmsg.Request) (refusal, bool) {
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return refusal{code: 505, reason: "Version Not Supported"}, false
	}
	switch req.Method {
	case sipmsg.ACK, sipmsg.BYE, sipmsg.CANCEL:
		return refusal{}, true
	}
	switch strings.ToLower(req.Recipient.Scheme) {
	case "sip", "sips", "tel":
	default:
		return refusal{code: 416, reason: "Unsupported URI Scheme"}, false
	}
	// §19.1.5: header components have no place in a Request-URI.
	if req.Recipient.Headers != nil && req.Recipient.Headers.Length() > 0 {
		return refusal{code: 400, reason: "Bad Request: headers in the Request-URI"}, false
	}
	for _, name := range singleHeaders {
		if len(req.GetHeaders(name)) > 1 {
			return refusal{code: 400, reason: "Bad Request: more than one " + name}, false
		}
	}
	if cseq := req.CSeq(); cseq != nil && cseq.MethodName != req.Method {
		return refusal{code: 400, reason: "Bad Request: CSeq method does not match"}, false
	}
	// §8.2.2.3: we support no extension, so any Require is refused; a method
	// we do not serve gets its 501 instead (§8.2.1 comes first).
	if serves(req.Method) {
		var unsupported []string
		for _, h := range req.GetHeaders("Require") {
			for opt := range strings.SplitSeq(h.Value(), ",") {
				if opt = strings.TrimSpace(opt); opt != "" {
					unsupported = append(unsupported, opt)
				}
			}
		}
		if len(unsupported) > 0 {
			return refusal{code: 420, reason: "Bad Extension",
				headers: []sipmsg.Header{sipmsg.NewHeader("Unsupported", strings.Join(unsupported, ", "))}}, false
		}
	}
	// §21.4.7: an INVITE is answered with SDP, which its Accept may rule out.
	if req.IsInvite() && !acceptsSDP(req) {
		return refusal{code: 406, reason: "Not Acceptable",
			headers: []sipmsg.Header{sipmsg.NewHeader("Accept", "application/sdp")}}, false
	}
	return refusal{}, true
}

// acceptsSDP reports whether the request's Accept headers (none: SDP is the
// default) admit application/sdp.
func acceptsSDP(req *sipmsg.Request) bool {
	accepts := req.GetHeaders("Accept")
	if len(accepts) == 0 {
		return true
	}
	for _, h := range accepts {
		if strings.TrimSpace(h.Value()) == "" { // an empty Accept means the default
			return true
		}
		for item := range strings.SplitSeq(h.Value(), ",") {
			mediaType, params, _ := strings.Cut(item, ";")
			switch strings.ToLower(strings.TrimSpace(mediaType)) {
			case "application/sdp", "application/*", "*/*":
				if !refusedByQ(params) {
					return true
				}
			}
		}
	}
	return false
}

// refusedByQ reports whether media-type parameters carry q=0 ("not
// acceptable", RFC 3261 §20.1 after HTTP).
func refusedByQ(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(name, "q") {
			if q, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && q == 0 {
				return true
			}
		}
	}
	return false
}
