package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

// Hard caps of a bench run, whatever the flags say: the tool shares a small
// machine with the gateway it measures, and a typo must not turn a test into
// a flood that never ends.
const (
	benchCapCalls        = 1_000_000
	benchCapConcurrent   = 5000
	benchCapRate         = 2000 // calls per second
	benchCapCallDuration = time.Hour
	benchCapTotal        = 4 * time.Hour
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:      "bench",
		Usage:     "load a gateway on loopback: concurrent calls with 20 ms G.711 both ways; report setup time, loss, latency, CPU and memory",
		ArgsUsage: "GATEWAY-IP:PORT (loopback only)",
		Description: "Places --calls calls at --rate calls/s, at most --concurrent at once, each sending PCMU frames\n" +
			"for --call-duration and checking every frame's echo. With --bot-listen, an in-process echo bot\n" +
			"(Twilio Media Streams) serves ws://ADDR/media and stamps each frame on the way through, so\n" +
			"inbound and outbound delay are measured apart: point the gateway's websocket agent at it.\n" +
			"With --pid the gateway's CPU and RSS are read from /proc; with --admin its /metrics.\n" +
			"scripts/load starts a gateway configured for this and runs the bench against it.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "calls", Value: 100, Usage: fmt.Sprintf("calls to place in all (cap %d)", benchCapCalls)},
			&cli.IntFlag{Name: "concurrent", Value: 100, Usage: fmt.Sprintf("calls up at once, at most (cap %d)", benchCapConcurrent)},
			&cli.Float64Flag{Name: "rate", Value: 50, Usage: fmt.Sprintf("calls placed per second (cap %d)", benchCapRate)},
			&cli.DurationFlag{Name: "call-duration", Value: 10 * time.Second, Usage: "media sent per call before hanging up"},
			&cli.DurationFlag{Name: "max-time", Value: 10 * time.Minute, Usage: "stop placing calls after this long (calls up then run to their end)"},
			&cli.DurationFlag{Name: "drain", Value: 300 * time.Millisecond, Usage: "wait this long after a call's last frame for echoes in flight"},
			&cli.DurationFlag{Name: "setup-timeout", Value: 10 * time.Second, Usage: "an INVITE unanswered this long is a failure"},
			&cli.StringFlag{Name: "to", Value: "bench", Usage: "called user part"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:0", Usage: "the bench's own SIP `IP:PORT` (UDP)"},
			&cli.StringFlag{Name: "bot-listen", Usage: "serve the in-process echo bot on `ADDR` (ws://ADDR/media)"},
			&cli.IntFlag{Name: "pid", Usage: "gateway `PID`: CPU and RSS from /proc"},
			&cli.StringFlag{Name: "admin", Usage: "gateway admin `ADDR`: goroutines and active calls from /metrics"},
			&cli.DurationFlag{Name: "idle", Value: 3 * time.Second, Usage: "measure the idle gateway this long first"},
			&cli.DurationFlag{Name: "sample", Value: time.Second, Usage: "CPU/RSS sampling interval"},
			&cli.DurationFlag{Name: "report-every", Usage: "print progress (CPU, RSS, goroutines) this often; 0: only at the end"},
			&cli.BoolFlag{Name: "json", Usage: "also print the final report as one JSON object"},
			&cli.StringFlag{Name: "log-level", Value: "error", Usage: "the bench's own SIP stack log level"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("bench: give the gateway's IP:PORT")
			}
			o, err := parseBenchFlags(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := newLogger(c.App.ErrWriter, c.String("log-level"), "text")
			rep, err := runBench(ctx, o, c.App.Writer, log)
			if err != nil {
				return err
			}
			rep.print(c.App.Writer)
			if c.Bool("json") {
				if err := rep.printJSON(c.App.Writer); err != nil {
					return err
				}
			}
			return rep.verdict()
		},
	}
}

// benchOptions is a validated bench run.
type benchOptions struct {
	target       netip.AddrPort
	user         string
	listen       netip.AddrPort
	calls        int
	concurrent   int
	rate         float64
	callDuration time.Duration
	maxTime      time.Duration
	drain        time.Duration
	setupTimeout time.Duration
	botListen    string
	pid          int
	admin        string
	idle         time.Duration
	sample       time.Duration
	reportEvery  time.Duration
}

func parseBenchFlags(c *cli.Context) (benchOptions, error) {
	o := benchOptions{
		user: c.String("to"), calls: c.Int("calls"), concurrent: c.Int("concurrent"), rate: c.Float64("rate"),
		callDuration: c.Duration("call-duration"), maxTime: c.Duration("max-time"), drain: c.Duration("drain"),
		setupTimeout: c.Duration("setup-timeout"), botListen: c.String("bot-listen"), pid: c.Int("pid"),
		admin: c.String("admin"), idle: c.Duration("idle"), sample: c.Duration("sample"), reportEvery: c.Duration("report-every"),
	}
	var err error
	if o.target, err = loopbackAddr("target", c.Args().First()); err != nil {
		return o, err
	}
	if o.listen, err = loopbackAddr("--listen", c.String("listen")); err != nil {
		return o, err
	}
	if o.botListen != "" {
		if _, err := loopbackAddr("--bot-listen", o.botListen); err != nil {
			return o, err
		}
	}
	if o.admin != "" {
		if _, err := loopbackAddr("--admin", o.admin); err != nil {
			return o, err
		}
	}
	return o, o.validate()
}

// loopbackAddr parses IP:PORT and refuses anything off the machine: the
// bench is a load generator, and a load generator pointed elsewhere is an
// attack. Names are refused too (no DNS: "localhost" could be anything).
func loopbackAddr(what, s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, fmt.Errorf("bench: %s %q: want a loopback IP:PORT (127.0.0.0/8 or [::1]): %w", what, s, err)
	}
	if !ap.Addr().Unmap().IsLoopback() {
		return ap, fmt.Errorf("bench: %s %s is not a loopback address: the bench only loads this machine", what, ap.Addr())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func (o *benchOptions) validate() error {
	switch {
	case o.target.Port() == 0:
		return errors.New("bench: the target needs a port")
	case o.calls < 1 || o.calls > benchCapCalls:
		return fmt.Errorf("bench: --calls %d out of 1..%d", o.calls, benchCapCalls)
	case o.concurrent < 1 || o.concurrent > benchCapConcurrent:
		return fmt.Errorf("bench: --concurrent %d out of 1..%d", o.concurrent, benchCapConcurrent)
	case o.rate <= 0 || o.rate > benchCapRate:
		return fmt.Errorf("bench: --rate %g out of (0, %d]", o.rate, benchCapRate)
	case o.callDuration < benchFrameTime || o.callDuration > benchCapCallDuration:
		return fmt.Errorf("bench: --call-duration %v out of 20ms..%v", o.callDuration, benchCapCallDuration)
	case o.maxTime <= 0 || o.maxTime > benchCapTotal:
		return fmt.Errorf("bench: --max-time %v out of (0, %v]", o.maxTime, benchCapTotal)
	case o.drain < 0 || o.drain > 5*time.Second:
		return fmt.Errorf("bench: --drain %v out of 0..5s", o.drain)
	case o.setupTimeout <= 0 || o.setupTimeout > time.Minute:
		return fmt.Errorf("bench: --setup-timeout %v out of (0, 1m]", o.setupTimeout)
	case o.sample < 100*time.Millisecond:
		return fmt.Errorf("bench: --sample %v below 100ms", o.sample)
	case o.idle < 0 || o.idle > time.Minute:
		return fmt.Errorf("bench: --idle %v out of 0..1m", o.idle)
	case o.pid < 0:
		return fmt.Errorf("bench: --pid %d", o.pid)
	case o.user == "" || sipUserBad(o.user):
		return fmt.Errorf("bench: --to %q is not a plain user part", o.user)
	}
	return nil
}

func sipUserBad(u string) bool {
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '_' || r == '.') {
			return true
		}
	}
	return false
}

// hardDeadline bounds the whole run: placing, the last calls, the drain and
// the final checks.
func (o *benchOptions) hardDeadline() time.Duration {
	return o.idle + o.maxTime + o.callDuration + o.drain + o.setupTimeout + 30*time.Second
}
