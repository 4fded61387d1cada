package sip

import (
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
func checkRequest(req *sipmsg.Request) (refusal, bool) {
	if req.SipVersion != "SIP/2.0" {
		return refusal{code: 505, reason: "Version Not Supported"}, false
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
	// §20.17: a Date is always in GMT.
	if d := req.GetHeader("Date"); d != nil && !strings.HasSuffix(strings.TrimSpace(d.Value()), "GMT") {
		return refusal{code: 400, reason: "Bad Request: Date not in GMT"}, false
	}
	for _, name := range singleHeaders {
		if len(req.GetHeaders(name)) > 1 {
			return refusal{code: 400, reason: "Bad Request: more than one " + name}, false
		}
	}
	if cseq := req.CSeq(); cseq != nil && cseq.MethodName != req.Method {
		return refusal{code: 400, reason: "Bad Request: CSeq method does not match"}, false
	}
	// §8.2.2.3: we support no extension, so any Require is refused, except
	// on ACK and CANCEL, which cannot be.
	if !req.IsAck() && !req.IsCancel() {
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
			mediaType, _, _ := strings.Cut(item, ";")
			switch strings.ToLower(strings.TrimSpace(mediaType)) {
			case "application/sdp", "application/*", "*/*":
				return true
			}
		}
	}
	return false
}
