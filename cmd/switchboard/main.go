// Command switchboard is the SIP gateway for AI voice agents: `run` starts
// the gateway, `call` places a test call, `dialplan` checks and dry-runs
// routing, `agent serve` runs a built-in WebSocket bot, `version`
// prints the build.
package main

import (
	"fmt"
	sipmsg "github.com/emiago/sipgo/sip"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// maxUDPPayload is the largest datagram IPv4 can carry.
const maxUDPPayload = 65507

func main() {
	// sipgo refuses to send a UDP message within 200 bytes of UDPMTUSize
	// (1500). RFC 3261 §18.1.1 moves large requests to TCP, which Dial does
	// by the trunk's transport, but §18.2.2 sends a response the way the
	// request came, whatever its size: a long INVITE's answer must not be
	// dropped. Set once, before any transport starts.
	sipmsg.UDPMTUSize = maxUDPPayload + 200
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
