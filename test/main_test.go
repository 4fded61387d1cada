// Package test holds Switchboard's end-to-end and interop tests: a real
// gateway process (see test/harness) driven by real peers such as SIPp.
// All traffic stays on loopback. `go test -short` skips them.
package test

import (
	"os"
	"testing"

	"github.com/switchboard-voice/switchboard/test/harness"
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m))
}
