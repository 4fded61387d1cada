package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/rtp"
	"github.com/switchboard-voice/switchboard/sip"
)

func callCommand() *cli.Command {
	return &cli.Command{
		Name:      "call",
		Usage:     "place a test call: play audio, send DTMF, record what comes back",
		ArgsUsage: "SIP-URI (e.g. sip:echo@127.0.0.1:5060)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "wav", Usage: "WAV `FILE` to play (any rate, resampled to 8 kHz mono)"},
			&cli.Float64Flag{Name: "tone", Usage: "play a sine tone of `HZ` instead of a file"},
			&cli.StringFlag{Name: "record", Usage: "record what the far end sends to WAV `FILE`"},
			&cli.StringFlag{Name: "dtmf", Usage: "digits to send as RFC 4733 events, `DIGIT@OFFSET,...` (e.g. 1@2s,#@3.5s)"},
			&cli.BoolFlag{Name: "inband", Usage: "offer no telephone-event, so digits go as in-band tones"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "hang up after this long"},
			&cli.StringFlag{Name: "from", Value: "switchboard-call", Usage: "caller `USER` part"},
			&cli.StringFlag{Name: "codec", Value: "PCMU", Usage: "codec to offer first: PCMU or PCMA"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:0", Usage: "local SIP `IP:PORT` (port 0: any free port)"},
			&cli.StringFlag{Name: "rtp-ports", Value: "40000-40999", Usage: "local RTP port `RANGE`"},
			&cli.BoolFlag{Name: "json", Usage: "print events as JSON lines"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("call: give exactly one SIP URI")
			}
			opts, err := parseCallFlags(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
			defer stop()
			events := &eventPrinter{w: c.App.Writer, json: c.Bool("json"), start: time.Now()}
			return placeCall(ctx, c.Args().First(), opts, events)
		},
	}
}

type callOptions struct {
	inband   bool // offer no telephone-event
	audio    []int16
	record   string
	digits   []timedDigit
	duration time.Duration
	from     string
	codecs   []string
	listen   netip.AddrPort
	rtpMin   int
	rtpMax   int
}

type timedDigit struct {
	digit rune
	at    time.Duration
}

func parseCallFlags(c *cli.Context) (callOptions, error) {
	o := callOptions{record: c.String("record"), duration: c.Duration("duration"), from: c.String("from")}
	switch {
	case c.String("wav") != "":
		samples, err := media.ReadWAVFile(c.String("wav"))
		if err != nil {
			return o, err
		}
		o.audio = samples
	case c.Float64("tone") > 0:
		o.audio = media.Tone(c.Float64("tone"), o.duration, 0.5)
	}
	o.inband = c.Bool("inband")
	switch strings.ToUpper(c.String("codec")) {
	case "PCMU":
		o.codecs = []string{"PCMU", "PCMA"}
	case "PCMA":
		o.codecs = []string{"PCMA", "PCMU"}
	default:
		return o, fmt.Errorf("call: --codec %q is not PCMU or PCMA", c.String("codec"))
	}
	if d := c.String("dtmf"); d != "" {
		for _, item := range strings.Split(d, ",") {
			digit, offset, ok := strings.Cut(strings.TrimSpace(item), "@")
			at, err := time.ParseDuration(offset)
			if !ok || err != nil || len([]rune(digit)) != 1 {
				return o, fmt.Errorf("call: --dtmf item %q is not DIGIT@OFFSET (e.g. 5@2s)", item)
			}
			r := []rune(digit)[0]
			if _, ok := rtp.DigitCode(r); !ok {
				return o, fmt.Errorf("call: %q is not a DTMF digit", digit)
			}
			o.digits = append(o.digits, timedDigit{r, at})
		}
	}
	listen, err := netip.ParseAddrPort(c.String("listen"))
	if err != nil {
		return o, fmt.Errorf("call: --listen: %w", err)
	}
	if listen.Port() == 0 {
		port, err := freeSIPPort(listen.Addr())
		if err != nil {
			return o, err
		}
		listen = netip.AddrPortFrom(listen.Addr(), uint16(port))
	}
	o.listen = listen
	if _, err := fmt.Sscanf(c.String("rtp-ports"), "%d-%d", &o.rtpMin, &o.rtpMax); err != nil {
		return o, fmt.Errorf("call: --rtp-ports %q is not MIN-MAX", c.String("rtp-ports"))
	}
	return o, nil
}

// freeSIPPort finds a port free for both UDP and TCP.
func freeSIPPort(ip netip.Addr) (int, error) {
	for range 20 {
		u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
		u.Close()
		if err == nil {
			t.Close()
			return port, nil
		}
	}
	return 0, errors.New("call: no free local SIP port")
}

// placeCall runs one test call from dial to hang-up.
func placeCall(ctx context.Context, target string, o callOptions, ev *eventPrinter) error {
	log := newLogger(io.Discard, "error", "text")
	pool, err := rtp.NewPortPool(o.listen.Addr(), o.rtpMin, o.rtpMax, 0)
	if err != nil {
		return err
	}
	srv, err := sip.NewServer(sip.Config{Listen: o.listen, Logger: log},
		func(ctx context.Context, call *sip.InboundCall) { _ = call.Reject(486, "") })
	if err != nil {
		return err
	}
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	ready := make(chan struct{})
	go func() { served <- srv.Serve(srvCtx, func() { close(ready) }) }()
	defer func() { stopSrv(); <-served }()
	select {
	case <-ready:
	case err := <-served:
		return err
	}

	leg, err := media.OpenLeg(media.LegConfig{Pool: pool, Latch: true, InactivityTimeout: 30 * time.Second, Logger: log}, []uint8{0, 8, 101})
	if err != nil {
		return err
	}
	defer leg.Close()
	offerCfg := media.AnswerConfig{Codecs: o.codecs, PreferOurs: true, LocalAddr: o.listen.Addr(), LocalPort: leg.LocalPort(), SessionID: uint64(time.Now().UnixNano()) >> 2, SessionVersion: 1}
	ev.print("dialing", map[string]any{"target": target})
	var eventPT uint8 = 101
	if o.inband {
		eventPT = 0 // BuildOffer leaves telephone-event out
	}
	call, err := srv.Dial(ctx, target, media.BuildOffer(offerCfg, eventPT), sip.DialOptions{
		FromUser:   o.from,
		OnProgress: func(code int, reason string) { ev.print("progress", map[string]any{"code": code, "reason": reason}) },
	})
	if err != nil {
		ev.print("failed", map[string]any{"error": err.Error()})
		return err
	}
	desc, err := media.ParseDescription(call.Answer)
	if err != nil {
		_ = call.Hangup(context.WithoutCancel(ctx), sip.CauseError.Reason())
		return fmt.Errorf("call: answer SDP: %w", err)
	}
	neg, err := media.ApplyAnswer(desc, offerCfg)
	if err != nil {
		_ = call.Hangup(context.WithoutCancel(ctx), sip.CauseError.Reason())
		return fmt.Errorf("call: answer SDP: %w", err)
	}
	answered := time.Now()
	ev.print("answered", map[string]any{"call_id": call.CallID, "codec": neg.Codec.Name, "ptime_ms": neg.PTime.Milliseconds(), "telephone_event": neg.HasTelephoneEvent})

	sink := &callSink{ev: ev}
	if o.record != "" {
		if sink.wav, err = media.CreateWAV(o.record); err != nil {
			_ = call.Hangup(context.WithoutCancel(ctx), sip.CauseError.Reason())
			return err
		}
	}
	mctx, stopMedia := context.WithCancel(ctx)
	defer stopMedia()
	if err := leg.Start(mctx, neg, sink); err != nil {
		return err
	}
	if len(o.audio) > 0 {
		_ = leg.PlayPCM(o.audio)
	}
	for _, d := range o.digits {
		time.AfterFunc(d.at, func() {
			if err := leg.SendDigits(string(d.digit)); err == nil {
				ev.print("dtmf_sent", map[string]any{"digit": string(d.digit)})
			}
		})
	}
	ended := "local_hangup"
	select {
	case <-time.After(o.duration):
		_ = call.Hangup(context.WithoutCancel(ctx), sip.CauseNormal.Reason())
	case <-call.Done():
		ended = "remote_hangup"
	case <-ctx.Done():
		ended = "interrupted"
		_ = call.Hangup(context.WithoutCancel(ctx), sip.CauseNormal.Reason())
	}
	stopMedia()
	leg.Close()
	werr := sink.close()
	st := leg.Stats()
	ev.print("ended", map[string]any{
		"reason": ended, "duration_ms": time.Since(answered).Milliseconds(),
		"rtp_sent": st.RTP.PacketsSent, "rtp_received": st.RTP.PacketsReceived, "rtp_lost": st.RTP.PacketsLost,
		"jitter_ms": st.RTP.JitterMs, "digits_received": sink.digitsReceived(),
	})
	return werr
}

// callSink records the far end's audio and reports its digits.
type callSink struct {
	ev     *eventPrinter
	mu     sync.Mutex
	wav    *media.WAVWriter
	werr   error
	digits strings.Builder
}

func (s *callSink) OnAudio(frame []int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wav != nil && s.werr == nil {
		s.werr = s.wav.Write(frame)
	}
}

func (s *callSink) OnDTMF(d rune, dur time.Duration) {
	s.mu.Lock()
	s.digits.WriteRune(d)
	s.mu.Unlock()
	s.ev.print("dtmf_received", map[string]any{"digit": string(d), "duration_ms": dur.Milliseconds()})
}

func (s *callSink) OnMark(string) {}

func (s *callSink) digitsReceived() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.digits.String()
}

func (s *callSink) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wav == nil {
		return s.werr
	}
	err := s.wav.Close()
	s.wav = nil
	return errors.Join(s.werr, err)
}

// eventPrinter prints the call's events for people (text) or tools (JSON).
type eventPrinter struct {
	mu    sync.Mutex
	w     io.Writer
	json  bool
	start time.Time
}

func (p *eventPrinter) print(event string, fields map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := time.Since(p.start).Seconds()
	if p.json {
		fields["event"] = event
		fields["t"] = at
		b, _ := json.Marshal(fields)
		fmt.Fprintln(p.w, string(b))
		return
	}
	fmt.Fprintf(p.w, "%7.3fs %-14s", at, event)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		fmt.Fprintf(p.w, " %s=%v", k, fields[k])
	}
	fmt.Fprintln(p.w)
}
