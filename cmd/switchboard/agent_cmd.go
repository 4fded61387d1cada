package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchboard-voice/switchboard/agent/twilio"
)

// agentCommand groups tools for the agent side of the gateway.
func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "agent-side tools (a built-in Twilio Media Streams bot for tests and load runs)",
		Subcommands: []*cli.Command{
			{
				Name:  "serve",
				Usage: "serve an echo bot over the Twilio Media Streams protocol until SIGINT/SIGTERM",
				Description: "Every call the gateway sends to ws://LISTEN/PATH hears its own audio back; " +
					"each DTMF digit is answered with a mark named dtmf-<digit>.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8765", Usage: "`ADDR` to listen on (port 0: any free port)"},
					&cli.StringFlag{Name: "path", Value: "/media", Usage: "WebSocket `PATH`"},
					&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
					&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
				},
				Action: func(c *cli.Context) error {
					path := c.String("path")
					if !strings.HasPrefix(path, "/") {
						return fmt.Errorf("agent serve: --path %q must start with /", path)
					}
					log := newLogger(c.App.ErrWriter, c.String("log-level"), c.String("log-format"))
					ln, err := net.Listen("tcp", c.String("listen"))
					if err != nil {
						return fmt.Errorf("agent serve: %w", err)
					}
					mux := http.NewServeMux()
					mux.Handle(path, twilio.NewEchoBot(log))
					mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
						_, _ = fmt.Fprintln(w, "ok")
					})
					ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
					defer stop()
					fmt.Fprintf(c.App.Writer, "echo bot listening on ws://%s%s\n", ln.Addr(), path)
					return serveUntil(ctx, &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln)
				},
			},
		},
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
