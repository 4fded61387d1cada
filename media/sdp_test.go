package media

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
)

func readSDP(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "sdp", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testAnswerConfig() AnswerConfig {
	return AnswerConfig{
		Codecs:         []string{"PCMU", "PCMA"},
		LocalAddr:      netip.MustParseAddr("10.0.0.1"),
		LocalPort:      20000,
		SessionID:      42,
		SessionVersion: 1,
	}
}

// answerLines parses an answer with pion (strictly, no normalising) and returns its lines.
func answerLines(t *testing.T, answer []byte) []string {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(answer); err != nil {
		t.Fatalf("answer does not parse with pion: %v\n%s", err, answer)
	}
	return strings.Split(strings.TrimSuffix(string(answer), "\r\n"), "\r\n")
}

func TestParseDescription(t *testing.T) {
	tests := []struct {
		file      string
		addr      string
		port      int
		codecs    []string // Name/PT
		te        int      // -1: none
		ptime     time.Duration
		dir       Direction
		sessionID uint64
	}{
		{"telnyx.sdp", "192.76.120.10", 21362, []string{"PCMU/0", "PCMA/8"}, 101, 20 * time.Millisecond, SendRecv, 3912345678},
		{"asterisk_g729_pcma.sdp", "203.0.113.5", 12838, []string{"PCMA/8", "PCMU/0"}, 101, 20 * time.Millisecond, SendRecv, 1823412561},
		{"linphone_video.sdp", "192.168.1.20", 7078, []string{"PCMU/0", "PCMA/8"}, 100, 20 * time.Millisecond, SendRecv, 2394},
		{"sloppy_lf.sdp", "198.51.100.7", 30000, []string{"PCMA/8"}, 101, 20 * time.Millisecond, SendRecv, 12345},
		{"sipp_pcma_ptime30.sdp", "127.0.0.1", 6000, []string{"PCMA/8"}, -1, 30 * time.Millisecond, SendRecv, 53655765},
		{"hold_sendonly.sdp", "203.0.113.5", 12838, []string{"PCMU/0"}, 101, 20 * time.Millisecond, SendOnly, 1823412561},
		{"hold_inactive.sdp", "203.0.113.5", 12838, []string{"PCMU/0"}, 101, 20 * time.Millisecond, Inactive, 1823412561},
		{"hold_zero_addr.sdp", "0.0.0.0", 18000, []string{"PCMU/0"}, -1, 20 * time.Millisecond, SendRecv, 20518},
		{"ipv6.sdp", "2001:db8::10", 40000, []string{"PCMA/8", "PCMU/0"}, 101, 20 * time.Millisecond, SendRecv, 1},
		{"srtp_with_avp_alt.sdp", "192.0.2.50", 25002, []string{"PCMU/0", "PCMA/8"}, -1, 20 * time.Millisecond, SendRecv, 4222},
		{"t38_media_conn.sdp", "192.0.2.77", 4000, []string{"PCMU/0"}, -1, 20 * time.Millisecond, SendRecv, 5},
		{"pcma_te96_recvonly.sdp", "192.0.2.4", 5004, []string{"PCMA/8"}, 96, 25 * time.Millisecond, RecvOnly, 77},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			d, err := ParseDescription(readSDP(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if d.Addr != netip.MustParseAddr(tt.addr) || d.Port != tt.port {
				t.Errorf("addr %v port %d, want %s %d", d.Addr, d.Port, tt.addr, tt.port)
			}
			var got []string
			for _, c := range d.Codecs {
				if c.ClockRate != 8000 {
					t.Errorf("codec %+v: clock rate", c)
				}
				got = append(got, c.Name+"/"+strconv.Itoa(int(c.PayloadType)))
			}
			if strings.Join(got, ",") != strings.Join(tt.codecs, ",") {
				t.Errorf("codecs %v, want %v", got, tt.codecs)
			}
			if tt.te < 0 {
				if d.HasTelephoneEvent {
					t.Errorf("telephone-event %d, want none", d.TelephoneEvent)
				}
			} else if !d.HasTelephoneEvent || int(d.TelephoneEvent) != tt.te {
				t.Errorf("telephone-event %v/%d, want %d", d.HasTelephoneEvent, d.TelephoneEvent, tt.te)
			}
			if d.PTime != tt.ptime || d.Direction != tt.dir || d.SessionID != tt.sessionID {
				t.Errorf("ptime %v dir %v session %d, want %v %v %d", d.PTime, d.Direction, d.SessionID, tt.ptime, tt.dir, tt.sessionID)
			}
		})
	}
}

func TestParseDescriptionErrors(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		notSDP        bool
		notAcceptable bool
	}{
		{"empty", "", true, false},
		{"html", "<html><body>hello</body></html>", true, false},
		{"json", `{"sdp": "v=0"}`, true, false},
		{"video only", string(readSDP(t, "video_only.sdp")), false, true},
		{"no media", "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDescription([]byte(tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			var na *NotAcceptableError
			if errors.Is(err, ErrNotSDP) != tt.notSDP || errors.As(err, &na) != tt.notAcceptable {
				t.Fatalf("error %v: notSDP=%v notAcceptable=%v", err, errors.Is(err, ErrNotSDP), errors.As(err, &na))
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		file       string
		cfg        func(*AnswerConfig)
		codec      string
		pt         uint8
		te         int
		ptime      time.Duration
		local      Direction
		hold       bool
		remote     string
		want       []string // lines the answer must contain
		wantAbsent []string
	}{
		{file: "telnyx.sdp", codec: "PCMU", pt: 0, te: 101, ptime: 20 * time.Millisecond, local: SendRecv, remote: "192.76.120.10:21362",
			want: []string{"v=0", "o=switchboard 42 1 IN IP4 10.0.0.1", "c=IN IP4 10.0.0.1", "t=0 0", "m=audio 20000 RTP/AVP 0 101",
				"a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv"}},
		{file: "telnyx.sdp", cfg: func(c *AnswerConfig) { c.Codecs = []string{"PCMA", "PCMU"}; c.PreferOurs = true },
			codec: "PCMA", pt: 8, te: 101, ptime: 20 * time.Millisecond, local: SendRecv, remote: "192.76.120.10:21362",
			want: []string{"m=audio 20000 RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000"}},
		{file: "telnyx.sdp", cfg: func(c *AnswerConfig) { c.Codecs = []string{"PCMA", "PCMU"} },
			codec: "PCMU", pt: 0, te: 101, ptime: 20 * time.Millisecond, local: SendRecv, remote: "192.76.120.10:21362"},
		{file: "asterisk_g729_pcma.sdp", codec: "PCMA", pt: 8, te: 101, ptime: 20 * time.Millisecond, local: SendRecv, remote: "203.0.113.5:12838",
			want: []string{"m=audio 20000 RTP/AVP 8 101", "a=rtpmap:101 telephone-event/8000"}, wantAbsent: []string{"a=rtpmap:96 telephone-event/8000"}},
		{file: "linphone_video.sdp", codec: "PCMU", pt: 0, te: 100, ptime: 20 * time.Millisecond, local: SendRecv, remote: "192.168.1.20:7078",
			want: []string{"m=audio 20000 RTP/AVP 0 100", "a=fmtp:100 0-16", "m=video 0 RTP/AVP 96"}},
		{file: "sloppy_lf.sdp", codec: "PCMA", pt: 8, te: 101, ptime: 20 * time.Millisecond, local: SendRecv, remote: "198.51.100.7:30000"},
		{file: "sipp_pcma_ptime30.sdp", codec: "PCMA", pt: 8, te: -1, ptime: 30 * time.Millisecond, local: SendRecv, remote: "127.0.0.1:6000",
			want: []string{"m=audio 20000 RTP/AVP 8", "a=ptime:30"}, wantAbsent: []string{"a=fmtp:101 0-16"}},
		{file: "sipp_pcma_ptime30.sdp", cfg: func(c *AnswerConfig) { c.PTimes = []time.Duration{20 * time.Millisecond} },
			codec: "PCMA", pt: 8, te: -1, ptime: 20 * time.Millisecond, local: SendRecv, remote: "127.0.0.1:6000", want: []string{"a=ptime:20"}},
		{file: "pcma_te96_recvonly.sdp", codec: "PCMA", pt: 8, te: 96, ptime: 20 * time.Millisecond, local: SendOnly, remote: "192.0.2.4:5004",
			want: []string{"m=audio 20000 RTP/AVP 8 96", "a=ptime:20", "a=sendonly"}},
		{file: "hold_sendonly.sdp", cfg: func(c *AnswerConfig) { c.SessionVersion = 2 }, codec: "PCMU", pt: 0, te: 101, ptime: 20 * time.Millisecond,
			local: RecvOnly, hold: true, remote: "203.0.113.5:12838", want: []string{"o=switchboard 42 2 IN IP4 10.0.0.1", "a=recvonly"}},
		{file: "hold_inactive.sdp", codec: "PCMU", pt: 0, te: 101, ptime: 20 * time.Millisecond, local: Inactive, hold: true,
			remote: "203.0.113.5:12838", want: []string{"a=inactive"}},
		{file: "hold_zero_addr.sdp", codec: "PCMU", pt: 0, te: -1, ptime: 20 * time.Millisecond, local: Inactive, hold: true,
			want: []string{"a=inactive"}},
		{file: "ipv6.sdp", cfg: func(c *AnswerConfig) { c.LocalAddr = netip.MustParseAddr("2001:db8::1") },
			codec: "PCMA", pt: 8, te: 101, ptime: 20 * time.Millisecond, local: SendRecv, remote: "[2001:db8::10]:40000",
			want: []string{"o=switchboard 42 1 IN IP6 2001:db8::1", "c=IN IP6 2001:db8::1"}},
		{file: "srtp_with_avp_alt.sdp", codec: "PCMU", pt: 0, te: -1, ptime: 20 * time.Millisecond, local: SendRecv, remote: "192.0.2.50:25002",
			want: []string{"m=audio 0 RTP/SAVP 0", "m=audio 20000 RTP/AVP 0"}},
		{file: "t38_media_conn.sdp", codec: "PCMU", pt: 0, te: -1, ptime: 20 * time.Millisecond, local: SendRecv, remote: "192.0.2.77:4000",
			want: []string{"m=image 0 UDPTL t38"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			offer, err := ParseDescription(readSDP(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg := testAnswerConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			n, answer, err := Negotiate(offer, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if n.Codec.Name != tt.codec || n.Codec.PayloadType != tt.pt || n.PTime != tt.ptime || n.LocalDirection != tt.local || n.Hold != tt.hold {
				t.Errorf("negotiated %+v", n)
			}
			if (tt.te >= 0) != n.HasTelephoneEvent || (tt.te >= 0 && int(n.TelephoneEvent) != tt.te) {
				t.Errorf("telephone-event %v/%d, want %d", n.HasTelephoneEvent, n.TelephoneEvent, tt.te)
			}
			if tt.remote == "" {
				if n.Remote.IsValid() {
					t.Errorf("remote %v, want none (hold)", n.Remote)
				}
			} else if n.Remote != netip.MustParseAddrPort(tt.remote) {
				t.Errorf("remote %v, want %s", n.Remote, tt.remote)
			}
			var lines []string
			if tt.file == "t38_media_conn.sdp" {
				lines = strings.Split(string(answer), "\r\n") // pion cannot read m=image
			} else {
				lines = answerLines(t, answer)
			}
			for _, w := range tt.want {
				if !contains(lines, w) {
					t.Errorf("answer lacks %q:\n%s", w, answer)
				}
			}
			for _, w := range tt.wantAbsent {
				if contains(lines, w) {
					t.Errorf("answer has %q:\n%s", w, answer)
				}
			}
			// The answer reads back as what we negotiated.
			back, err := ParseDescription(answer)
			if err != nil {
				t.Fatalf("answer does not parse back: %v", err)
			}
			if len(back.Codecs) != 1 || back.Codecs[0] != n.Codec || back.Direction != n.LocalDirection || back.Port != cfg.LocalPort {
				t.Errorf("answer parses back as %+v", back)
			}
			if len(back.streams) != len(offer.streams) {
				t.Errorf("answer has %d m= lines, offer %d", len(back.streams), len(offer.streams))
			}
		})
	}
}

func contains(lines []string, l string) bool {
	for _, x := range lines {
		if x == l {
			return true
		}
	}
	return false
}

func TestNegotiateNotAcceptable(t *testing.T) {
	tests := []struct {
		file   string
		reason string
	}{
		{"no_common_codec.sdp", "no common audio codec: offered G729, opus/48000; we accept PCMU, PCMA"},
		{"srtp_only.sdp", "SRTP-only offer (RTP/SAVP) with no RTP/AVP alternative"},
		{"audio_port0.sdp", "port 0"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			offer, err := ParseDescription(readSDP(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			_, answer, err := Negotiate(offer, testAnswerConfig())
			var na *NotAcceptableError
			if !errors.As(err, &na) {
				t.Fatalf("error %v, want *NotAcceptableError", err)
			}
			if !strings.Contains(na.Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", na.Reason, tt.reason)
			}
			if answer != nil {
				t.Error("answer on error")
			}
		})
	}
	t.Run("nothing offered in our list", func(t *testing.T) {
		offer, err := ParseDescription(readSDP(t, "sipp_pcma_ptime30.sdp"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := testAnswerConfig()
		cfg.Codecs = []string{"PCMU"}
		_, _, err = Negotiate(offer, cfg)
		var na *NotAcceptableError
		if !errors.As(err, &na) || na.Reason != "no common audio codec: offered PCMA; we accept PCMU" {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("hand-made description without audio", func(t *testing.T) {
		_, _, err := Negotiate(&Description{audio: -1}, testAnswerConfig())
		var na *NotAcceptableError
		if !errors.As(err, &na) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestNegotiateConfigErrors(t *testing.T) {
	offer, err := ParseDescription(readSDP(t, "telnyx.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testAnswerConfig()
	cfg.LocalAddr = netip.Addr{}
	if _, _, err := Negotiate(offer, cfg); err == nil {
		t.Error("no error without local address")
	}
	cfg = testAnswerConfig()
	cfg.LocalPort = 0
	if _, _, err := Negotiate(offer, cfg); err == nil {
		t.Error("no error without local port")
	}
	if _, _, err := Negotiate(nil, testAnswerConfig()); err == nil {
		t.Error("no error for nil offer")
	}
}

func TestBuildOfferApplyAnswer(t *testing.T) {
	cfg := testAnswerConfig()
	cfg.Codecs = []string{"PCMA", "G729", "PCMU"}
	offer := BuildOffer(cfg, 101)
	lines := answerLines(t, offer)
	for _, w := range []string{"m=audio 20000 RTP/AVP 8 0 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000",
		"a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv", "c=IN IP4 10.0.0.1"} {
		if !contains(lines, w) {
			t.Errorf("offer lacks %q:\n%s", w, offer)
		}
	}

	// The far end (another Switchboard, say) answers our offer.
	parsed, err := ParseDescription(offer)
	if err != nil {
		t.Fatal(err)
	}
	far := AnswerConfig{Codecs: []string{"PCMU"}, LocalAddr: netip.MustParseAddr("192.0.2.8"), LocalPort: 30000, SessionID: 9}
	fn, answer, err := Negotiate(parsed, far)
	if err != nil {
		t.Fatal(err)
	}
	if fn.Codec.Name != "PCMU" || fn.Remote != netip.MustParseAddrPort("10.0.0.1:20000") {
		t.Errorf("far end negotiated %+v", fn)
	}
	ad, err := ParseDescription(answer)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ApplyAnswer(ad, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := Negotiated{Codec: Codec{"PCMU", 0, 8000}, TelephoneEvent: 101, HasTelephoneEvent: true, PTime: 20 * time.Millisecond,
		Remote: netip.MustParseAddrPort("192.0.2.8:30000"), LocalDirection: SendRecv}
	if n != want {
		t.Errorf("applied %+v, want %+v", n, want)
	}

	// Answers we cannot use.
	for _, f := range []string{"no_common_codec.sdp", "srtp_only.sdp", "audio_port0.sdp"} {
		d, err := ParseDescription(readSDP(t, f))
		if err != nil {
			t.Fatal(err)
		}
		var na *NotAcceptableError
		if _, err := ApplyAnswer(d, cfg); !errors.As(err, &na) {
			t.Errorf("%s: error %v", f, err)
		}
	}
	// A hold answer (far end sendonly) is applied as recvonly on our side.
	d, err := ParseDescription(readSDP(t, "hold_sendonly.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ApplyAnswer(d, cfg); err != nil || n.LocalDirection != RecvOnly || !n.Hold {
		t.Errorf("hold answer: %+v %v", n, err)
	}
}

func TestBuildOfferDefaults(t *testing.T) {
	offer := BuildOffer(AnswerConfig{LocalPort: 1234}, 0)
	lines := answerLines(t, offer)
	for _, w := range []string{"m=audio 1234 RTP/AVP 0 8", "c=IN IP4 0.0.0.0", "o=switchboard 0 0 IN IP4 0.0.0.0"} {
		if !contains(lines, w) {
			t.Errorf("offer lacks %q:\n%s", w, offer)
		}
	}
}

func TestDirectionString(t *testing.T) {
	for d, s := range map[Direction]string{SendRecv: "sendrecv", SendOnly: "sendonly", RecvOnly: "recvonly", Inactive: "inactive", 9: "Direction(9)"} {
		if d.String() != s {
			t.Errorf("%d: %q", d, d.String())
		}
	}
}

func TestParseDescriptionSessionLevel(t *testing.T) {
	body := "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\na=sendonly\n" +
		"m=AUDIO 5000 rtp/avp 0 97\na=rtpmap:97 PCMU/8000\na=ptime:bogus\nm=audio 5002 RTP/AVP 8\na=inactive\n"
	d, err := ParseDescription([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if d.Direction != SendOnly || d.PTime != DefaultPTime || d.Port != 5000 || len(d.Codecs) != 2 || d.Codecs[1].PayloadType != 97 {
		t.Errorf("%+v", d)
	}
	n, answer, err := Negotiate(d, testAnswerConfig())
	if err != nil {
		t.Fatal(err)
	}
	lines := answerLines(t, answer)
	if n.LocalDirection != RecvOnly || !n.Hold || !contains(lines, "m=audio 0 RTP/AVP 8") || !contains(lines, "a=recvonly") {
		t.Errorf("%+v\n%s", n, answer)
	}
}
