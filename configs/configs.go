// Package configs ships Switchboard's example configuration files and embeds
// the gateway defaults that `switchboard run` uses without --config.
package configs

import _ "embed"

//go:embed switchboard.yaml
var defaultGateway []byte

// DefaultGateway returns the embedded default gateway configuration.
func DefaultGateway() []byte { return append([]byte(nil), defaultGateway...) }
