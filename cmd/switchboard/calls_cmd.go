package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

// callsCommand lists the fleet's calls through a gateway's admin API.
func callsCommand() *cli.Command {
	return &cli.Command{
		Name:  "calls",
		Usage: "list calls in progress across the fleet (through a gateway's admin API)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "admin", Value: "http://127.0.0.1:8080", Usage: "admin API base `URL`", EnvVars: []string{"SWITCHBOARD_ADMIN"}},
			&cli.StringFlag{Name: "token", Usage: "bearer `TOKEN` (admin.token)", EnvVars: []string{"SWITCHBOARD_ADMIN_TOKEN"}},
			&cli.BoolFlag{Name: "json", Usage: "print the API's JSON"},
		},
		Action: func(c *cli.Context) error {
			req, err := http.NewRequestWithContext(c.Context, http.MethodGet, c.String("admin")+"/calls", nil)
			if err != nil {
				return err
			}
			if t := c.String("token"); t != "" {
				req.Header.Set("Authorization", "Bearer "+t)
			}
			client := &http.Client{Timeout: 10 * time.Second}
			res, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("calls: %w", err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
			if err != nil {
				return fmt.Errorf("calls: %w", err)
			}
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("calls: %s: %s", res.Status, body)
			}
			if c.Bool("json") {
				_, err := c.App.Writer.Write(body)
				return err
			}
			var out callList
			if err := json.Unmarshal(body, &out); err != nil {
				return fmt.Errorf("calls: %w", err)
			}
			return printCalls(c.App.Writer, c.App.ErrWriter, out, time.Now())
		},
	}
}

// printCalls writes the table of `switchboard calls`, and the count (and a
// partial list's warning) to errw.
func printCalls(w, errw io.Writer, list callList, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CALL ID\tINSTANCE\tTRUNK\tFROM\tTO\tSTATE\tRULE\tAGENT\tTRANSFER\tAGE")
	for _, v := range list.Calls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Instance, dash(v.Trunk), v.From, v.To, v.State,
			dash(v.Rule), dash(v.Agent), dash(v.Transfer), now.Sub(v.Started).Round(time.Second))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if list.Partial {
		fmt.Fprintf(errw, "warning: the fleet registry is unreachable (%s): these are the calls of this instance only\n", list.Error)
	}
	fmt.Fprintf(errw, "%d call(s)\n", len(list.Calls))
	return nil
}

// dash stands in for an empty column, so every row reads the same.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
