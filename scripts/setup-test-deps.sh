#!/usr/bin/env bash
# setup-test-deps.sh: make sure the tools the end-to-end and interop tests use
# are present, and that a Redis answers on 127.0.0.1:6379.
#
#   sipp      (Debian package sip-tester; also ships /usr/share/sip-tester/g711a.pcap)
#   tshark    (installed noninteractively; no setuid dumpcap)
#   sox
#   gcc       (cgo, which `go test -race` needs on Linux)
#   redis     (started only when nothing answers PING on 127.0.0.1:6379)
#
# Idempotent: when everything is already there it changes nothing and exits 0.
# `apt-get update` runs only when something has to be installed.
# Not root and something missing: prints the command to run and exits 1
# (set ALLOW_MISSING_TEST_DEPS=1 to only warn; the tests that need a missing
# tool then skip themselves).
set -euo pipefail

REDIS_HOST=127.0.0.1
REDIS_PORT=6379

log() { printf 'setup-test-deps: %s\n' "$*"; }

# command -> Debian package that provides it
declare -A PKG_FOR=(
	[sipp]=sip-tester
	[tshark]=tshark
	[sox]=sox
	[gcc]=gcc
)

missing_pkgs=()
for cmd in sipp tshark sox gcc; do
	if command -v "$cmd" >/dev/null 2>&1; then
		log "ok: $cmd ($(command -v "$cmd"))"
	else
		log "missing: $cmd (package ${PKG_FOR[$cmd]})"
		missing_pkgs+=("${PKG_FOR[$cmd]}")
	fi
done

# redis_ping prints Redis's first reply line to PING, or nothing when no
# server answers. Uses bash's /dev/tcp, so it works without redis-cli; bounded
# by `timeout`.
redis_ping() {
	timeout 2 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "PING\r\n" >&3
		IFS= read -r -t 1 line <&3 || exit 1
		printf "%s\n" "${line%$'"'"'\r'"'"'}"
	' _ "$REDIS_HOST" "$REDIS_PORT" 2>/dev/null || true
}

need_redis_start=0
reply="$(redis_ping)"
case "$reply" in
+PONG)
	log "ok: redis answers PING on $REDIS_HOST:$REDIS_PORT"
	;;
-NOAUTH* | -ERR*)
	# Something Redis-like is there (with a password); leave it alone.
	log "warning: a server on $REDIS_HOST:$REDIS_PORT answered '$reply' (not started: the port is taken)"
	;;
*)
	log "no redis on $REDIS_HOST:$REDIS_PORT: will start one"
	need_redis_start=1
	if ! command -v redis-server >/dev/null 2>&1; then
		log "missing: redis-server (package redis-server)"
		missing_pkgs+=(redis-server)
	fi
	;;
esac

if ((${#missing_pkgs[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		log "not root, cannot install. Please run:"
		log "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing_pkgs[*]}"
		if ((need_redis_start)); then
			log "  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port $REDIS_PORT --save \"\" --appendonly no"
		fi
		if [[ ${ALLOW_MISSING_TEST_DEPS:-0} == 1 ]]; then
			log "ALLOW_MISSING_TEST_DEPS=1: continuing; tests needing these tools will skip"
			exit 0
		fi
		exit 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		log "no apt-get on this machine; install these yourself: ${missing_pkgs[*]}"
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# tshark asks whether non-root users may capture; answer "no" up front.
	if command -v debconf-set-selections >/dev/null 2>&1; then
		echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	fi
	log "apt-get update"
	apt-get update -qq
	log "apt-get install ${missing_pkgs[*]}"
	apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}"
	log "installed: ${missing_pkgs[*]}"
fi

if ((need_redis_start)); then
	log "starting redis-server on $REDIS_HOST:$REDIS_PORT (no persistence)"
	redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no
	# Bounded wait: 50 x 0.1 s.
	for _ in $(seq 1 50); do
		if [[ "$(redis_ping)" == +PONG ]]; then
			log "ok: redis started and answers PING"
			break
		fi
		sleep 0.1
	done
	if [[ "$(redis_ping)" != +PONG ]]; then
		log "error: redis-server did not answer PING within 5 s"
		exit 1
	fi
fi

log "done"
