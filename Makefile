# Switchboard: build, test and tooling entry points.
#
#   make build       bin/switchboard (version stamped from git)
#   make run         build, then run with the binary's embedded default config
#   make test        install/start test dependencies, vet, full test suite with -race
#   make test-short  unit tests only (-short), no external dependencies
#   make bench       hot-path benchmarks (rtp, media, the agent framing), -benchmem
#   make fuzz        every Fuzz target in the repo for FUZZTIME each (default 10s)
#   make load        bounded load run: 200 concurrent calls with media to a WebSocket bot
#   make load-full   1000 concurrent calls at 300 calls/s (docs/PERFORMANCE.md)
#   make soak        steady load for DURATION (default 30m): RSS and goroutines must stay flat
#   make lint        gofmt + go vet
#   make clean       remove build outputs

GO       ?= go
FUZZTIME ?= 10s
# make soak: how long, and how many calls stay up meanwhile.
DURATION ?= 30m
SOAK_CALLS ?= 200
# Version stamped into main.version; override with `make build VERSION=1.2.3`.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

BIN     := bin/switchboard
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-short bench fuzz load load-full soak lint clean

all: build

build:
	@mkdir -p $(dir $(BIN))
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/switchboard

# No --config: the binary falls back to its embedded defaults (laptop-friendly).
run: build
	./$(BIN) run

# Full suite: end-to-end and interop tests need sipp, tshark, sox and Redis on
# 127.0.0.1:6379; the setup script installs/starts what is missing (idempotent).
test:
	bash scripts/setup-test-deps.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 9m ./...

test-short:
	$(GO) test -race -short ./...

# `$$` is make's escape for a literal `$`: -run '^$' runs no tests, only benchmarks.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./rtp/ ./media/ ./agent/twilio/

# Go fuzzes one target per `go test` invocation, so list each package's Fuzz
# targets and run them one by one. Any failure stops the loop with non-zero.
fuzz:
	@set -eu; \
	pkgs=$$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); \
	n=0; \
	for pkg in $$pkgs; do \
		targets=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "$$targets"; exit 1; }; \
		for fz in $$(printf '%s\n' "$$targets" | grep '^Fuzz' || true); do \
			echo "==> fuzz $$pkg $$fz for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$fz\$$" -fuzztime $(FUZZTIME) $$pkg; \
			n=$$((n + 1)); \
		done; \
	done; \
	echo "fuzz: $$n target(s) passed"

# Load runs: scripts/load starts a gateway (websocket agent) on 127.0.0.1
# and runs `switchboard bench` against it with its in-process echo bot;
# every run is bounded in calls and time. Override CALLS, CONCURRENT, RATE,
# CALL_DURATION, AGENT=echo (see scripts/load).
load: build
	CALLS=$${CALLS:-200} CONCURRENT=$${CONCURRENT:-200} RATE=$${RATE:-100} CALL_DURATION=$${CALL_DURATION:-20s} \
		BIN=$(BIN) bash scripts/load

load-full: build
	CALLS=$${CALLS:-1000} CONCURRENT=$${CONCURRENT:-1000} RATE=$${RATE:-300} CALL_DURATION=$${CALL_DURATION:-30s} \
		BIN=$(BIN) bash scripts/load

# Steady load for DURATION: SOAK_CALLS calls up at any time, each 60 s long,
# replaced as they end; a progress line (CPU, RSS, goroutines) every minute.
# The bench fails if goroutines or calls do not come back to idle at the end.
soak: build
	CALLS=1000000 CONCURRENT=$(SOAK_CALLS) RATE=$${RATE:-20} CALL_DURATION=$${CALL_DURATION:-60s} \
		MAX_TIME=$(DURATION) REPORT_EVERY=$${REPORT_EVERY:-60s} BIN=$(BIN) bash scripts/load

lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...

clean:
	rm -rf bin/
