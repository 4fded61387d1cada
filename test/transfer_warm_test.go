package test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/test/harness"
)

// Frequencies that tell the audio apart in the caller's recording.
const (
	callerHz   = 600  // the caller's own voice, echoed by the human after the bridge
	briefingHz = 1000 // the bot briefing the human: the caller must never hear it
	backHz     = 800  // the bot talking to the caller again after a failed transfer
)

// transferStates reads transferStatus events until a final one.
func transferStates(ctx context.Context, c *botConn) ([]string, map[string]any, error) {
	var states []string
	for {
		ev, err := c.nextEvent(ctx, 10*time.Second)
		if err != nil {
			return states, nil, fmt.Errorf("waiting for transferStatus (have %v): %w", states, err)
		}
		if ev.Event != "transferStatus" {
			continue
		}
		st, _ := ev.Msg["transferStatus"].(map[string]any)
		state, _ := st["state"].(string)
		states = append(states, state)
		if state == "completed" || state == "failed" {
			return states, st, nil
		}
		if state == "answered" {
			return states, st, nil
		}
	}
}

// TestWarmTransferSIPp: the bot asks for a warm transfer to SIPp playing the
// human. When the human answers, the bot briefs them (a 1 kHz tone) and
// bridges; SIPp echoes RTP, so once bridged the caller hears its own 600 Hz
// back through the human's leg (PCMU on the caller's side, PCMA on the
// human's). The caller must never hear the briefing. Busy and unanswered
// humans return the caller to the bot.
func TestWarmTransferSIPp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	tests := []struct {
		scenario  string
		bridged   bool
		failCode  float64 // the final transferStatus code when it fails
		transfers string  // the call-ended line's transfers, after the target
	}{
		{"uas_human_answer.xml", true, 0, "completed 200"},
		{"uas_human_busy.xml", false, 486, "failed 486"},
		{"uas_human_noanswer.xml", false, 408, "failed 408"},
	}
	for _, tc := range tests {
		t.Run(strings.TrimSuffix(tc.scenario, ".xml"), func(t *testing.T) {
			t.Parallel()
			humanPort := harness.FreeUDPPort(t)
			humanMedia, _ := harness.FreeUDPPortRange(t, 4)
			target := "sip:human@127.0.0.1:" + strconv.Itoa(humanPort)

			sippDone := make(chan string, 1)
			go func() {
				out, _, code := harness.RunSIPp(t, t.Context(), "-sf", harness.ScenarioPath(t, tc.scenario),
					"-i", "127.0.0.1", "-p", strconv.Itoa(humanPort), "-mp", strconv.Itoa(humanMedia),
					"-m", "1", "-rtp_echo", "-timeout", "30s", "-timeout_error", "-trace_err", "-bind_local")
				if code != 0 {
					out = fmt.Sprintf("sipp (human) exit code %d\n%s", code, lastLines(out, 30))
				} else {
					out = ""
				}
				sippDone <- out
			}()

			bot := newScriptBot(t, func(ctx context.Context, c *botConn) error {
				time.Sleep(300 * time.Millisecond)
				if err := c.send(ctx, map[string]any{"event": "transfer", "streamSid": c.Start.StreamSid,
					"transfer": map[string]any{"mode": "warm", "target": target, "context": "billing question"}}); err != nil {
					return err
				}
				states, st, err := transferStates(ctx, c)
				if err != nil {
					return err
				}
				if !tc.bridged {
					if last := states[len(states)-1]; last != "failed" {
						return fmt.Errorf("transfer states %v, want it to fail", states)
					}
					if code, _ := st["code"].(float64); code != tc.failCode {
						return fmt.Errorf("failed transfer code %v, want %v", st["code"], tc.failCode)
					}
					// Back with the caller: the bot is heard again.
					if err := c.sendMedia(ctx, ulawTone(backHz, time.Second)); err != nil {
						return err
					}
					if err := c.sendMark(ctx, "back"); err != nil {
						return err
					}
					_, err := c.expectMark(ctx, "back", 5*time.Second)
					return err
				}
				if states[len(states)-1] != "answered" {
					return fmt.Errorf("transfer states %v, want answered", states)
				}
				// Brief the human, wait until it has been played to them.
				if err := c.sendMedia(ctx, ulawTone(briefingHz, time.Second)); err != nil {
					return err
				}
				if err := c.sendMark(ctx, "briefed"); err != nil {
					return err
				}
				if _, err := c.expectMark(ctx, "briefed", 5*time.Second); err != nil {
					return fmt.Errorf("briefing: %w", err)
				}
				if err := c.send(ctx, map[string]any{"event": "bridge", "streamSid": c.Start.StreamSid}); err != nil {
					return err
				}
				states, _, err = transferStates(ctx, c)
				if err != nil {
					return err
				}
				if states[len(states)-1] != "completed" {
					return fmt.Errorf("after bridge: states %v, want completed", states)
				}
				return nil
			})
			gw := harness.StartGateway(t, wsGatewayConfig(t, bot.URL,
				"transfer:\n  allow: ['@127.0.0.1']\n  answer_timeout: 1500ms\n"))
			recording := filepath.Join(t.TempDir(), "heard.wav")
			runCall(t, gw, "--tone", strconv.Itoa(callerHz), "--duration", "6s", "--record", recording)

			c := bot.next(t, 5*time.Second)
			if c.scriptErr != nil {
				t.Errorf("bot script: %v", c.scriptErr)
			}
			for _, p := range c.Problems() {
				t.Errorf("gateway -> bot: %s", p)
			}
			if tc.bridged {
				if out := <-sippDone; out != "" {
					t.Errorf("%s", out)
				}
			}
			heard, err := media.ReadWAVFile(recording)
			if err != nil {
				t.Fatal(err)
			}
			if s := toneSeconds(heard, briefingHz); s > 0.1 {
				t.Errorf("the caller heard %.2f s of the briefing (%d Hz)", s, briefingHz)
			}
			if tc.bridged {
				if s := toneSeconds(heard, callerHz); s < 1.5 {
					t.Errorf("the caller heard %.2f s of its own audio back through the human, want >= 1.5 s", s)
				}
			} else if s := toneSeconds(heard, backHz); s < 0.5 {
				t.Errorf("the caller heard %.2f s of the bot after the failed transfer, want >= 0.5 s", s)
			}
			ended := gw.Logs.WaitFor(t, 10*time.Second, harness.MsgIs("call ended"))
			t.Logf("call ended: %s", ended.Line())
			wantStr(t, ended, "transfers", "warm "+target+" "+tc.transfers)
		})
	}
}
