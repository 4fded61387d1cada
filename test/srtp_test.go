package test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/rtp"
	"github.com/switchboard-voice/switchboard/test/harness"
)

// srtpGatewayConfig: calls from 127.0.0.3 come from a trunk that requires SRTP, from
// 127.0.0.4 one where it is optional, from 127.0.0.1 no trunk (SRTP off).
func srtpGatewayConfig(sipPort, rtpMin, rtpMax int) string {
	return harness.ConfigTemplate(sipPort, rtpMin, rtpMax, `
trunks:
  - name: secure
    host: 127.0.0.9 # not a source below: a trunk's own address also identifies it
    srtp: required
    inbound_networks: [127.0.0.3/32]
  - name: besteffort
    host: 127.0.0.9
    srtp: optional
    inbound_networks: [127.0.0.4/32]
access:
  allow: [127.0.0.1/32]
`)
}

// srtpOffer is an SDP offer from ip:port with profile and a=crypto lines under key.
func srtpOffer(ip string, port int, proto string, key []byte, suites ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=tester 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n", ip, ip)
	fmt.Fprintf(&b, "m=audio %d %s 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n", port, proto)
	for i, s := range suites {
		fmt.Fprintf(&b, "a=crypto:%d %s inline:%s\r\n", i+1, s, base64.StdEncoding.EncodeToString(key))
	}
	b.WriteString("a=ptime:20\r\na=sendrecv\r\n")
	return []byte(b.String())
}

// TestSRTPEchoCall: a UAC on the SRTP trunk offers RTP/SAVP with SDES keys and talks SRTP
// (pion/srtp, not the gateway's own code) to the echo agent; what comes back must
// authenticate under the key the gateway answered with and carry the tone we sent.
func TestSRTPEchoCall(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t.Parallel()
	sipPort := harness.FreePortPair(t)
	rtpMin, rtpMax := harness.FreeUDPPortRange(t, 20)
	gw := harness.StartGateway(t, srtpGatewayConfig(sipPort, rtpMin, rtpMax))

	tests := []struct {
		name  string
		ip    string // our address: picks the trunk
		proto string
		suite string
	}{
		{"required trunk, SAVP 80", "127.0.0.3", "RTP/SAVP", "AES_CM_128_HMAC_SHA1_80"},
		{"optional trunk, SAVP 32", "127.0.0.4", "RTP/SAVP", "AES_CM_128_HMAC_SHA1_32"},
		{"optional trunk, AVP with crypto", "127.0.0.4", "RTP/AVP", "AES_CM_128_HMAC_SHA1_80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sipPeer := harness.NewRawSIP(t, tt.ip, gw.SIPAddr)
			rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(tt.ip)})
			if err != nil {
				t.Fatal(err)
			}
			defer rtpConn.Close()
			ourKey := make([]byte, rtp.SRTPKeyLen)
			rand.Read(ourKey)

			d := harness.NewDialog(sipPeer.Addr(), gw.SIPAddr, "echo")
			offer := srtpOffer(tt.ip, rtpConn.LocalAddr().(*net.UDPAddr).Port, tt.proto, ourKey, tt.suite)
			sipPeer.Send(t, d.Request("INVITE", nil, offer))
			res, err := sipPeer.Await(t, 10*time.Second, true, harness.IsFinal("INVITE"))
			if err != nil || res.Code != 200 {
				t.Fatalf("INVITE answered %v (%v)", res, err)
			}
			sipPeer.Send(t, d.AckFor(res))
			defer func() {
				sipPeer.Send(t, d.Request("BYE", nil, nil))
				_, _ = sipPeer.Await(t, 5*time.Second, true, harness.IsFinal("BYE"))
			}()

			answer, err := media.ParseDescription(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if answer.Proto != tt.proto || len(answer.Crypto) != 1 || answer.Crypto[0].Tag != 1 || answer.Crypto[0].Suite.String() != tt.suite {
				t.Fatalf("answer is not %s with our tag and suite:\n%s", tt.proto, res.Body)
			}
			gwKey := answer.Crypto[0].Key
			if string(gwKey[:]) == string(ourKey) {
				t.Fatal("gateway answered with our key")
			}
			gwRTP, err := harness.SDPAudioAddr(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			profile := srtp.ProtectionProfileAes128CmHmacSha1_80
			if strings.HasSuffix(tt.suite, "_32") {
				profile = srtp.ProtectionProfileAes128CmHmacSha1_32
			}
			enc, err := srtp.CreateContext(ourKey[:16], ourKey[16:], profile)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := srtp.CreateContext(gwKey[:16], gwKey[16:], profile, srtp.SRTPReplayProtection(64))
			if err != nil {
				t.Fatal(err)
			}

			stop := make(chan struct{})
			heard, failures := receiveSRTP(t, rtpConn, dec, stop)
			sendTone(t, rtpConn, netip.MustParseAddrPort(gwRTP), enc, 100)
			time.Sleep(200 * time.Millisecond) // the echo's tail
			close(stop)
			pcm := <-heard
			if n := <-failures; n != 0 {
				t.Errorf("%d packets from the gateway did not decrypt", n)
			}
			if len(pcm) < 8000 {
				t.Fatalf("heard %d samples of decrypted echo, want at least 1 s", len(pcm))
			}
			// What we hear is the echo of the tone, a round trip late, and silence around it.
			if f := media.DominantFrequency(pcm[len(pcm)/4:len(pcm)/4+4000], 300, 3400, 5); f < 990 || f > 1010 {
				t.Fatalf("echo's dominant frequency %.0f Hz, want 1000 Hz", f)
			}
		})
	}

	refusals := []struct {
		name, ip, proto, warning string
	}{
		{"required trunk, plain offer", "127.0.0.3", "RTP/AVP", "srtp is required"},
		{"no trunk, SRTP-only offer", "127.0.0.1", "RTP/SAVP", "srtp is off"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			sipPeer := harness.NewRawSIP(t, tt.ip, gw.SIPAddr)
			key := make([]byte, rtp.SRTPKeyLen)
			rand.Read(key)
			var offer []byte
			if tt.proto == "RTP/AVP" {
				offer = harness.OfferSDP(tt.ip, 40000)
			} else {
				offer = srtpOffer(tt.ip, 40000, tt.proto, key, "AES_CM_128_HMAC_SHA1_80")
			}
			d := harness.NewDialog(sipPeer.Addr(), gw.SIPAddr, "echo")
			sipPeer.Send(t, d.Request("INVITE", nil, offer))
			res, err := sipPeer.Await(t, 10*time.Second, true, harness.IsFinal("INVITE"))
			if err != nil {
				t.Fatal(err)
			}
			sipPeer.Send(t, d.AckFor(res)) // without it the gateway retransmits for 32 s
			if res.Code != 488 || !strings.Contains(res.Header("Warning"), tt.warning) {
				t.Fatalf("INVITE answered %d, Warning %q; want 488 with %q", res.Code, res.Header("Warning"), tt.warning)
			}
		})
	}
}

// sendTone sends n packets of a 1 kHz PCMU tone as SRTP, paced at 20 ms.
func sendTone(t *testing.T, conn *net.UDPConn, to netip.AddrPort, enc *srtp.Context, n int) {
	t.Helper()
	tone := media.Tone(1000, time.Duration(n)*20*time.Millisecond, 0.3)
	payload := make([]byte, 160)
	p := pionrtp.Packet{Header: pionrtp.Header{Version: 2, PayloadType: 0, SSRC: 0x5157, SequenceNumber: 100}}
	next := time.Now()
	for i := range n {
		media.Encode(media.PCMU, payload, tone[i*160:(i+1)*160])
		p.Payload = payload
		plain, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out, err := enc.EncryptRTP(nil, plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteToUDPAddrPort(out, to); err != nil {
			t.Fatal(err)
		}
		p.SequenceNumber++
		p.Timestamp += 160
		next = next.Add(20 * time.Millisecond)
		time.Sleep(time.Until(next))
	}
}

// receiveSRTP decrypts what arrives on conn until stop is closed, and returns the decoded
// audio and how many packets failed to decrypt.
func receiveSRTP(t *testing.T, conn *net.UDPConn, dec *srtp.Context, stop <-chan struct{}) (<-chan []int16, <-chan int) {
	heard, failed := make(chan []int16, 1), make(chan int, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		var pcm []int16
		failures := 0
		buf := make([]byte, 2048)
		frame := make([]int16, 1500)
		for {
			select {
			case <-stop:
				heard <- pcm
				failed <- failures
				return
			default:
			}
			_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, err := conn.Read(buf)
			if err != nil {
				continue
			}
			plain, err := dec.DecryptRTP(nil, buf[:n], nil)
			if err != nil {
				failures++
				continue
			}
			var p pionrtp.Packet
			if p.Unmarshal(plain) != nil || p.PayloadType != 0 {
				continue
			}
			k := media.Decode(media.PCMU, frame, p.Payload)
			pcm = append(pcm, frame[:k]...)
		}
	})
	t.Cleanup(wg.Wait)
	return heard, failed
}
