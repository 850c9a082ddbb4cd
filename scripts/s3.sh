#!/usr/bin/env bash
# s3.sh: an S3-compatible store for Parley's upload tests (storage/s3, httpupload, conformance).
#
#   eval "$(scripts/s3.sh start)"   # prints export PARLEY_TEST_S3_ENDPOINT=... PARLEY_TEST_S3_BUCKET=...
#                                   #        PARLEY_TEST_S3_ACCESS_KEY=... PARLEY_TEST_S3_SECRET_KEY=...
#   scripts/s3.sh stop              # stops what start started (when the last start is stopped; --force: now)
#   scripts/s3.sh status
#
# start runs versitygw (github.com/versity/versitygw, the posix backend: objects are files) on a free port of
# 127.0.0.1 with a throwaway data directory, fixed test credentials and one bucket. The binary is built with
# `go install` into ${PARLEY_TOOLS:-<repo>/.cache/tools} the first time (about two minutes on two cores) and
# kept there. If PARLEY_TEST_S3_ENDPOINT is already set, start only repeats the current exports: point the
# tests at another store (MinIO, Garage, AWS) by setting the four variables yourself.
#
# Only the export lines go to stdout; logs go to stderr. Several test runs can share one gateway: start counts,
# and the last stop stops it. State lives in ${PARLEY_S3_STATE_DIR:-${TMPDIR:-/tmp}/parley-s3}.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${PARLEY_TOOLS:-$ROOT/.cache/tools}
VERSITYGW_VERSION=${PARLEY_VERSITYGW_VERSION:-v1.8.0}
STATE_DIR=${PARLEY_S3_STATE_DIR:-${TMPDIR:-/tmp}/parley-s3}
STATE=$STATE_DIR/state
ACCESS_KEY=parleytest
SECRET_KEY=parleytestsecret
BUCKET=parley-test

log() { printf 's3: %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p
	for _ in $(seq 1 200); do
		# Below the kernel's ephemeral range (32768 and up by default): a port there can be the local end of
		# some outgoing connection, which no connect test sees, and the gateway's bind would then fail.
		p=$((20000 + RANDOM % 12000))
		if ! port_open "$p"; then
			echo "$p"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

lock() {
	mkdir -p "$STATE_DIR"
	if command -v flock >/dev/null 2>&1; then
		# The gateway must not inherit fd 9, or it would hold the lock for its lifetime (9>&- below).
		exec 9>"$STATE_DIR/lock"
		flock 9
	fi
}

# state: pid port dir count, one line.
read_state() {
	PID='' PORT='' DIR='' COUNT=0
	if [[ -f $STATE ]]; then
		read -r PID PORT DIR COUNT <"$STATE" || true
	fi
}
write_state() { printf '%s %s %s %s\n' "$PID" "$PORT" "$DIR" "$COUNT" >"$STATE"; }

running() { [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null && port_open "$PORT"; }

exports() {
	printf 'export PARLEY_TEST_S3_ENDPOINT=%s PARLEY_TEST_S3_BUCKET=%s PARLEY_TEST_S3_ACCESS_KEY=%s PARLEY_TEST_S3_SECRET_KEY=%s\n' \
		"$1" "$2" "$3" "$4"
}

install_gateway() {
	if [[ -x $TOOLS/versitygw ]]; then
		return 0
	fi
	log "building versitygw $VERSITYGW_VERSION into $TOOLS (first time only; takes a few minutes)"
	mkdir -p "$TOOLS"
	(cd /tmp && GOBIN=$TOOLS go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION") >&2
}

start() {
	if [[ -n ${PARLEY_TEST_S3_ENDPOINT:-} ]]; then
		log "using PARLEY_TEST_S3_ENDPOINT=$PARLEY_TEST_S3_ENDPOINT from the environment"
		exports "$PARLEY_TEST_S3_ENDPOINT" "${PARLEY_TEST_S3_BUCKET:-$BUCKET}" "${PARLEY_TEST_S3_ACCESS_KEY:-}" "${PARLEY_TEST_S3_SECRET_KEY:-}"
		return 0
	fi
	install_gateway
	lock
	read_state
	if running; then
		COUNT=$((COUNT + 1))
		write_state
		log "versitygw already running on 127.0.0.1:$PORT (pid $PID, $COUNT users)"
		exports "http://127.0.0.1:$PORT" "$BUCKET" "$ACCESS_KEY" "$SECRET_KEY"
		return 0
	fi
	# A gateway that died leaves its state behind: its data directory goes with it.
	[[ -n $DIR && $DIR == "${TMPDIR:-/tmp}"/parley-s3-data.* ]] && rm -rf "$DIR"
	DIR=$(mktemp -d "${TMPDIR:-/tmp}/parley-s3-data.XXXXXX")
	# The posix backend serves each top-level directory as a bucket.
	mkdir -p "$DIR/root/$BUCKET"
	# Another process may take the port between the check and the bind: then the gateway exits at once, and
	# another port is tried.
	for _ in 1 2 3; do
		PORT=$(free_port)
		ROOT_ACCESS_KEY=$ACCESS_KEY ROOT_SECRET_KEY=$SECRET_KEY \
			nohup "$TOOLS/versitygw" --port "127.0.0.1:$PORT" posix "$DIR/root" >"$DIR/versitygw.log" 2>&1 9>&- &
		PID=$!
		for _ in $(seq 1 100); do
			port_open "$PORT" && break
			kill -0 "$PID" 2>/dev/null || break
			sleep 0.1
		done
		port_open "$PORT" && break
		kill -0 "$PID" 2>/dev/null && break # alive but slow: reported below
		log "versitygw could not listen on 127.0.0.1:$PORT; trying another port"
	done
	if ! port_open "$PORT"; then
		log "versitygw did not start; its log:"
		cat "$DIR/versitygw.log" >&2
		kill "$PID" 2>/dev/null || true
		rm -rf "$DIR"
		return 1
	fi
	COUNT=1
	write_state
	log "versitygw on 127.0.0.1:$PORT (pid $PID), data in $DIR/root, bucket $BUCKET"
	exports "http://127.0.0.1:$PORT" "$BUCKET" "$ACCESS_KEY" "$SECRET_KEY"
}

stop() {
	lock
	read_state
	if [[ -z $PID ]]; then
		log "nothing to stop"
		return 0
	fi
	COUNT=$((COUNT - 1))
	if [[ ${1:-} != --force && $COUNT -gt 0 ]]; then
		write_state
		log "still used by $COUNT; left running"
		return 0
	fi
	if kill -0 "$PID" 2>/dev/null; then
		kill "$PID"
		for _ in $(seq 1 50); do
			kill -0 "$PID" 2>/dev/null || break
			sleep 0.1
		done
	fi
	[[ -n $DIR && $DIR == "${TMPDIR:-/tmp}"/parley-s3-data.* ]] && rm -rf "$DIR"
	rm -f "$STATE"
	log "stopped versitygw (pid $PID)"
}

case ${1:-} in
start) start ;;
stop) stop "${2:-}" ;;
status)
	read_state
	if running; then
		echo "versitygw pid $PID on 127.0.0.1:$PORT, data $DIR, $COUNT users"
	else
		echo "not running"
	fi
	;;
*)
	echo "usage: $0 start|stop [--force]|status" >&2
	exit 2
	;;
esac
