// Command switchboard is the SIP gateway for AI voice agents: `run` starts
// the gateway, `call` places a test call, `dialplan` checks and dry-runs
// routing, `agent serve` runs the built-in WebSocket echo bot, `version`
// prints the build.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	app := &cli.App{
		Name:  "switchboard",
		Usage: "SIP/PSTN gateway for AI voice agents",
		Commands: []*cli.Command{
			runCommand(),
			callCommand(),
			dialplanCommand(),
			agentCommand(),
			callsCommand(),
			benchCommand(),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					fmt.Fprintf(c.App.Writer, "switchboard %s\n", version)
					return nil
				},
			},
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		os.Exit(1)
	}
}
