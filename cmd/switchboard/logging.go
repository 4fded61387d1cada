package main

import (
	"io"
	"log/slog"

	sipmsg "github.com/emiago/sipgo/sip"
)

// newLogger builds the process logger and hands sipgo its own (sipgo's
// logger is a process-wide global: set once, here).
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	log := slog.New(h)
	// sipgo logs every retransmission and parse failure at info level: keep
	// it one notch quieter than ours.
	sipOpts := &slog.HandlerOptions{Level: max(lv, slog.LevelWarn)}
	var sh slog.Handler = slog.NewTextHandler(w, sipOpts)
	if format == "json" {
		sh = slog.NewJSONHandler(w, sipOpts)
	}
	sipmsg.SetDefaultLogger(slog.New(sh).With("component", "sipgo"))
	return log
}
