#!/usr/bin/env bash
# test-deps.sh: install what the test suites need, the same way for `make test` (scripts/test.sh) and CI
# (.ci/run), and say what is still missing.
#
#   scripts/test-deps.sh [--report FILE]    # install what is missing when allowed, then report
#   scripts/test-deps.sh --check             # install nothing; only report
#
# What the suites need, how it is checked, and what provides it:
#
#   psql                  command -v psql             apt: postgresql postgresql-client  (storage/pg; scripts/services.sh)
#   redis-server          command -v redis-server     apt: redis-server                  (scripts/services.sh)
#   python3-slixmpp       /usr/bin/python3 -c 'import slixmpp'   apt: python3-slixmpp     (conformance/peers_test.go)
#   go-sendxmpp           command -v go-sendxmpp      apt: go-sendxmpp                   (conformance/peers_test.go)
#   chromium              -x $PARLEY_TEST_CHROMIUM or /usr/bin/chromium   apt: chromium  (conformance/converse_test.go)
#   node, npm             command -v node npm         apt: nodejs npm                    (xmpp.js, Converse.js)
#   conformance/web/node_modules   npm ci --prefix conformance/web (the versions package-lock.json pins)
#
# Debian packages are installed with apt-get when running as root with apt-get present (apt-get install; on
# failure apt-get update and once more, then one package at a time so that the report names the one that
# failed). node_modules is installed with npm ci whenever npm is there, and again only when package-lock.json
# changes (a stamp in node_modules records its hash). PARLEY_NO_INSTALL=1 (or PARLEY_SERVICES_NO_INSTALL=1,
# which scripts/services.sh also honours) installs nothing.
#
# The versitygw S3 gateway is not installed here: scripts/s3.sh builds it with `go install` when it starts it.
#
# Logs go to stderr. Each missing dependency is one line "MISSING <name>: <why> (<what uses it>)" on stderr and
# in the --report file. Exit status: 0, or 1 when something is missing and PARLEY_REQUIRE_SERVICES=1 (CI, where
# a suite that cannot run is a failure).
set -uo pipefail
cd "$(dirname "$0")/.."

report=''
check_only=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--report)
		report=$2
		shift 2
		;;
	--check)
		check_only=1
		shift
		;;
	*)
		echo "usage: $0 [--check] [--report FILE]" >&2
		exit 2
		;;
	esac
done

log() { printf 'test-deps: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

chromium=${PARLEY_TEST_CHROMIUM:-/usr/bin/chromium}

# name|check (shell)|Debian packages|what needs it
deps=(
	"psql|have psql|postgresql postgresql-client|the PostgreSQL storage suite, storage/pg"
	"redis-server|have redis-server|redis-server|the Redis tests"
	"python3-slixmpp|/usr/bin/python3 -c 'import slixmpp' 2>/dev/null|python3-slixmpp|the slixmpp conformance tests"
	"go-sendxmpp|have go-sendxmpp|go-sendxmpp|the go-sendxmpp conformance tests"
	"chromium|[ -x \"$chromium\" ]|chromium|the Converse.js browser test"
	"node|have node && have npm|nodejs npm|the xmpp.js and Converse.js tests"
)

install_allowed() {
	[[ $check_only == 0 && ${PARLEY_NO_INSTALL:-} != 1 && ${PARLEY_SERVICES_NO_INSTALL:-} != 1 ]]
}

# why_no_apt prints why Debian packages cannot be installed here, nothing when they can.
why_no_apt() {
	if [[ $check_only == 1 ]]; then
		echo "--check installs nothing"
	elif [[ ${PARLEY_NO_INSTALL:-} == 1 || ${PARLEY_SERVICES_NO_INSTALL:-} == 1 ]]; then
		echo "PARLEY_NO_INSTALL=1"
	elif [[ $(id -u) != 0 ]]; then
		echo "not root"
	elif ! have apt-get; then
		echo "no apt-get"
	fi
}

apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
	apt-get update -qq >/dev/null 2>&1
	apt-get install -y -qq "$@" >/dev/null 2>&1
}

missing=()
add_missing() { missing+=("MISSING $1: $2 ($3)"); }

# Debian packages: one apt-get for everything missing.
need_pkgs=()
for d in "${deps[@]}"; do
	IFS='|' read -r name check pkgs _ <<<"$d"
	eval "$check" || need_pkgs+=($pkgs)
done
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
	no_apt=$(why_no_apt)
	if [[ -z $no_apt ]]; then
		log "installing ${need_pkgs[*]}"
		if ! apt_install "${need_pkgs[@]}"; then
			log "apt-get install of them all failed; trying one at a time"
			for p in "${need_pkgs[@]}"; do
				apt_install "$p" || log "apt-get install $p failed"
			done
		fi
	else
		log "not installing ${need_pkgs[*]}: $no_apt"
	fi
fi
for d in "${deps[@]}"; do
	IFS='|' read -r name check pkgs what <<<"$d"
	if ! eval "$check"; then
		no_apt=$(why_no_apt)
		add_missing "$name" "${no_apt:+$no_apt; }install it with apt-get install $pkgs" "$what"
	fi
done

# npm packages of the web peers.
web=conformance/web
lock_hash=$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)
stamp=$web/node_modules/.parley-lock-sha256
if [[ -f $stamp && $(cat "$stamp") == "$lock_hash" ]]; then
	: # installed from this package-lock.json
elif ! have npm; then
	add_missing "$web/node_modules" "npm is not installed" "the xmpp.js and Converse.js tests"
elif ! install_allowed; then
	add_missing "$web/node_modules" "$(why_no_apt); install it with npm ci --prefix $web" "the xmpp.js and Converse.js tests"
else
	log "npm ci --prefix $web"
	npm_log=$(mktemp "${TMPDIR:-/tmp}/parley-npm-ci.XXXXXX")
	if npm ci --prefix "$web" --no-audit --no-fund >"$npm_log" 2>&1; then
		echo "$lock_hash" >"$stamp"
	else
		log "npm ci failed:"
		tail -n 20 "$npm_log" >&2
		add_missing "$web/node_modules" "npm ci --prefix $web failed (no registry access?)" "the xmpp.js and Converse.js tests"
	fi
	rm -f "$npm_log"
fi

if [[ -n $report ]]; then
	: >"$report"
	for m in "${missing[@]}"; do echo "$m" >>"$report"; done
fi
if [[ ${#missing[@]} -eq 0 ]]; then
	log "everything the suites need is installed"
	exit 0
fi
for m in "${missing[@]}"; do log "$m"; done
if [[ ${PARLEY_REQUIRE_SERVICES:-} == 1 ]]; then
	log "PARLEY_REQUIRE_SERVICES=1: every suite must run"
	exit 1
fi
exit 0
