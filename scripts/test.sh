#!/usr/bin/env bash
# test.sh: the whole suite, as `make test` runs it (and CI through .ci/run).
#
#   scripts/test.sh            # GO, PKGS, TIMEOUT and MAKE may be set (`make test` sets them); FUZZ=0 skips step 4
#
# In order:
#   1. scripts/test-deps.sh installs what the suites need when it can (root with apt-get; npm ci for the web
#      peers) and writes what is still missing to a report.
#   2. scripts/services.sh start (PostgreSQL, Redis) and scripts/s3.sh start (versitygw), whose exports point
#      the tests at them.
#   3. go vet, then go test -json piped through scripts/testsummary, which prints what go test without -v would
#      (failing tests' output and the closing ok/FAIL line of every package) and keeps the skipped tests.
#   4. make fuzz, if the tests passed.
#   5. On every exit, also on failure or Ctrl-C: scripts/s3.sh stop and scripts/services.sh stop, which stop what
#      step 2 started (each counts its users: a gateway or database another run also uses is left running).
#      The versitygw this run started must then be gone, or the run fails.
#   6. The summary: every skipped test by package and reason, and the dependencies test-deps.sh could not
#      install.
#
# Under CI (PARLEY_REQUIRE_SERVICES=1), a missing dependency fails step 1, and a suite that needs a missing
# service or client fails instead of skipping (the tests check that variable themselves).
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
PKGS=${PKGS:-./...}
TIMEOUT=${TIMEOUT:-20m}
MAKE=${MAKE:-make}
export PARLEY_TOOLS=${PARLEY_TOOLS:-${GOBIN:-$HOME/.cache/parley-tools}}

work=$(mktemp -d "${TMPDIR:-/tmp}/parley-test.XXXXXX")
s3_started_pid=''
s3_used=0
services_used=0
status=0

log() { printf 'test: %s\n' "$*" >&2; }

# s3_pid prints the pid of the running versitygw that scripts/s3.sh manages, nothing if none.
s3_pid() {
	local st
	st=$(scripts/s3.sh status 2>/dev/null) || return 0
	[[ $st == "versitygw pid "* ]] && set -- $st && echo "$3"
	return 0
}

summary() {
	echo
	echo "=== make test summary"
	if [[ -s $work/skips ]]; then
		cat "$work/skips"
	else
		echo "skipped: unknown (the tests did not run to the end)"
	fi
	if [[ -s $work/deps ]]; then
		echo "not installed (the suites that need them skipped, see above):"
		sed 's/^/  /' "$work/deps"
	fi
	if [[ $status == 0 ]]; then
		echo "make test: PASS"
	else
		echo "make test: FAIL"
	fi
}

cleanup() {
	trap - EXIT INT TERM
	local s3_stopped=1
	if [[ $s3_used == 1 ]]; then
		scripts/s3.sh stop || s3_stopped=0
	fi
	if [[ $services_used == 1 ]]; then
		scripts/services.sh stop || true
	fi
	# What this run started must be gone. s3.sh stop leaves the gateway running only while another run that
	# started after this one still uses it.
	if [[ -n $s3_started_pid ]] && kill -0 "$s3_started_pid" 2>/dev/null; then
		if [[ $s3_stopped == 1 && $(s3_pid) == "$s3_started_pid" ]] && ! scripts/s3.sh status | grep -q ', 0 users'; then
			log "versitygw (pid $s3_started_pid), started by this run, is left running for another run that uses it: $(scripts/s3.sh status)"
		else
			log "versitygw (pid $s3_started_pid), started by this run, is still running after scripts/s3.sh stop"
			status=1
		fi
	fi
	summary
	rm -rf "$work"
	exit "$status"
}
trap cleanup EXIT
trap 'status=130; exit 130' INT TERM

# 1. Dependencies.
if ! scripts/test-deps.sh --report "$work/deps"; then
	status=1
	exit 1
fi

# 2. Services. A service that cannot start leaves its variable unset: its tests skip (or fail under CI).
services_used=1
if out=$(scripts/services.sh start); then :; else log "scripts/services.sh start failed; the tests needing it will skip"; fi
eval "$out"
if [[ -z ${PARLEY_TEST_S3_ENDPOINT:-} ]]; then
	before=$(s3_pid)
	if out=$(scripts/s3.sh start); then
		s3_used=1
		eval "$out"
		after=$(s3_pid)
		if [[ -n $after && $after != "$before" ]]; then
			s3_started_pid=$after
		fi
	else
		log "scripts/s3.sh start failed; the S3 tests will skip"
	fi
fi

# 3. Vet and test.
if ! $GO vet $PKGS; then
	status=1
	exit 1
fi
$GO build -o "$work/testsummary" ./scripts/testsummary || {
	status=1
	exit 1
}
$GO test -json -count=1 -timeout "$TIMEOUT" $PKGS 2>&1 | "$work/testsummary" -summary "$work/skips"
rcs=("${PIPESTATUS[@]}")
if [[ ${rcs[0]} != 0 || ${rcs[1]} != 0 ]]; then
	status=1
	exit 1
fi

# 4. Fuzz (FUZZ=0 leaves it out).
if [[ ${FUZZ:-1} != 0 ]] && ! $MAKE --no-print-directory fuzz; then
	status=1
	exit 1
fi
exit 0
