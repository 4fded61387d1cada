// Package twilio connects a call to a voice bot over Twilio's bidirectional
// Media Streams WebSocket protocol, so bots written for Twilio (Pipecat's
// TwilioFrameSerializer, the Node and Python examples) work against
// Switchboard unmodified.
//
// The gateway plays Twilio's part: it dials the bot, sends `connected` and
// `start`, then one `media` message per 20 ms of caller audio (µ-law, base64),
// `dtmf` for key presses and `mark` when audio the bot queued has played. The
// bot answers with `media` of any size, `mark` and `clear`. Switchboard adds
// call control on the same socket (`hangup`, `transfer`, `sendDigits`,
// `bridge`, `cancel`; `hold`, `resume` and `transferStatus` events) and a
// subset of Twilio's REST call-update API (NewRESTHandler) for bots that end
// or transfer calls the Twilio way.
//
// Ids follow Twilio's shapes: streamSid "MZ"+32 hex (random), callSid
// "CA"+32 hex (md5 of the SIP Call-ID, so the REST API can find the call),
// accountSid "AC"+32 hex. docs/AGENT_PROTOCOL.md is the protocol reference.
//
// Per call the agent runs two goroutines, a reader and a writer, both ended
// by Session.Wait. Listener callbacks never block: caller audio goes to the
// writer through a bounded queue and is dropped (and counted) when the bot
// cannot keep up.
package twilio
