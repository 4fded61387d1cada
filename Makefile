# Switchboard: build, test and tooling entry points.
#
#   make build       bin/switchboard (version stamped from git)
#   make run         build, then run with the binary's embedded default config
#   make test        install/start test dependencies, vet, full test suite with -race
#   make test-short  unit tests only (-short), no external dependencies
#   make bench       hot-path benchmarks (rtp, media, the agent framing)
#   make fuzz        every Fuzz target in the repo for FUZZTIME each
#   make lint        gofmt + go vet
#   make clean       remove build outputs

GO       ?= go
FUZZTIME ?= 30s
# Version stamped into main.version; override with `make build VERSION=1.2.3`.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

BIN     := bin/switchboard
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-short bench fuzz lint clean

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

lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...

clean:
	rm -rf bin/
