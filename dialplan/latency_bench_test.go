package dialplan

// Agent bridge latency: what the gateway adds between the caller's RTP and a
// Twilio Media Streams bot, measured end to end on loopback with real
// sockets on both sides.
//
//   - The gateway is the real thing: sip.Server + Executor + media.Leg and the
//     agent/twilio WebSocket agent.
//   - The caller is a real SIP endpoint whose media is a raw UDP socket, so
//     every RTP packet's send and arrival time is taken right at the syscall.
//   - The bot is an in-process WebSocket server (httptest on 127.0.0.1) that
//     timestamps each message as its Read returns.
//
// All clocks are the same process's monotonic clock, so one-way times need
// no synchronisation. Each audio frame carries its own id in its payload
// (µ-law bytes survive the gateway's µ-law → PCM → µ-law round trip
// unchanged), so every sample is matched exactly, not by order.
//
// b.N is the number of measurement rounds; each round collects a fixed
// number of samples in real time (the media clock cannot be sped up), and
// the percentiles are over all rounds. ns/op is meaningless here and is not
// reported. `-benchtime 3x` gives 540 inbound (and 540 floor), 390 outbound
// and 150 + 60 barge-in samples in 45–50 s. These are measurements, never
// assertions: only functional failures (a lost or corrupted frame, tone
// after a clear) fail.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	pionrtp "github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/agent"
	"github.com/switchboard-voice/switchboard/agent/twilio"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/sip"
)

// Samples per round (b.N rounds).
const (
	latInboundPerRound   = 180 // per path; one packet every 5–15 ms, alternating: ~3.6 s
	latOutboundPerRound  = 130 // one isolated frame at a random phase: ~3 s
	latBargeInPerRound   = 50  // one queue-tone-then-clear cycle: ~80 ms each
	latBargeIn30PerRound = 20  // the same with 30 ms packets: ~135 ms each
	latWait              = 2 * time.Second
)

// BenchmarkAgentLatencyInbound measures caller RTP → bot: from the moment
// the caller's socket sends a packet to the moment the bot's WebSocket Read
// returns the `media` message carrying that frame (p50/p90/p99/max-µs).
//
// Interleaved with it, the same caller sends packets through a "floor"
// path: a bare relay goroutine that reads the UDP packet, renders the same
// `media` JSON and writes it to its own WebSocket connection to the same
// bot (floor-*-µs). The floor has the same socket hops and wake-ups as the
// gateway and none of its logic (nor its hand-off from the RTP reader to the
// WebSocket writer goroutine), so gateway minus floor is what the gateway
// itself adds; on a loaded machine both tails grow together. Packets alternate between the two paths with gaps drawn from
// 5–15 ms, so each path sees its real rate (one packet per 20 ms on
// average) at every phase of the gateway's own 20 ms pacer.
func BenchmarkAgentLatencyInbound(b *testing.B) {
	r := newLatRig(b, media.FrameDuration)
	floorAddr, floorFrames := startFloorRelay(b, r.bot)
	floor := newRawStream(r.caller.conn, floorAddr, 0)
	// Warm up: the agent's listener is attached only after the bot has
	// connected, and frames before that are not forwarded.
	r.warmUpInbound()
	r.resetWire()

	var samples, floorSamples []time.Duration
	sent := make([]time.Time, 2*latInboundPerRound)
	var base uint32 = 1 << 16 // ids below are warm-up frames
	const n = 2 * latInboundPerRound
	for b.Loop() {
		if base+n > 1<<18 {
			b.Fatal("frame ids exhausted: use fewer rounds")
		}
		for i := range n {
			time.Sleep(5*time.Millisecond + rand.N(10*time.Millisecond))
			s := r.caller
			if i%2 == 1 {
				s = floor
			}
			at, err := s.send(markedFrame(base + uint32(i)))
			if err != nil {
				b.Fatal(err)
			}
			sent[i] = at
		}
		got := make([]bool, n)
		take := func(m botFrame, wantOdd int) bool {
			id, ok := frameID(m.payload)
			if !ok || id < base || id >= base+n || int(id-base)%2 != wantOdd {
				return false // warm-up or another round's straggler
			}
			if !slices.Equal(m.payload, markedFrame(id)) {
				b.Fatalf("frame %d reached the bot altered", id)
			}
			i := id - base
			if got[i] {
				return false
			}
			got[i] = true
			if wantOdd == 1 {
				floorSamples = append(floorSamples, m.at.Sub(sent[i]))
			} else {
				samples = append(samples, m.at.Sub(sent[i]))
			}
			return true
		}
		for pending := n; pending > 0; {
			select {
			case m := <-r.botMedia:
				if take(m, 0) {
					pending--
				}
			case m := <-floorFrames:
				if take(m, 1) {
					pending--
				}
			case <-time.After(latWait):
				b.Fatalf("%d of %d frames never reached the bot", pending, n)
			}
		}
		base += n
	}
	reportLatency(b, samples, time.Microsecond, "µs")
	reportPercentiles(b, floorSamples, time.Microsecond, "floor-", "µs")
	r.reportWire()
}

// BenchmarkAgentLatencyOutbound measures bot → caller RTP: from the bot's
// WebSocket Write of one 20 ms `media` chunk to the arrival at the caller of
// the RTP packet carrying it. Each chunk is sent alone, into an empty
// playout queue, at a random phase of the gateway's 20 ms pacer: this is
// the first frame of a reply, which waits for the next pacer tick (0–20 ms
// by design). The caller sends 50 packets/s of silence meanwhile, as a
// real caller does.
func BenchmarkAgentLatencyOutbound(b *testing.B) {
	r := newLatRig(b, media.FrameDuration)
	r.startCallerSilence()
	r.playFrame(0) // warm up: the bot's audio reaches the caller
	r.resetWire()

	var samples []time.Duration
	id := uint32(1)
	for b.Loop() {
		for range latOutboundPerRound {
			time.Sleep(rand.N(20 * time.Millisecond))
			samples = append(samples, r.playFrame(id))
			id++
		}
	}
	reportLatency(b, samples, time.Millisecond, "ms")
	r.reportWire()
}

// BenchmarkBargeIn measures `clear` → silence on the wire: the bot queues
// 3 s of tone, waits until the caller hears it, then (at a random phase of
// the pacer) sends `clear`; the sample is the time from the bot's Write of
// `clear` to the arrival at the caller of the first packet that is silence.
// tone-frames-after-clear counts tone packets that arrived after the clear
// was sent and before the silence (at most one by design: the tick that was
// already due).
//
// ptime=30ms is a caller asking for 30 ms packets, which the gateway
// accepts: a packet is then a frame and a half, and the half frame the
// pacer has already taken from the queue is not dropped by clear.
func BenchmarkBargeIn(b *testing.B) {
	b.Run("ptime=20ms", func(b *testing.B) { benchBargeIn(b, 20*time.Millisecond, latBargeInPerRound) })
	b.Run("ptime=30ms", func(b *testing.B) { benchBargeIn(b, 30*time.Millisecond, latBargeIn30PerRound) })
}

func benchBargeIn(b *testing.B, ptime time.Duration, perRound int) {
	r := newLatRig(b, ptime)
	r.startCallerSilence()

	pcm := media.Tone(1000, 3*time.Second, 0.5)
	tone := make([]byte, len(pcm))
	media.Encode(media.PCMU, tone, pcm)
	toneMsg := botMediaMessage(tone)
	clearMsg := []byte(`{"event":"clear"}`)
	r.nextCaller() // media is flowing
	r.resetWire()

	var samples []time.Duration
	late, maxLate := 0, 0
	for b.Loop() {
		for range perRound {
			r.drainCaller()
			r.botSend(toneMsg)
			r.waitCaller("tone", func(p rtpArrival) bool { return !isSilence(p.payload) })
			// Clear at a random phase over two packets: with ptime 30 every
			// other packet leaves half a frame in the pacer.
			time.Sleep(ptime + rand.N(2*ptime))
			t0 := r.botSend(clearMsg)
			n := 0
			var silentAt time.Time
			r.waitCaller("silence after clear", func(p rtpArrival) bool {
				if !p.at.After(t0) {
					return false
				}
				if isSilence(p.payload) {
					silentAt = p.at
					return true
				}
				n++
				return false
			})
			samples = append(samples, silentAt.Sub(t0))
			late += n
			maxLate = max(maxLate, n)
			// The queue is empty now: the next packet must be silent too.
			if p := r.nextCaller(); !isSilence(p.payload) {
				b.Fatal("tone on the wire again after clear")
			}
		}
	}
	reportLatency(b, samples, time.Millisecond, "ms")
	b.ReportMetric(float64(maxLate), "tone-frames-after-clear-max")
	b.ReportMetric(float64(late)/float64(len(samples)), "tone-frames-after-clear-mean")
	r.reportWire()
}

// resetWire starts the wire statistics afresh (after warm-up).
func (r *latRig) resetWire() {
	r.wireGap.Store(0)
	r.pacerSkips.Store(0)
}

// reportWire reports the wire statistics: a long gap or skipped pacer slots
// mean the gateway's process did not get the CPU on time, which explains a
// latency tail better than anything on the measured path.
func (r *latRig) reportWire() {
	r.b.ReportMetric(float64(r.wireGap.Load())/float64(time.Millisecond), "wire-gap-max-ms")
	r.b.ReportMetric(float64(r.pacerSkips.Load()), "pacer-skips")
}

// reportLatency reports nearest-rank percentiles of samples in unit (named
// name) and the sample count, and hides ns/op: one op is a round of
// real-time media.
func reportLatency(b *testing.B, samples []time.Duration, unit time.Duration, name string) {
	b.Helper()
	b.ReportMetric(0, "ns/op")
	reportPercentiles(b, samples, unit, "", name)
	b.ReportMetric(float64(len(samples)), "samples")
}

func reportPercentiles(b *testing.B, samples []time.Duration, unit time.Duration, prefix, name string) {
	b.Helper()
	if len(samples) == 0 {
		b.Fatal("no samples")
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		i := max(int(math.Ceil(q*float64(len(samples))))-1, 0)
		return float64(samples[i]) / float64(unit)
	}
	b.ReportMetric(at(0.50), prefix+"p50-"+name)
	b.ReportMetric(at(0.90), prefix+"p90-"+name)
	b.ReportMetric(at(0.99), prefix+"p99-"+name)
	b.ReportMetric(float64(samples[len(samples)-1])/float64(unit), prefix+"max-"+name)
}

// Frames carrying an id: a 4-byte magic, the id in 3 bytes of 6 bits, then a
// fixed pattern. No byte is 0x7F (µ-law negative zero, which the gateway's
// µ-law → PCM → µ-law round trip turns into 0xFF).
var frameMagic = [4]byte{0xA5, 0x5A, 0xC3, 0x3C}

func markedFrame(id uint32) []byte {
	f := make([]byte, media.FrameSamples)
	copy(f, frameMagic[:])
	f[4], f[5], f[6] = 0x80|byte(id>>12&0x3F), 0x80|byte(id>>6&0x3F), 0x80|byte(id&0x3F)
	for i := 7; i < len(f); i++ {
		f[i] = 0x10 + byte(i%64)
	}
	return f
}

func frameID(p []byte) (uint32, bool) {
	if len(p) != media.FrameSamples || [4]byte(p[:4]) != frameMagic {
		return 0, false
	}
	return uint32(p[4]&0x3F)<<12 | uint32(p[5]&0x3F)<<6 | uint32(p[6]&0x3F), true
}

// isSilence reports whether a µ-law payload is all zero samples.
func isSilence(p []byte) bool {
	for _, c := range p {
		if c != 0xFF && c != 0x7F {
			return false
		}
	}
	return true
}

func botMediaMessage(ulaw []byte) []byte {
	return []byte(`{"event":"media","media":{"payload":"` + base64.StdEncoding.EncodeToString(ulaw) + `"}}`)
}

// latRig is one call: caller (raw RTP) → gateway → twilio agent → bot.
type latRig struct {
	b        *testing.B
	bot      *latBot
	ws       *websocket.Conn // the bot's side of the agent's connection
	botMedia <-chan botFrame // caller audio the bot received from the gateway
	caller   *rawStream
	heard    chan rtpArrival // RTP the caller received
	samples  uint32          // per packet, from the negotiated ptime

	// What the caller's reader saw of the gateway's 20 ms packet clock:
	// the longest gap between two arrivals (ns), and the pacer slots the
	// gateway skipped (RTP timestamp jumps of more than one frame between
	// consecutive sequence numbers: its pacer woke a whole frame late).
	wireGap    atomic.Int64
	pacerSkips atomic.Int64
}

type rtpArrival struct {
	at      time.Time
	payload []byte
}

// newLatRig places a PCMU call asking for ptime.
func newLatRig(b *testing.B, ptime time.Duration) *latRig {
	b.Helper()
	bot := startLatBot(b)
	ag, err := twilio.New(twilio.Config{URL: bot.url, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	gw := startGateway(b, map[string]agent.Agent{"bot": ag}, "bot", 0)
	c := newCaller(b)

	// The caller's media: an RTP/RTCP socket pair it reads and writes itself.
	rtpConn, rtcpConn, port, err := c.pool.Allocate()
	if err != nil {
		b.Fatal(err)
	}
	r := &latRig{b: b, bot: bot, heard: make(chan rtpArrival, 4096), samples: uint32(ptime / (time.Second / media.SampleRate))}
	readerDone := make(chan struct{})
	b.Cleanup(func() {
		rtpConn.Close()
		rtcpConn.Close()
		<-readerDone
		c.pool.Release(port)
	})
	go r.readCaller(rtpConn, readerDone)

	cfg := media.AnswerConfig{Codecs: []string{"PCMU"}, PreferOurs: true, LocalAddr: loopback, LocalPort: port, SessionID: 1, SessionVersion: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offer := strings.Replace(string(media.BuildOffer(cfg, 101)), "a=ptime:20", fmt.Sprintf("a=ptime:%d", ptime.Milliseconds()), 1)
	call, err := c.srv.Dial(ctx, "sip:agent@"+gw.addr.String(), []byte(offer), sip.DialOptions{FromUser: "+15550001"})
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	b.Cleanup(func() { _ = call.Hangup(context.Background(), sip.CauseNormal.Reason()) })
	desc, err := media.ParseDescription(call.Answer)
	if err != nil {
		b.Fatalf("answer SDP: %v", err)
	}
	neg, err := media.ApplyAnswer(desc, cfg)
	if err != nil {
		b.Fatalf("answer SDP: %v", err)
	}
	if neg.Codec.Name != "PCMU" || neg.PTime != ptime {
		b.Fatalf("negotiated %s ptime %v, want PCMU ptime %v", neg.Codec.Name, neg.PTime, ptime)
	}
	r.caller = newRawStream(rtpConn, neg.Remote, neg.Codec.PayloadType)

	select {
	case bc := <-bot.conns:
		r.ws, r.botMedia = bc.ws, bc.media
	case <-time.After(5 * time.Second):
		b.Fatal("the agent never connected to the bot")
	}
	return r
}

// readCaller timestamps every RTP packet the caller receives.
func (r *latRig) readCaller(conn *net.UDPConn, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 2048)
	var (
		p      pionrtp.Packet
		last   time.Time
		seq    uint16
		ts     uint32
		primed bool
	)
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		at := time.Now()
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		if primed {
			if gap := int64(at.Sub(last)); gap > r.wireGap.Load() {
				r.wireGap.Store(gap)
			}
			if p.SequenceNumber == seq+1 && p.Timestamp-ts > r.samples {
				r.pacerSkips.Add(int64((p.Timestamp-ts)/r.samples - 1))
			}
		}
		last, seq, ts, primed = at, p.SequenceNumber, p.Timestamp, true
		select {
		case r.heard <- rtpArrival{at: at, payload: slices.Clone(p.Payload)}:
		default: // nobody is listening (inbound benchmark)
		}
	}
}

// warmUpInbound sends frames until the bot hears one.
func (r *latRig) warmUpInbound() {
	deadline := time.Now().Add(5 * time.Second)
	for id := uint32(0); time.Now().Before(deadline); id++ {
		if _, err := r.caller.send(markedFrame(id)); err != nil {
			r.b.Fatal(err)
		}
		select {
		case <-r.botMedia:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	r.b.Fatal("no caller audio reached the bot")
}

// startCallerSilence makes the caller send silence, a packet per ptime,
// until the benchmark ends.
func (r *latRig) startCallerSilence() {
	silence := make([]byte, r.samples)
	for i := range silence {
		silence[i] = 0xFF
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Duration(r.samples) * time.Second / media.SampleRate)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_, _ = r.caller.send(silence)
			}
		}
	})
	r.b.Cleanup(func() { close(stop); wg.Wait() })
}

// playFrame sends one marked chunk from the bot and returns the time until
// the caller received it.
func (r *latRig) playFrame(id uint32) time.Duration {
	want := markedFrame(id)
	msg := botMediaMessage(want)
	r.drainCaller()
	t0 := r.botSend(msg)
	p := r.waitCaller(fmt.Sprintf("frame %d", id), func(p rtpArrival) bool {
		got, ok := frameID(p.payload)
		return ok && got == id
	})
	if !slices.Equal(p.payload, want) {
		r.b.Fatalf("frame %d reached the caller altered", id)
	}
	return p.at.Sub(t0)
}

// botSend writes one message from the bot and returns when the write began.
func (r *latRig) botSend(msg []byte) time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := r.ws.Write(ctx, websocket.MessageText, msg); err != nil {
		r.b.Fatalf("bot write: %v", err)
	}
	return t0
}

func (r *latRig) drainCaller() {
	for {
		select {
		case <-r.heard:
		default:
			return
		}
	}
}

func (r *latRig) nextCaller() rtpArrival {
	select {
	case p := <-r.heard:
		return p
	case <-time.After(latWait):
		r.b.Fatal("the caller stopped receiving RTP")
		return rtpArrival{}
	}
}

// waitCaller returns the first packet the caller receives that satisfies ok.
func (r *latRig) waitCaller(what string, ok func(rtpArrival) bool) rtpArrival {
	deadline := time.After(latWait)
	for {
		select {
		case p := <-r.heard:
			if ok(p) {
				return p
			}
		case <-deadline:
			r.b.Fatalf("caller: timed out waiting for %s", what)
		}
	}
}

// rawStream is the caller's outgoing RTP stream, written straight to the
// socket. One goroutine sends at a time.
type rawStream struct {
	conn *net.UDPConn
	dst  netip.AddrPort
	pkt  pionrtp.Packet
	buf  [1500]byte
}

func newRawStream(conn *net.UDPConn, dst netip.AddrPort, pt uint8) *rawStream {
	return &rawStream{conn: conn, dst: dst, pkt: pionrtp.Packet{Header: pionrtp.Header{
		Version: 2, PayloadType: pt, SSRC: rand.Uint32(), SequenceNumber: uint16(rand.Uint32()),
		Timestamp: rand.Uint32(), Marker: true,
	}}}
}

// send sends one packet and returns the time just before the syscall.
func (s *rawStream) send(payload []byte) (time.Time, error) {
	s.pkt.Payload = payload
	n, err := s.pkt.MarshalTo(s.buf[:])
	s.pkt.Payload = nil
	if err != nil {
		return time.Time{}, err
	}
	s.pkt.SequenceNumber++
	s.pkt.Timestamp += uint32(len(payload))
	s.pkt.Marker = false
	at := time.Now()
	_, err = s.conn.WriteToUDPAddrPort(s.buf[:n], s.dst)
	return at, err
}

// latBot is a Twilio Media Streams bot on loopback that timestamps every
// `media` message it receives.
type latBot struct {
	url   string
	conns chan botConn
}

// botConn is the bot's side of one connection and the `media` frames
// received on it.
type botConn struct {
	ws    *websocket.Conn
	media chan botFrame
}

type botFrame struct {
	at      time.Time
	payload []byte
}

func startLatBot(b *testing.B) *latBot {
	b.Helper()
	bot := &latBot{conns: make(chan botConn, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		wg.Add(1)
		defer wg.Done()
		conn, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		conn.SetReadLimit(1 << 20)
		bc := botConn{ws: conn, media: make(chan botFrame, 4096)}
		select {
		case bot.conns <- bc:
		default:
			conn.Close(websocket.StatusTryAgainLater, "too many connections")
			return
		}
		var m struct {
			Event string `json:"event"`
			Media struct {
				Payload string `json:"payload"`
			} `json:"media"`
		}
		for {
			_, data, err := conn.Read(ctx)
			at := time.Now()
			if err != nil {
				return // the gateway closed (after `stop`) or the benchmark ended
			}
			m.Event, m.Media.Payload = "", ""
			if json.Unmarshal(data, &m) != nil || m.Event != "media" {
				continue
			}
			payload, err := base64.StdEncoding.DecodeString(m.Media.Payload)
			if err != nil {
				continue
			}
			select {
			case bc.media <- botFrame{at: at, payload: payload}:
			default: // nobody is listening (outbound benchmarks)
			}
		}
	}))
	bot.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		srv.Close()
	})
	return bot
}

// startFloorRelay starts the inbound floor path: a UDP socket whose packets
// a single goroutine turns into `media` messages (the same JSON the gateway
// sends) on its own WebSocket connection to bot. It returns the socket's
// address and the frames the bot receives on that connection.
func startFloorRelay(b *testing.B, bot *latBot) (netip.AddrPort, <-chan botFrame) {
	b.Helper()
	in, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, bot.url, nil)
	if err != nil {
		in.Close()
		b.Fatal(err)
	}
	var bc botConn
	select {
	case bc = <-bot.conns:
	case <-time.After(5 * time.Second):
		b.Fatal("floor relay: the bot saw no connection")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		out := make([]byte, 0, 1024)
		var p pionrtp.Packet
		for {
			n, _, err := in.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if p.Unmarshal(buf[:n]) != nil {
				continue
			}
			out = append(out[:0], `{"event":"media","sequenceNumber":"1","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"`...)
			out = base64.StdEncoding.AppendEncode(out, p.Payload)
			out = append(out, `"},"streamSid":"MZ00000000000000000000000000000000"}`...)
			if ws.Write(context.Background(), websocket.MessageText, out) != nil {
				return
			}
		}
	}()
	b.Cleanup(func() {
		in.Close()
		<-done
		ws.Close(websocket.StatusNormalClosure, "")
	})
	return netip.MustParseAddrPort(in.LocalAddr().String()), bc.media
}
