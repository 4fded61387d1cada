package sip

import (
	"context"
	"fmt"
	"net"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// newInvite builds the INVITE Dial sends: Request-URI, From (or
// P-Asserted-Identity) per the caller id options, Contact, next hop, and the
// credentials that answer a challenge. Every value that reaches a header is
// checked here.
func (s *Server) newInvite(ctx context.Context, target string, offer []byte, opts DialOptions) (*sipmsg.Request, credentials, error) {
	var t Trunk
	if opts.Trunk != nil {
		var err error
		if t, err = opts.Trunk.Normalize(); err != nil {
			return nil, credentials{}, err
		}
		if !strings.HasPrefix(target, "sip:") && !strings.HasPrefix(target, "sips:") {
			// A bare number: call it at the trunk's host.
			if err := checkUserPart(target); err != nil || target == "" {
				return nil, credentials{}, fmt.Errorf("sip: bad number %q for trunk %s", target, t.Name)
			}
			target = "sip:" + target + "@" + t.uriHost()
			if t.Transport != "udp" {
				target += ";transport=" + t.Transport
			}
		}
	}
	if err := CheckHeaderValue(target); err != nil {
		return nil, credentials{}, fmt.Errorf("sip: bad target: %w", err)
	}
	var uri sipmsg.Uri
	if err := sipmsg.ParseUri(target, &uri); err != nil {
		return nil, credentials{}, fmt.Errorf("sip: bad target %q: %w", target, err)
	}
	for _, v := range []string{opts.FromUser, opts.FromDisplay, opts.CallerID, opts.CallerName} {
		if err := CheckHeaderValue(v); err != nil {
			return nil, credentials{}, err
		}
	}
	for _, u := range []string{opts.FromUser, opts.CallerID} {
		if err := checkUserPart(u); err != nil {
			return nil, credentials{}, fmt.Errorf("sip: %w", err)
		}
	}

	req := sipmsg.NewRequest(sipmsg.INVITE, uri)
	transport := "udp"
	if opts.Trunk != nil {
		transport = t.Transport
	}
	if uri.UriParams != nil {
		if tr, ok := uri.UriParams.Get("transport"); ok && tr != "" {
			transport = tr
		}
	}
	req.SetTransport(transport)

	// Who is calling. The account (FromUser) is what a carrier
	// authenticates and bills; the caller id goes in From, or in
	// P-Asserted-Identity when the trunk wants From to stay the account.
	domain, account := s.cfg.PublicHost, opts.FromUser
	if opts.Trunk != nil {
		domain = t.FromDomain
		account = firstOf(opts.FromUser, t.FromUser)
	}
	user, display := firstOf(opts.CallerID, account, "switchboard"), firstOf(opts.CallerName, opts.FromDisplay)
	if opts.Trunk != nil && t.CallerIDMode == CallerIDPAI && opts.CallerID != "" {
		user, display = firstOf(account, "switchboard"), opts.FromDisplay
		pai := fmt.Sprintf("<sip:%s@%s>", opts.CallerID, domain)
		if opts.CallerName != "" {
			pai = `"` + escapeQuoted(opts.CallerName) + `" ` + pai
		}
		req.AppendHeader(sipmsg.NewHeader("P-Asserted-Identity", pai))
	}
	from := &sipmsg.FromHeader{
		DisplayName: escapeQuoted(display), // sipgo writes it between quotes as is
		Address:     sipmsg.Uri{Scheme: "sip", User: user, Host: domain},
		Params:      sipmsg.NewParams(),
	}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	req.AppendHeader(from)
	contact := s.contact(transport)
	if opts.Trunk != nil && t.FromUser != "" {
		contact.Address.User = t.FromUser
	}
	req.AppendHeader(&contact)
	req.AppendHeader(sipmsg.NewHeader("Allow", allowedMethods))
	if s.cfg.UserAgent != "" {
		req.AppendHeader(sipmsg.NewHeader("User-Agent", s.cfg.UserAgent))
	}
	for _, h := range opts.Headers {
		if err := CheckHeaderValue(h.Value()); err != nil {
			return nil, credentials{}, err
		}
		req.AppendHeader(h)
	}
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)

	cred := credentials{Username: opts.Username, Password: opts.Password}
	if opts.Trunk != nil {
		if err := s.routeToTrunk(ctx, req, t, opts.Monitor); err != nil {
			return nil, credentials{}, err
		}
		if cred.Password == "" {
			cred = t.credentials()
		}
	}
	return req, cred, nil
}

// routeToTrunk sends the INVITE to the trunk's next hop: the monitor's
// current address, else our own resolution's first; through the outbound
// proxy (Route) when there is one.
func (s *Server) routeToTrunk(ctx context.Context, req *sipmsg.Request, t Trunk, mon *TrunkMonitor) error {
	if t.OutboundProxy != "" {
		host, port, _ := splitHostPort(t.OutboundProxy, 0) // checked by Normalize
		route := &sipmsg.RouteHeader{Address: sipmsg.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sipmsg.NewParams()}}
		route.Address.UriParams.Add("lr", "")
		req.AppendHeader(route)
	}
	if mon != nil {
		a := mon.Current()
		if !a.IsValid() {
			return fmt.Errorf("%w (trunk %s)", errNoAddress, t.Name)
		}
		req.SetDestination(a.String())
		return nil
	}
	addrs, err := ResolveTrunk(ctx, net.DefaultResolver, t)
	if err != nil {
		return err
	}
	if addrs = s.usable(addrs); len(addrs) == 0 {
		return fmt.Errorf("%w (trunk %s)", errNoAddress, t.Name)
	}
	req.SetDestination(addrs[0].String())
	return nil
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// escapeQuoted makes a display name safe inside a quoted-string.
func escapeQuoted(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}
