// Package harness starts a real switchboard gateway process for end-to-end tests and reads its structured logs.
//
// The gateway binary is built once per test binary, with -race, so a data race
// inside the gateway fails the end-to-end test that provoked it. Every process
// the harness starts is ended by its own PID in t.Cleanup; nothing is killed by
// name. All traffic stays on loopback.
package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds the one-off `go build -race` of the gateway. A cold
// build of the gateway and its dependencies with -race on 2 cores takes about
// a minute.
const buildTimeout = 5 * time.Minute

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// RepoRoot returns the repository root: the nearest directory at or above the
// working directory that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 64; i++ { // bounded walk up
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("harness: go.mod not found above the working directory")
}

// MustRepoRoot is RepoRoot that fails the test on error.
func MustRepoRoot(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// BuildBinary builds ./cmd/switchboard with -race, once per test binary, into a
// fresh temporary directory, and returns the binary's path. Use Main in
// TestMain to remove that directory when the tests finish.
//
// SWITCHBOARD_E2E_BIN=/path/to/switchboard skips the build and tests that
// binary instead (a release build, or a stand-in while developing the harness).
func BuildBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("SWITCHBOARD_E2E_BIN"); p != "" {
			if _, err := os.Stat(p); err != nil {
				buildErr = fmt.Errorf("harness: SWITCHBOARD_E2E_BIN: %w", err)
				return
			}
			buildPath = p
			return
		}
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("harness: go tool not on PATH: %w", err)
			return
		}
		buildDir, err = os.MkdirTemp("", "switchboard-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		out := filepath.Join(buildDir, "switchboard")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool, "build", "-race",
			"-ldflags", "-X main.version=e2e-test", "-o", out, "./cmd/switchboard")
		cmd.Dir = root
		cmd.WaitDelay = 5 * time.Second
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1") // -race needs cgo on Linux
		if output, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("harness: go build -race ./cmd/switchboard: %v\n%s", err, output)
			return
		}
		buildPath = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Main runs the tests and then removes the binary BuildBinary built. Use it
// from TestMain: func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	return code
}
