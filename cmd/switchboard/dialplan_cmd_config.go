package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/switchboard-voice/switchboard/configs"
	"github.com/switchboard-voice/switchboard/dialplan"
)

// dialplanSource decides which dialplan to load and what its names are
// checked against. With --config the gateway config is loaded as `run`
// loads it (and must be valid: a plan is only as good as the config that
// runs it); its agents and trunks are the known names, and its dialplan
// is the FILE when none is given. --agents and --trunks replace the
// config's lists, to try a plan against agents not configured yet.
func dialplanSource(c *cli.Context, file string) (string, dialplan.LoadOptions, error) {
	opts := dialplan.LoadOptions{Agents: dialplanList(c.String("agents")), Trunks: dialplanList(c.String("trunks"))}
	path := c.String("config")
	if path == "" {
		if file == "" {
			return "", opts, cli.Exit("give a dialplan FILE", 2)
		}
		return file, opts, nil
	}
	cfg, err := LoadConfig(path, configs.DefaultGateway())
	if err != nil {
		var errs ConfigErrors
		if !errors.As(err, &errs) {
			return "", opts, cli.Exit(fmt.Sprintf("--config: %v", err), 1)
		}
		for _, e := range errs {
			fmt.Fprintln(c.App.Writer, e.Error())
		}
		return "", opts, cli.Exit(fmt.Sprintf("%s: %d problem(s) in the gateway config", path, len(errs)), 1)
	}
	switch {
	case file == "" && cfg.Dialplan == "":
		return "", opts, cli.Exit(fmt.Sprintf("%s names no dialplan: give a dialplan FILE", path), 2)
	case file == "":
		file = cfg.Dialplan
	case cfg.Dialplan != "" && cfg.Dialplan != file:
		fmt.Fprintf(c.App.Writer, "note: checking %s; %s runs %s\n", file, path, cfg.Dialplan)
	}
	if !c.IsSet("agents") {
		opts.Agents = agentNames(cfg)
	}
	if !c.IsSet("trunks") {
		opts.Trunks = trunkNames(cfg)
	}
	return file, opts, nil
}
