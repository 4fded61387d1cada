package harness

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SIPMessage is a SIP message as a raw test peer sees it: the start line,
// headers by lower-case full name (compact forms expanded), and the body.
type SIPMessage struct {
	StartLine string
	Code      int    // responses; 0 for requests
	Method    string // requests; "" for responses
	Headers   map[string][]string
	Body      []byte
	Raw       []byte
}

// Header is the first value of a header, "" when absent.
func (m *SIPMessage) Header(name string) string {
	if v := m.Headers[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// CSeqMethod is the method of the CSeq header.
func (m *SIPMessage) CSeqMethod() string {
	f := strings.Fields(m.Header("CSeq"))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// ToTag is the tag parameter of To ("" when none).
func (m *SIPMessage) ToTag() string {
	_, tag, ok := strings.Cut(m.Header("To"), ";tag=")
	if !ok {
		return ""
	}
	tag, _, _ = strings.Cut(tag, ";")
	return strings.TrimSpace(tag)
}

var compactHeaders = map[string]string{"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
	"c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via"}

// ParseSIP reads one message from the start of data; it is lenient, a
// test's view of the gateway's answers, not a validating parser.
func ParseSIP(data []byte) (*SIPMessage, error) {
	head, body, ok := bytes.Cut(data, []byte("\r\n\r\n"))
	if !ok {
		return nil, errors.New("sip: no end of headers")
	}
	lines := strings.Split(string(head), "\r\n")
	m := &SIPMessage{StartLine: lines[0], Headers: map[string][]string{}, Body: body, Raw: data}
	if strings.HasPrefix(m.StartLine, "SIP/") {
		// Any version: a gateway that echoes a request's bad version back
		// must still be seen to answer.
		_, rest, _ := strings.Cut(m.StartLine, " ")
		code, _, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(code)
		if err != nil {
			return nil, fmt.Errorf("sip: status line %q: %w", m.StartLine, err)
		}
		m.Code = n
	} else {
		m.Method, _, _ = strings.Cut(m.StartLine, " ")
	}
	for _, l := range lines[1:] {
		name, val, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if full, ok := compactHeaders[name]; ok {
			name = full
		}
		m.Headers[name] = append(m.Headers[name], strings.TrimSpace(val))
	}
	if cl, err := strconv.Atoi(m.Header("Content-Length")); err == nil && cl >= 0 && cl <= len(body) {
		m.Body = body[:cl]
	}
	return m, nil
}

// RawSIP is a SIP peer on one UDP socket that writes messages byte for
// byte, for tests that need what a stack would never send: malformed
// requests, retransmissions, missing ACKs, floods.
type RawSIP struct {
	Conn *net.UDPConn
	To   *net.UDPAddr // the gateway
}

// NewRawSIP binds a UDP socket on localIP (127.0.0.1, 127.0.0.2, ...: all of
// 127.0.0.0/8 is the loopback interface on Linux) and aims it at gwAddr.
// The socket is closed when the test ends.
func NewRawSIP(t testing.TB, localIP, gwAddr string) *RawSIP {
	t.Helper()
	to, err := net.ResolveUDPAddr("udp4", gwAddr) // an IP:port, no DNS
	if err != nil {
		t.Fatalf("harness: gateway address %q: %v", gwAddr, err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(localIP)})
	if err != nil {
		t.Fatalf("harness: bind %s: %v", localIP, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &RawSIP{Conn: c, To: to}
}

// Addr is the peer's host:port, for Via and Contact.
func (r *RawSIP) Addr() string { return r.Conn.LocalAddr().String() }

// Send writes one datagram to the gateway.
func (r *RawSIP) Send(t testing.TB, msg []byte) {
	t.Helper()
	if _, err := r.Conn.WriteToUDP(msg, r.To); err != nil {
		t.Fatalf("harness: send to %s: %v", r.To, err)
	}
}

// Recv returns the next message that parses, or an error after timeout.
func (r *RawSIP) Recv(timeout time.Duration) (*SIPMessage, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		if err := r.Conn.SetReadDeadline(deadline); err != nil {
			return nil, err
		}
		n, _, err := r.Conn.ReadFromUDP(buf)
		if err != nil {
			return nil, err
		}
		if m, err := ParseSIP(append([]byte(nil), buf[:n]...)); err == nil {
			return m, nil
		}
	}
}

// Await returns the first message for which match is true, answering the
// gateway's in-dialog requests on the way (200 to BYE, for instance) when
// answer is set. Other messages are skipped.
func (r *RawSIP) Await(t testing.TB, timeout time.Duration, answer bool, match func(*SIPMessage) bool) (*SIPMessage, error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := r.Recv(time.Until(deadline))
		if err != nil {
			return nil, err
		}
		if match(m) {
			return m, nil
		}
		if answer && m.Method != "" && m.Method != "ACK" {
			r.Send(t, Response(m, 200, "OK"))
		}
	}
}

// IsResponse matches a final or provisional answer to method with code
// (0: any code).
func IsResponse(method string, code int) func(*SIPMessage) bool {
	return func(m *SIPMessage) bool {
		return m.Code != 0 && m.CSeqMethod() == method && (code == 0 || m.Code == code)
	}
}

// IsFinal matches a final response (>= 200) to method.
func IsFinal(method string) func(*SIPMessage) bool {
	return func(m *SIPMessage) bool { return m.Code >= 200 && m.CSeqMethod() == method }
}

// RandToken is a random hex string for tags, branches and Call-IDs.
func RandToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Dialog is the state a raw UAC keeps for one call.
type Dialog struct {
	CallID, FromTag, ToTag, Branch string
	CSeq                           int
	Local, Target                  string // our host:port; the gateway's host:port
	User                           string // called user
	Transport                      string // "UDP" or "TCP"
	// Non2xx makes ACK reuse the INVITE's branch: set it (see AckFor) to
	// ACK a final failure, which the gateway otherwise retransmits.
	Non2xx bool
}

// AckFor is the ACK of the INVITE's final answer res: for a failure, in the
// INVITE's transaction with res's To tag; for a 2xx, a new request in the
// dialog. It also takes res's To tag into the dialog.
func (d *Dialog) AckFor(res *SIPMessage) []byte {
	d.ToTag = res.ToTag()
	d.Non2xx = res.Code >= 300
	return d.Request("ACK", nil, nil)
}

// NewDialog starts a dialog from local to the gateway's user@target.
func NewDialog(local, target, user string) *Dialog {
	return &Dialog{CallID: RandToken() + "@" + local, FromTag: RandToken(), Branch: "z9hG4bK" + RandToken(),
		CSeq: 1, Local: local, Target: target, User: user, Transport: "UDP"}
}

// Request builds a request of the dialog; ACK and CANCEL reuse the
// INVITE's CSeq number (and CANCEL its branch), others take the next one.
func (d *Dialog) Request(method string, extra []string, body []byte) []byte {
	branch := d.Branch
	switch method {
	case "INVITE", "CANCEL":
	case "ACK":
		if d.Non2xx { // the ACK of a non-2xx is part of the INVITE transaction (RFC 3261 17.1.1.3)
			break
		}
		branch = "z9hG4bK" + RandToken()
	default:
		d.CSeq++
		branch = "z9hG4bK" + RandToken()
	}
	to := fmt.Sprintf("<sip:%s@%s>", d.User, d.Target)
	if d.ToTag != "" {
		to += ";tag=" + d.ToTag
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:%s@%s SIP/2.0\r\n", method, d.User, d.Target)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=%s;rport\r\n", d.Transport, d.Local, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:tester@%s>;tag=%s\r\n", d.Local, d.FromTag)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", d.CallID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", d.CSeq, method)
	fmt.Fprintf(&b, "Contact: <sip:tester@%s>\r\n", d.Local)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	if len(body) > 0 {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return []byte(b.String())
}

// Invite is the dialog's INVITE offering PCMU (and telephone-event 101)
// with RTP at rtpPort on 127.0.0.1.
func (d *Dialog) Invite(rtpIP string, rtpPort int) []byte {
	return d.Request("INVITE", nil, OfferSDP(rtpIP, rtpPort))
}

// OfferSDP is a minimal PCMU offer.
func OfferSDP(ip string, port int) []byte {
	return []byte(fmt.Sprintf("v=0\r\no=tester 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n",
		ip, ip, port))
}

// Response answers a request from the gateway (200 to its BYE, say).
func Response(req *SIPMessage, code int, reason string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, h := range []string{"via", "from", "to", "call-id", "cseq"} {
		for _, v := range req.Headers[h] {
			fmt.Fprintf(&b, "%s: %s\r\n", h, v)
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// SDPAudioAddr reads c= and m=audio of an SDP body: where to send RTP.
func SDPAudioAddr(body []byte) (string, error) {
	var ip, port string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(l, "c=IN IP4 "); ok {
			ip = v
		}
		if v, ok := strings.CutPrefix(l, "m=audio "); ok {
			port, _, _ = strings.Cut(v, " ")
		}
	}
	if ip == "" || port == "" {
		return "", fmt.Errorf("sip: no c= or m=audio in %q", body)
	}
	return net.JoinHostPort(ip, port), nil
}

// Options sends an OPTIONS from a fresh socket on localIP and returns the
// status of the final answer, or 0 when none came within timeout.
func Options(t testing.TB, localIP, gwAddr string, timeout time.Duration) int {
	t.Helper()
	p := NewRawSIP(t, localIP, gwAddr)
	defer p.Conn.Close()
	d := NewDialog(p.Addr(), gwAddr, "ping")
	p.Send(t, d.Request("OPTIONS", nil, nil))
	m, err := p.Await(t, timeout, false, IsFinal("OPTIONS"))
	if err != nil {
		return 0
	}
	return m.Code
}

// ReadAllTCP reads what arrives on c until it has been quiet for quiet or
// total has passed, for a raw TCP peer.
func ReadAllTCP(c net.Conn, quiet, total time.Duration) []byte {
	var out []byte
	buf := make([]byte, 65536)
	end := time.Now().Add(total)
	for time.Now().Before(end) {
		dl := time.Now().Add(quiet)
		if dl.After(end) {
			dl = end
		}
		_ = c.SetReadDeadline(dl)
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) || !isTimeout(err) || n == 0 {
				break
			}
		}
	}
	return out
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// SplitSIPStream splits a TCP byte stream into messages by Content-Length.
func SplitSIPStream(data []byte) []*SIPMessage {
	var out []*SIPMessage
	for len(data) > 0 {
		i := bytes.Index(data, []byte("\r\n\r\n"))
		if i < 0 {
			break
		}
		m, err := ParseSIP(data)
		if err != nil {
			break
		}
		cl, _ := strconv.Atoi(m.Header("Content-Length"))
		end := i + 4 + max(cl, 0)
		if end > len(data) {
			end = len(data)
		}
		m.Raw = data[:end]
		out = append(out, m)
		data = data[end:]
	}
	return out
}
