package sip

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// outOfDialog is what a series of out-of-dialog requests to a trunk keeps:
// RFC 3261 10.2 wants one Call-ID for all of a UA's registrations with a
// registrar, and CSeq increasing by one each request.
type outOfDialog struct {
	callID  string
	fromTag string
	cseq    uint32
}

func newOutOfDialog() outOfDialog {
	return outOfDialog{callID: sipmsg.GenerateTagN(24) + "@switchboard", fromTag: sipmsg.GenerateTagN(16)}
}

// trunkRequest builds one request of the series to the trunk's next hop
// dest: From the account, To toUser@FromDomain, our Via with rport (RFC
// 3581) so the response tells us the address the far end sees, a Route
// through the outbound proxy when there is one.
func (s *Server) trunkRequest(t Trunk, o *outOfDialog, method sipmsg.RequestMethod, ruri sipmsg.Uri, toUser string, dest netip.AddrPort) *sipmsg.Request {
	o.cseq++
	req := sipmsg.NewRequest(method, ruri)
	req.SetTransport(sipTransport(t.Transport))
	req.SetDestination(dest.String())

	via := &sipmsg.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: sipTransport(t.Transport),
		Host: s.cfg.PublicHost, Port: int(s.cfg.Listen.Port()), Params: sipmsg.NewParams(),
	}
	via.Params.Add("branch", sipmsg.GenerateBranchN(16))
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	if t.OutboundProxy != "" {
		host, port, _ := splitHostPort(t.OutboundProxy, 0) // checked by Normalize
		route := &sipmsg.RouteHeader{Address: sipmsg.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sipmsg.NewParams()}}
		route.Address.UriParams.Add("lr", "")
		req.AppendHeader(route)
	}
	maxFwd := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: t.FromUser, Host: t.FromDomain}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", o.fromTag)
	req.AppendHeader(from)
	req.AppendHeader(&sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: toUser, Host: t.FromDomain}})
	callID := sipmsg.CallIDHeader(o.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: o.cseq, MethodName: method})
	if s.cfg.UserAgent != "" {
		req.AppendHeader(sipmsg.NewHeader("User-Agent", s.cfg.UserAgent))
	}
	return req
}

// trunkURI is the trunk's domain as a Request-URI (REGISTER, OPTIONS).
func trunkURI(t Trunk) sipmsg.Uri {
	host, port := strings.Trim(t.Host, "[]"), t.Port
	u := sipmsg.Uri{Scheme: "sip", Host: host, Port: port}
	if t.Transport != "udp" {
		u.UriParams = sipmsg.NewParams()
		u.UriParams.Add("transport", t.Transport)
	}
	return u
}

// sendChain sends the requests build makes until one is answered with
// something other than a digest challenge we can answer. It returns the
// last response received (nil when none came) and the error that stopped
// the chain: a transport error or timeout, or a challenge it could not
// answer. build is called for every try: each needs a new branch and CSeq.
func (s *Server) sendChain(ctx context.Context, auth *authState, build func() *sipmsg.Request) (*sipmsg.Response, error) {
	auth.begin()
	var last *sipmsg.Response
	for {
		req := build()
		if err := auth.apply(req); err != nil {
			return last, err
		}
		res, err := s.client.Do(ctx, req)
		if err != nil {
			return last, err
		}
		last = res
		if !isChallenge(res) {
			auth.passed()
			return res, nil
		}
		if err := auth.answer(res); err != nil {
			return res, err
		}
	}
}

// viaReceived is the address the far end saw our request come from: the
// received and rport parameters of the response's top Via (RFC 3581),
// "" and 0 for what it did not say.
func viaReceived(res *sipmsg.Response) (host string, port int) {
	via := res.Via()
	if via == nil {
		return "", 0
	}
	if v, ok := via.Params.Get("received"); ok {
		if a, err := netip.ParseAddr(strings.Trim(v, "[]")); err == nil {
			host = a.Unmap().String()
		}
	}
	if v, ok := via.Params.Get("rport"); ok {
		if p, err := strconv.ParseUint(v, 10, 16); err == nil && p > 0 {
			port = int(p)
		}
	}
	return host, port
}

// errNoAddress: the trunk has no usable next hop yet (DNS failed or the
// monitor has not resolved it).
var errNoAddress = errors.New("sip: trunk has no address to send to")

// usable keeps the addresses our listener can reach: requests leave from
// the listener's socket, so an IPv4 listener cannot send to IPv6 and back.
func (s *Server) usable(addrs []netip.AddrPort) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		if a.Addr().Is4() == s.cfg.Listen.Addr().Is4() {
			out = append(out, a)
		}
	}
	return out
}
