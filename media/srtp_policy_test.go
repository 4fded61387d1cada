package media

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/rtp"
)

func offerSDP(media ...string) []byte {
	return []byte("v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n" + strings.Join(media, ""))
}

func audioLine(port, proto string, attrs ...string) string {
	s := "m=audio " + port + " " + proto + " 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
	for _, a := range attrs {
		s += "a=" + a + "\r\n"
	}
	return s
}

func TestParseSRTPPolicy(t *testing.T) {
	for in, want := range map[string]SRTPPolicy{"": SRTPOff, "off": SRTPOff, "optional": SRTPOptional, "Required": SRTPRequired, " required ": SRTPRequired} {
		got, err := ParseSRTPPolicy(in)
		if err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
		if back, _ := ParseSRTPPolicy(got.String()); back != got {
			t.Errorf("%v does not round-trip", got)
		}
	}
	for _, in := range []string{"on", "yes", "true", "sdes"} {
		if _, err := ParseSRTPPolicy(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// TestNegotiateSRTPPolicy answers offers of every kind under each policy.
func TestNegotiateSRTPPolicy(t *testing.T) {
	key := testKeyB64
	c80 := "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + key
	c32 := "crypto:5 AES_CM_128_HMAC_SHA1_32 inline:" + key + "|2^31"
	offers := map[string][]byte{
		"avp":            offerSDP(audioLine("4000", "RTP/AVP")),
		"avp+crypto":     offerSDP(audioLine("4000", "RTP/AVP", c80)),
		"savp":           offerSDP(audioLine("4000", "RTP/SAVP", c80)),
		"savp 32 first":  offerSDP(audioLine("4000", "RTP/SAVP", "crypto:9 AES_256_CM_HMAC_SHA1_80 inline:xyz", c32, c80)),
		"savp mki":       offerSDP(audioLine("4000", "RTP/SAVP", "crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|2^20|7:2")),
		"savpf":          offerSDP(audioLine("4000", "RTP/SAVPF", c80)),
		"savp no crypto": offerSDP(audioLine("4000", "RTP/SAVP")),
		"savp bad crypto": offerSDP(audioLine("4000", "RTP/SAVP",
			"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:short", "crypto:2 AES_256_CM_HMAC_SHA1_80 inline:"+key)),
		"dtls":          offerSDP(audioLine("4000", "UDP/TLS/RTP/SAVPF", "fingerprint:sha-256 AA:BB", "setup:actpass")),
		"savp then avp": offerSDP(audioLine("4000", "RTP/SAVP", c80), audioLine("4002", "RTP/AVP")),
		"avp then savp": offerSDP(audioLine("4002", "RTP/AVP"), audioLine("4000", "RTP/SAVP", c80)),
	}
	type want struct {
		err   string // substring of the 488 reason; "" = accepted
		proto string // answer audio profile
		tag   uint32 // accepted a=crypto tag; 0 = plain RTP
		suite rtp.SRTPSuite
		port  uint16 // remote RTP port
		mki   string
	}
	plain := want{proto: "RTP/AVP", port: 4000}
	plainAlt := want{proto: "RTP/AVP", port: 4002}
	srtp80 := want{proto: "RTP/SAVP", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80, port: 4000}
	tests := []struct {
		offer  string
		policy SRTPPolicy
		want   want
	}{
		{"avp", SRTPOff, plain},
		{"avp", SRTPOptional, plain},
		{"avp", SRTPRequired, want{err: "plain RTP offered but srtp is required"}},
		{"avp+crypto", SRTPOff, plain},
		{"avp+crypto", SRTPOptional, want{proto: "RTP/AVP", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80, port: 4000}},
		{"avp+crypto", SRTPRequired, want{proto: "RTP/AVP", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80, port: 4000}},
		{"savp", SRTPOff, want{err: "SRTP-only offer (RTP/SAVP) with no RTP/AVP alternative; srtp is off"}},
		{"savp", SRTPOptional, srtp80},
		{"savp", SRTPRequired, srtp80},
		{"savp 32 first", SRTPOptional, want{proto: "RTP/SAVP", tag: 5, suite: rtp.AES_CM_128_HMAC_SHA1_32, port: 4000}},
		{"savp mki", SRTPRequired, want{proto: "RTP/SAVP", tag: 2, suite: rtp.AES_CM_128_HMAC_SHA1_80, port: 4000, mki: "\x00\x07"}},
		{"savpf", SRTPOff, want{err: "SRTP-only offer (RTP/SAVPF)"}},
		{"savpf", SRTPOptional, want{proto: "RTP/SAVPF", tag: 1, suite: rtp.AES_CM_128_HMAC_SHA1_80, port: 4000}},
		{"savp no crypto", SRTPOptional, want{err: "no a=crypto in the RTP/SAVP offer stream"}},
		{"savp no crypto", SRTPRequired, want{err: "no a=crypto in the RTP/SAVP offer stream"}},
		{"savp bad crypto", SRTPRequired, want{err: "(AES_CM_128_HMAC_SHA1_80 (malformed), AES_256_CM_HMAC_SHA1_80 (unsupported)); we support AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32"}},
		{"dtls", SRTPOff, want{err: "SRTP-only offer (UDP/TLS/RTP/SAVPF)"}},
		{"dtls", SRTPRequired, want{err: "DTLS-SRTP"}},
		{"savp then avp", SRTPOff, plainAlt},
		{"savp then avp", SRTPOptional, srtp80},
		{"savp then avp", SRTPRequired, srtp80},
		{"avp then savp", SRTPOff, plainAlt},
		{"avp then savp", SRTPOptional, srtp80},
	}
	for _, tt := range tests {
		t.Run(tt.offer+"/"+tt.policy.String(), func(t *testing.T) {
			offer, err := ParseDescription(offers[tt.offer])
			if err != nil {
				t.Fatal(err)
			}
			cfg := testAnswerConfig()
			cfg.SRTP = tt.policy
			cfg.SRTPKey = NewSRTPKey()
			n, answer, err := Negotiate(offer, cfg)
			if tt.want.err != "" {
				var na *NotAcceptableError
				if !errors.As(err, &na) || !strings.Contains(na.Reason, tt.want.err) {
					t.Fatalf("error %v, want a 488 with %q", err, tt.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Remote.Port() != tt.want.port {
				t.Errorf("remote %v, want port %d", n.Remote, tt.want.port)
			}
			lines := answerLines(t, answer)
			mline := "m=audio 20000 " + tt.want.proto + " 0 101"
			if !contains(lines, mline) {
				t.Errorf("answer lacks %q:\n%s", mline, answer)
			}
			back, err := ParseDescription(answer)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.tag == 0 {
				if n.SRTP.Enabled() || len(back.Crypto) != 0 || strings.Contains(string(answer), "crypto") {
					t.Fatalf("plain RTP expected, got %v:\n%s", n.SRTP, answer)
				}
				return
			}
			offered, _ := ParseCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:" + key)
			wantKeys := rtp.SRTPKeys{Suite: tt.want.suite, Local: cfg.SRTPKey, Remote: offered.Key, RemoteMKI: tt.want.mki}
			if n.SRTP != wantKeys {
				t.Errorf("keys for %v, want %v (or keys differ)", n.SRTP, wantKeys)
			}
			// The answer carries exactly one a=crypto: the accepted tag and suite, our key.
			if len(back.Crypto) != 1 || back.Crypto[0].Tag != tt.want.tag || back.Crypto[0].Suite != tt.want.suite ||
				back.Crypto[0].Key != cfg.SRTPKey || back.Crypto[0].MKI != "" {
				t.Errorf("answer crypto %v:\n%s", back.Crypto, answer)
			}
			if strings.Count(string(answer), "a=crypto:") != 1 {
				t.Errorf("answer has several a=crypto:\n%s", answer)
			}
		})
	}
}

// TestNegotiateSRTPFreshKey: an answerer without a key gets a random one per answer.
func TestNegotiateSRTPFreshKey(t *testing.T) {
	offer, err := ParseDescription(offerSDP(audioLine("4000", "RTP/SAVP", "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+testKeyB64)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testAnswerConfig()
	cfg.SRTP = SRTPOptional
	n1, a1, err := Negotiate(offer, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n2, _, err := Negotiate(offer, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n1.SRTP.Local == n2.SRTP.Local || n1.SRTP.Local == (rtp.SRTPKey{}) {
		t.Fatal("answer keys are not fresh")
	}
	if !strings.Contains(string(a1), base64.StdEncoding.EncodeToString(n1.SRTP.Local[:])) {
		t.Fatal("answer does not carry the negotiated key")
	}
}

// TestSRTPOfferAnswer runs our offer through our own answerer for each pair of policies and
// checks both ends agree: the same suite, each one's local key the other's remote key.
func TestSRTPOfferAnswer(t *testing.T) {
	policies := []SRTPPolicy{SRTPOff, SRTPOptional, SRTPRequired}
	// want[offerer][answerer]: "srtp", "plain", or "488" (the answerer refuses).
	want := [3][3]string{
		SRTPOff:      {"plain", "plain", "488"},
		SRTPOptional: {"plain", "srtp", "srtp"},
		SRTPRequired: {"488", "srtp", "srtp"},
	}
	for _, po := range policies {
		for _, pa := range policies {
			t.Run(po.String()+"-offers/"+pa.String()+"-answers", func(t *testing.T) {
				us := testAnswerConfig()
				us.SRTP, us.SRTPKey = po, NewSRTPKey()
				offerBody := BuildOffer(us, 101)
				lines := answerLines(t, offerBody)
				wantProto := map[SRTPPolicy]string{SRTPOff: "RTP/AVP", SRTPOptional: "RTP/AVP", SRTPRequired: "RTP/SAVP"}[po]
				if !contains(lines, "m=audio 20000 "+wantProto+" 0 8 101") {
					t.Fatalf("offer:\n%s", offerBody)
				}
				if got, want := strings.Count(string(offerBody), "a=crypto:"), map[bool]int{true: 0, false: 2}[po == SRTPOff]; got != want {
					t.Fatalf("%d a=crypto lines, want %d:\n%s", got, want, offerBody)
				}

				offer, err := ParseDescription(offerBody)
				if err != nil {
					t.Fatal(err)
				}
				them := testAnswerConfig()
				them.LocalPort = 30000
				them.SRTP, them.SRTPKey = pa, NewSRTPKey()
				nThem, answerBody, err := Negotiate(offer, them)
				if want[po][pa] == "488" {
					var na *NotAcceptableError
					if !errors.As(err, &na) {
						t.Fatalf("answerer: %v, want 488", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				answer, err := ParseDescription(answerBody)
				if err != nil {
					t.Fatal(err)
				}
				nUs, err := ApplyAnswer(answer, us)
				if err != nil {
					t.Fatalf("apply answer: %v\n%s", err, answerBody)
				}
				switch want[po][pa] {
				case "plain":
					if nUs.SRTP.Enabled() || nThem.SRTP.Enabled() {
						t.Fatalf("SRTP on: us %v, them %v", nUs.SRTP, nThem.SRTP)
					}
				case "srtp":
					if nUs.SRTP.Suite != rtp.AES_CM_128_HMAC_SHA1_80 || nThem.SRTP.Suite != nUs.SRTP.Suite ||
						nUs.SRTP.Local != nThem.SRTP.Remote || nUs.SRTP.Remote != nThem.SRTP.Local ||
						nUs.SRTP.Local != us.SRTPKey || nThem.SRTP.Local != them.SRTPKey {
						t.Fatalf("keys do not pair up: us %v, them %v", nUs.SRTP, nThem.SRTP)
					}
				}
			})
		}
	}
}

func TestApplyAnswerSRTPRefusals(t *testing.T) {
	other := "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + testKeyB64
	tests := []struct {
		name   string
		policy SRTPPolicy
		answer []byte
		err    string // "" = accepted as plain RTP
	}{
		{"SAVP answer to a plain offer", SRTPOff, offerSDP(audioLine("4000", "RTP/SAVP", other)), "RTP/SAVP answer to our RTP/AVP offer"},
		{"required, plain answer", SRTPRequired, offerSDP(audioLine("4000", "RTP/AVP")), "plain RTP answered but srtp is required"},
		{"required, tag we did not offer", SRTPRequired, offerSDP(audioLine("4000", "RTP/SAVP", "crypto:7 AES_CM_128_HMAC_SHA1_80 inline:"+testKeyB64)), "no usable a=crypto"},
		{"required, suite under the wrong tag", SRTPRequired, offerSDP(audioLine("4000", "RTP/SAVP", "crypto:1 AES_CM_128_HMAC_SHA1_32 inline:"+testKeyB64)), "no usable a=crypto"},
		{"optional, SAVP answer without crypto", SRTPOptional, offerSDP(audioLine("4000", "RTP/SAVP")), "no a=crypto"},
		{"optional, plain answer", SRTPOptional, offerSDP(audioLine("4000", "RTP/AVP")), ""},
		{"optional without a key offers nothing", SRTPOptional, offerSDP(audioLine("4000", "RTP/AVP", other)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testAnswerConfig()
			cfg.SRTP = tt.policy
			if tt.name != "optional without a key offers nothing" {
				cfg.SRTPKey = NewSRTPKey()
			} else if strings.Contains(string(BuildOffer(cfg, 101)), "crypto") {
				t.Fatal("offer without a key has a=crypto")
			}
			d, err := ParseDescription(tt.answer)
			if err != nil {
				t.Fatal(err)
			}
			n, err := ApplyAnswer(d, cfg)
			if tt.err == "" {
				if err != nil || n.SRTP.Enabled() {
					t.Fatalf("%v %v", n.SRTP, err)
				}
				return
			}
			var na *NotAcceptableError
			if !errors.As(err, &na) || !strings.Contains(na.Reason, tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}
