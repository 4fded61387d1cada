package main

// TransferConfig governs cold and warm transfers: where calls may be sent
// (a transfer is a paid outbound call, never an open relay) and how long
// each step may take.
type TransferConfig struct {
	// Allow lists the permitted targets: E.164 numbers ("+15551234567"),
	// prefixes ending in "*" ("+1555*") and SIP domains ("@pbx.example.com").
	// Empty refuses every transfer.
	Allow []string `yaml:"allow"`
}
