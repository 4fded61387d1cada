package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
	_ "time/tzdata" // time windows name IANA zones; do not depend on the host's zoneinfo

	"github.com/urfave/cli/v2"

	"github.com/switchboard-voice/switchboard/dialplan"
)

func dialplanCommand() *cli.Command {
	return &cli.Command{
		Name:  "dialplan",
		Usage: "check a dialplan file, or show what it would do with a call",
		Subcommands: []*cli.Command{
			{
				Name:      "check",
				Usage:     "validate a dialplan and list every problem",
				ArgsUsage: "[FILE] (default with --config: the config's dialplan)",
				Flags:     dialplanNameFlags(),
				Action:    dialplanCheck,
			},
			{
				Name:      "test",
				Usage:     "route a made-up call and print the actions it would run (no call is placed)",
				ArgsUsage: "[FILE] (default with --config: the config's dialplan)",
				Flags: append(dialplanNameFlags(),
					&cli.StringFlag{Name: "to", Usage: "called `NUMBER`"},
					&cli.StringFlag{Name: "from", Usage: "caller `NUMBER`"},
					&cli.StringFlag{Name: "trunk", Usage: "trunk `NAME` the call came in on"},
					&cli.StringFlag{Name: "at", Usage: "when the call arrives, `YYYY-MM-DDTHH:MM` (default: now)"},
					&cli.StringFlag{Name: "tz", Usage: "`ZONE` of --at (default: the dialplan's timezone, else UTC)"},
					&cli.GenericFlag{Name: "digits", Value: &dialplanValues{}, Usage: "what the caller enters at the next gather (repeat for each; \"-\" = no input)"},
					&cli.GenericFlag{Name: "header", Value: &dialplanValues{}, Usage: "SIP header of the INVITE, `NAME=VALUE` (repeatable)"},
					&cli.StringFlag{Name: "agent-result", Value: "ok", Usage: "how agents end: ok, hangup or fail"},
					&cli.StringFlag{Name: "transfer-result", Value: "ok", Usage: "how transfers end: ok or fail"},
				),
				Action: dialplanTest,
			},
		},
	}
}

func dialplanNameFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "gateway config `FILE`: check agent and trunk names against it (it is validated too)"},
		&cli.StringFlag{Name: "agents", Usage: "known agent `NAMES`, comma-separated; replaces the config's (default: not checked)"},
		&cli.StringFlag{Name: "trunks", Usage: "known trunk `NAMES`, comma-separated; replaces the config's (default: not checked)"},
	}
}

// dialplanFlagsAfterFile lets flags follow FILE (`dialplan test FILE --to
// ...`): urfave/cli stops reading flags at the first argument.
func dialplanFlagsAfterFile(c *cli.Context) (*cli.Context, error) {
	if c.NArg() == 0 {
		if c.String("config") != "" {
			return c, nil // the config names the dialplan
		}
		return nil, cli.Exit("give a dialplan FILE (or --config GATEWAY.yaml that names one)", 2)
	}
	if c.NArg() == 1 {
		return c, nil
	}
	set := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil { // repeatable flags keep their values: shared
			return nil, err
		}
		if sf, ok := f.(*cli.StringFlag); ok && c.IsSet(sf.Name) {
			_ = set.Set(sf.Name, c.String(sf.Name))
		}
	}
	if err := set.Parse(c.Args().Tail()); err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	if set.NArg() > 0 {
		return nil, cli.Exit(fmt.Sprintf("give exactly one dialplan FILE (unexpected %q)", set.Arg(0)), 2)
	}
	return cli.NewContext(c.App, set, c), nil
}

// dialplanLoad loads FILE ("" for the --config's dialplan), printing every
// problem.
func dialplanLoad(c *cli.Context, file string) (*dialplan.Plan, error) {
	file, opts, err := dialplanSource(c, file)
	if err != nil {
		return nil, err
	}
	if opts.Agents == nil {
		fmt.Fprintln(c.App.Writer, "note: agent names are not checked (give --config GATEWAY.yaml, or --agents a,b, to check them)")
	}
	plan, err := dialplan.LoadFile(file, opts)
	if err != nil {
		var errs dialplan.LoadErrors
		if !errors.As(err, &errs) {
			return nil, cli.Exit(err.Error(), 1)
		}
		for _, e := range errs {
			fmt.Fprintln(c.App.Writer, e.Error())
		}
		return nil, cli.Exit(fmt.Sprintf("%s: %d problem(s)", file, len(errs)), 1)
	}
	return plan, nil
}

func dialplanCheck(c *cli.Context) error {
	file := c.Args().First()
	c, err := dialplanFlagsAfterFile(c)
	if err != nil {
		return err
	}
	plan, err := dialplanLoad(c, file)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: ok (%d rules, %d menus)\n", plan.File, len(plan.Rules), len(plan.Menus))
	return nil
}

func dialplanTest(c *cli.Context) error {
	file := c.Args().First()
	c, err := dialplanFlagsAfterFile(c)
	if err != nil {
		return err
	}
	switch r := c.String("agent-result"); r {
	case "ok", "hangup", "fail":
	default:
		return cli.Exit(fmt.Sprintf("--agent-result %q: expected ok, hangup or fail", r), 2)
	}
	if r := c.String("transfer-result"); r != "ok" && r != "fail" {
		return cli.Exit(fmt.Sprintf("--transfer-result %q: expected ok or fail", r), 2)
	}
	plan, err := dialplanLoad(c, file)
	if err != nil {
		return err
	}
	at, err := dialplanTime(c.String("at"), c.String("tz"), plan.Timezone)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	headers := map[string]string{}
	for _, h := range *c.Generic("header").(*dialplanValues) {
		k, v, ok := strings.Cut(h, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return cli.Exit(fmt.Sprintf("--header %q: expected NAME=VALUE", h), 2)
		}
		headers[strings.ToLower(strings.TrimSpace(k))] = v
	}
	header := func(name string) string { return headers[strings.ToLower(name)] }
	f := dialplan.Facts{To: c.String("to"), From: c.String("from"), Trunk: c.String("trunk"), CallID: "dry-run", Headers: header, At: at}
	w := c.App.Writer
	fmt.Fprintf(w, "call: from %q to %q on trunk %q at %s\n", f.From, f.To, f.Trunk, at.Format("Mon 2006-01-02 15:04 MST"))
	rule := plan.Route(f)
	if rule.Default {
		fmt.Fprintf(w, "rule: %s (line %d), the default: no other rule matches\n", rule.Name, rule.Line)
	} else {
		fmt.Fprintf(w, "rule: %s (line %d)\n", rule.Name, rule.Line)
	}
	dry := &dialplan.DryRun{Out: w, Digits: *c.Generic("digits").(*dialplanValues),
		AgentResult: c.String("agent-result"), TransferResult: c.String("transfer-result")}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	vars := dialplan.Vars{Caller: f.From, Called: f.To, Trunk: f.Trunk, CallID: f.CallID, Header: header}
	out, err := plan.Run(ctx, rule, dry, vars)
	dialplanPrintOutcome(w, out, err)
	return nil
}

func dialplanPrintOutcome(w io.Writer, out dialplan.Outcome, err error) {
	fmt.Fprintf(w, "ended: %s", out.Ended)
	if err != nil {
		fmt.Fprintf(w, " (%v)", err)
	}
	fmt.Fprintln(w)
	if out.Digits != "" {
		fmt.Fprintf(w, "digits: %s\n", out.Digits)
	}
	fmt.Fprintf(w, "record: %s\n", strings.Join(out.Actions, ", "))
}

// dialplanTime reads --at in zone tz, else the plan's zone, else UTC.
func dialplanTime(at, tz string, planZone *time.Location) (time.Time, error) {
	loc := time.UTC
	if planZone != nil {
		loc = planZone
	}
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return time.Time{}, fmt.Errorf("--tz: unknown time zone %q", tz)
		}
		loc = l
	}
	if at == "" {
		return time.Now().In(loc), nil
	}
	if t, err := time.Parse(time.RFC3339, at); err == nil {
		return t.In(loc), nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, at, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--at %q: expected YYYY-MM-DDTHH:MM (or RFC 3339)", at)
}

// dialplanList splits a comma-separated flag; "" is nil (not checked).
func dialplanList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// dialplanValues is a repeatable flag kept as given (no comma splitting).
type dialplanValues []string

func (v *dialplanValues) Set(s string) error { *v = append(*v, s); return nil }
func (v *dialplanValues) String() string     { return strings.Join(*v, " ") }
