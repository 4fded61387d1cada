package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchboard-voice/switchboard/agent/twilio"
	"github.com/switchboard-voice/switchboard/media"
)

// agentCommand groups tools for the agent side of the gateway.
func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "agent-side tools (built-in Twilio Media Streams bots for demos, tests and load runs)",
		Subcommands: []*cli.Command{
			{
				Name:  "serve",
				Usage: "serve a built-in bot over the Twilio Media Streams protocol until SIGINT/SIGTERM",
				Description: "Point a websocket agent at ws://LISTEN/PATH.\n\n" +
					"--mode echo: every call hears its own audio back; a mark echo-<n> follows every half second " +
					"of echoed audio; each DTMF digit is answered with a mark dtmf-<digit>, and * sends clear first " +
					"(barge-in).\n\n" +
					"--mode prompt: the bot says a prompt (--prompt WAV, or a built-in phrase of four rising notes) " +
					"followed by a mark; caller speech or a digit while it speaks sends clear (barge-in); once the " +
					"caller has been quiet for 600 ms it says the prompt again (also after 10 s of silence); # sends " +
					"hangup.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8765", Usage: "`ADDR` to listen on (port 0: any free port)"},
					&cli.StringFlag{Name: "path", Value: "/media", Usage: "WebSocket `PATH`"},
					&cli.StringFlag{Name: "mode", Value: "echo", Usage: "`MODE`: echo or prompt"},
					&cli.StringFlag{Name: "prompt", Usage: "prompt mode: WAV `FILE` to say (any rate; resampled to 8 kHz mono)"},
					&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
					&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
				},
				Action: func(c *cli.Context) error {
					path := c.String("path")
					if !strings.HasPrefix(path, "/") {
						return fmt.Errorf("agent serve: --path %q must start with /", path)
					}
					log := newLogger(c.App.ErrWriter, c.String("log-level"), c.String("log-format"))
					mode := c.String("mode")
					bot, err := builtinBot(mode, c.String("prompt"), log)
					if err != nil {
						return fmt.Errorf("agent serve: %w", err)
					}
					ln, err := net.Listen("tcp", c.String("listen"))
					if err != nil {
						return fmt.Errorf("agent serve: %w", err)
					}
					mux := http.NewServeMux()
					mux.Handle(path, bot)
					mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
						_, _ = fmt.Fprintln(w, "ok")
					})
					ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
					defer stop()
					fmt.Fprintf(c.App.Writer, "%s bot listening on ws://%s%s\n", mode, ln.Addr(), path)
					return serveUntil(ctx, &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln)
				},
			},
		},
	}
}

// builtinBot is the handler of `agent serve --mode`: echo, or prompt with
// an optional WAV file.
func builtinBot(mode, promptFile string, log *slog.Logger) (http.Handler, error) {
	switch mode {
	case "echo":
		if promptFile != "" {
			return nil, errors.New("--prompt needs --mode prompt")
		}
		return twilio.NewEchoBot(log), nil
	case "prompt":
		cfg := twilio.PromptBotConfig{Log: log}
		if promptFile != "" {
			samples, err := media.ReadWAVFile(promptFile)
			if err != nil {
				return nil, fmt.Errorf("--prompt: %w", err)
			}
			if len(samples) == 0 {
				return nil, fmt.Errorf("--prompt: %s holds no audio", promptFile)
			}
			cfg.Prompt = samples
		}
		return twilio.NewPromptBot(cfg), nil
	default:
		return nil, fmt.Errorf("--mode %q: want echo or prompt", mode)
	}
}

// serveUntil serves on ln until ctx ends, then shuts the server down.
// Hijacked WebSocket connections end when their peers close them.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
