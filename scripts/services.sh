#!/usr/bin/env bash
# services.sh: make PostgreSQL and Redis reachable for Parley's tests, and put them back afterwards.
#
#   eval "$(scripts/services.sh start)"   # prints export PARLEY_TEST_PG_DSN=... and PARLEY_TEST_REDIS_ADDR=...
#   scripts/services.sh stop              # stops only what start started
#   scripts/services.sh status            # shows the state file
#
# start uses, in this order, for PostgreSQL: a server already answering on 127.0.0.1:$PARLEY_SERVICES_PG_PORT
# (default 5432) as user postgres without a password; the machine's Debian cluster on that port, started with
# pg_ctlcluster (cluster $PARLEY_SERVICES_PG_CLUSTER, default main); a throwaway cluster (initdb, trust auth) in a temporary directory on a free port. It then
# creates the database parley_test if it is absent. For Redis: a server answering on
# 127.0.0.1:$PARLEY_SERVICES_REDIS_PORT (default 6379), else a throwaway redis-server on a free port, with no
# persistence. Missing server packages are installed with apt-get when running as root (unless
# PARLEY_SERVICES_NO_INSTALL=1).
#
# Only the export lines go to stdout; everything else goes to stderr. start exits non-zero if a service could
# not be made reachable (the exports of the others are still printed).
#
# What start started is written to a state file in $PARLEY_SERVICES_STATE_DIR (default
# ${TMPDIR:-/tmp}/parley-services), with a count of the starts not yet stopped: several test runs can share
# the services, and the last stop stops them (stop --force ignores the count).
set -euo pipefail

PG_PORT=${PARLEY_SERVICES_PG_PORT:-5432}
PG_CLUSTER=${PARLEY_SERVICES_PG_CLUSTER:-main}
REDIS_PORT=${PARLEY_SERVICES_REDIS_PORT:-6379}
STATE_DIR=${PARLEY_SERVICES_STATE_DIR:-${TMPDIR:-/tmp}/parley-services}
STATE=$STATE_DIR/state
TEST_DB=parley_test

log() { printf 'services: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- state file: key=value lines -------------------------------------------------------------------------

declare -A ST=()

state_load() {
	ST=()
	[[ -f $STATE ]] || return 0
	local k v
	while IFS='=' read -r k v; do
		[[ -n $k ]] && ST[$k]=$v
	done <"$STATE"
}

state_save() {
	local tmp=$STATE.tmp k
	: >"$tmp"
	for k in "${!ST[@]}"; do
		printf '%s=%s\n' "$k" "${ST[$k]}" >>"$tmp"
	done
	mv "$tmp" "$STATE"
}

lock() {
	mkdir -p "$STATE_DIR"
	if have flock; then
		# Daemons started under the lock must not inherit fd 9, or they would hold the lock for their lifetime:
		# every command that starts one closes it (9>&-).
		exec 9>"$STATE_DIR/lock"
		flock 9
	fi
}

# --- probes ------------------------------------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000)) # below the ephemeral range (see s3.sh)
		if ! port_open "$p"; then
			echo "$p"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

# pg_ok PORT: a PostgreSQL on 127.0.0.1:PORT accepts user postgres (trust) and answers a query.
pg_ok() {
	if have psql; then
		psql "postgresql://postgres@127.0.0.1:$1/postgres?sslmode=disable&connect_timeout=3" -XAtqc 'SELECT 1' \
			>/dev/null 2>&1
	elif have pg_isready; then
		pg_isready -q -h 127.0.0.1 -p "$1" -U postgres -t 3
	else
		return 1
	fi
}

# wait_for TRIES CMD...: run CMD every half second until it succeeds.
wait_for() {
	local tries=$1 i
	shift
	for ((i = 0; i < tries; i++)); do
		"$@" && return 0
		sleep 0.5
	done
	return 1
}

redis_ok() {
	local reply=''
	if have redis-cli; then
		reply=$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) || true
	else
		reply=$(
			exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
			printf 'PING\r\n' >&3
			IFS= read -r -t 3 line <&3 || true
			printf '%s' "${line%$'\r'}"
		) 2>/dev/null || true
	fi
	[[ $reply == PONG || $reply == +PONG ]]
}

# --- packages ----------------------------------------------------------------------------------------------

install_pkgs() {
	if [[ ${PARLEY_SERVICES_NO_INSTALL:-} == 1 ]]; then
		log "packages $* are missing and PARLEY_SERVICES_NO_INSTALL=1"
		return 1
	fi
	if [[ $(id -u) != 0 ]] || ! have apt-get; then
		log "packages $* are missing; install them (apt-get install -y $*)"
		return 1
	fi
	log "installing $*"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "$@" >&2 9>&- || { apt-get update -q >&2 && apt-get install -y -q "$@" >&2 9>&-; }
}

# pg_bindir prints the directory of the newest installed PostgreSQL server binaries.
pg_bindir() {
	local d
	d=$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1)
	if [[ -n $d && -x $d/initdb ]]; then
		echo "$d"
	elif have initdb; then
		dirname "$(command -v initdb)"
	elif have pg_config && [[ -x $(pg_config --bindir)/initdb ]]; then
		pg_config --bindir
	else
		return 1
	fi
}

# --- PostgreSQL --------------------------------------------------------------------------------------------

# as_user USER CMD...: run CMD as USER (the same user if it is us).
as_user() {
	local user=$1
	shift
	if [[ $user == "$(id -un)" ]]; then
		"$@"
	elif have runuser; then
		runuser -u "$user" -- "$@"
	else
		su "$user" -s /bin/sh -c "$(printf '%q ' "$@")"
	fi
}

# start_pg_cluster: start the machine's Debian cluster named PG_CLUSTER that listens on PG_PORT.
start_pg_cluster() {
	have pg_ctlcluster || return 1
	[[ -d /etc/postgresql ]] || return 1
	local conf ver port
	for conf in /etc/postgresql/*/"$PG_CLUSTER"/postgresql.conf; do
		[[ -f $conf ]] || continue
		ver=${conf#/etc/postgresql/}
		ver=${ver%%/*}
		port=$(sed -n 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' "$conf" | tail -n 1)
		if [[ ${port:-5432} != "$PG_PORT" ]]; then
			log "cluster $ver/$PG_CLUSTER listens on ${port:-5432}, not $PG_PORT"
			continue
		fi
		log "starting cluster $ver/$PG_CLUSTER"
		if pg_ctlcluster --skip-systemctl-redirect "$ver" "$PG_CLUSTER" start >&2 9>&- && wait_for 20 pg_ok "$PG_PORT"; then
			ST[pg]=cluster
			ST[pg_cluster]=$ver/$PG_CLUSTER
			ST[pg_port]=$PG_PORT
			return 0
		fi
		log "cluster $ver/$PG_CLUSTER did not start"
	done
	return 1
}

# start_pg_throwaway: initdb a new cluster in a temporary directory and start it on a free port.
start_pg_throwaway() {
	local bindir user dir port
	bindir=$(pg_bindir) || return 1
	user=$(id -un)
	if [[ $(id -u) == 0 ]]; then
		# initdb refuses to run as root.
		user=postgres
		id "$user" >/dev/null 2>&1 || user=nobody
	fi
	port=$(free_port) || return 1
	dir=$(mktemp -d "${TMPDIR:-/tmp}/parley-pg.XXXXXX")
	chown "$user" "$dir" 2>/dev/null || true
	if ! as_user "$user" test -w "$dir"; then
		# $TMPDIR may be private to us; /tmp is not.
		rm -rf "$dir"
		dir=$(mktemp -d /tmp/parley-pg.XXXXXX)
		chown "$user" "$dir" 2>/dev/null || true
	fi
	chmod 700 "$dir"
	log "creating a throwaway cluster in $dir (user $user, port $port)"
	if ! as_user "$user" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
		>"$dir/initdb.log" 2>&1 &&
		! as_user "$user" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C \
			>"$dir/initdb.log" 2>&1; then
		log "initdb failed:"
		cat "$dir/initdb.log" >&2
		rm -rf "$dir"
		return 1
	fi
	if ! as_user "$user" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-p $port -c listen_addresses=127.0.0.1 -k $dir" start >&2 9>&-; then
		log "the throwaway cluster did not start:"
		tail -n 20 "$dir/server.log" >&2 || true
		rm -rf "$dir"
		return 1
	fi
	ST[pg]=throwaway
	ST[pg_port]=$port
	ST[pg_dir]=$dir
	ST[pg_user]=$user
	ST[pg_bindir]=$bindir
	wait_for 20 pg_ok "$port"
}

ensure_pg() {
	# What an earlier start set up and is still running.
	if [[ -n ${ST[pg_port]:-} ]] && pg_ok "${ST[pg_port]}"; then
		log "PostgreSQL: reusing ${ST[pg]} on port ${ST[pg_port]}"
		return 0
	fi
	if [[ ${ST[pg]:-} == throwaway && -n ${ST[pg_dir]:-} ]]; then
		log "PostgreSQL: the throwaway cluster in ${ST[pg_dir]} is gone"
		stop_pg
	fi
	unset 'ST[pg]' 'ST[pg_port]' 'ST[pg_cluster]' 'ST[pg_dir]' 'ST[pg_user]' 'ST[pg_bindir]'

	if ! have psql && ! have pg_isready; then
		install_pkgs postgresql-client || true
	fi
	if pg_ok "$PG_PORT"; then
		log "PostgreSQL: using the server on 127.0.0.1:$PG_PORT"
		ST[pg]=external
		ST[pg_port]=$PG_PORT
		return 0
	fi
	log "PostgreSQL: nothing answers on 127.0.0.1:$PG_PORT"
	start_pg_cluster && return 0
	if ! pg_bindir >/dev/null; then
		install_pkgs postgresql || return 1
		# The package may have created and started a cluster of its own.
		pg_ok "$PG_PORT" && { ST[pg]=external; ST[pg_port]=$PG_PORT; return 0; }
		start_pg_cluster && return 0
	fi
	start_pg_throwaway
}

ensure_test_db() {
	local url="postgresql://postgres@127.0.0.1:${ST[pg_port]}/postgres?sslmode=disable"
	if [[ $(psql "$url" -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$TEST_DB'") != 1 ]]; then
		log "creating database $TEST_DB"
		# Another run may create it at the same moment.
		psql "$url" -Xqc "CREATE DATABASE $TEST_DB" >&2 ||
			[[ $(psql "$url" -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$TEST_DB'") == 1 ]]
	fi
}

stop_pg() {
	case ${ST[pg]:-} in
	cluster)
		log "stopping cluster ${ST[pg_cluster]}"
		pg_ctlcluster --skip-systemctl-redirect "${ST[pg_cluster]%/*}" "${ST[pg_cluster]#*/}" stop >&2 || true
		;;
	throwaway)
		log "stopping the throwaway cluster in ${ST[pg_dir]}"
		if [[ -f ${ST[pg_dir]}/data/postmaster.pid ]]; then
			as_user "${ST[pg_user]}" "${ST[pg_bindir]}/pg_ctl" -D "${ST[pg_dir]}/data" -m fast -w stop >&2 || true
		fi
		case ${ST[pg_dir]} in */parley-pg.*) rm -rf "${ST[pg_dir]}" ;; esac
		;;
	esac
}

# --- Redis -------------------------------------------------------------------------------------------------

start_redis_throwaway() {
	local port dir pid
	if ! have redis-server; then
		install_pkgs redis-server || return 1
	fi
	port=$(free_port) || return 1
	dir=$(mktemp -d "${TMPDIR:-/tmp}/parley-redis.XXXXXX")
	log "starting a throwaway redis-server on port $port ($dir)"
	if ! redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
		--dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2 9>&-; then
		rm -rf "$dir"
		return 1
	fi
	if ! wait_for 20 redis_ok "$port"; then
		log "the throwaway redis-server does not answer:"
		tail -n 20 "$dir/redis.log" >&2 || true
		if [[ -f $dir/redis.pid ]]; then
			kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
		fi
		rm -rf "$dir"
		return 1
	fi
	pid=$(cat "$dir/redis.pid")
	ST[redis]=throwaway
	ST[redis_port]=$port
	ST[redis_dir]=$dir
	ST[redis_pid]=$pid
}

ensure_redis() {
	if [[ -n ${ST[redis_port]:-} ]] && redis_ok "${ST[redis_port]}"; then
		log "Redis: reusing ${ST[redis]} on port ${ST[redis_port]}"
		return 0
	fi
	if [[ ${ST[redis]:-} == throwaway ]]; then
		log "Redis: the throwaway server on port ${ST[redis_port]} is gone"
		stop_redis
	fi
	unset 'ST[redis]' 'ST[redis_port]' 'ST[redis_dir]' 'ST[redis_pid]'
	if redis_ok "$REDIS_PORT"; then
		log "Redis: using the server on 127.0.0.1:$REDIS_PORT"
		ST[redis]=external
		ST[redis_port]=$REDIS_PORT
		return 0
	fi
	log "Redis: nothing answers on 127.0.0.1:$REDIS_PORT"
	start_redis_throwaway
}

stop_redis() {
	[[ ${ST[redis]:-} == throwaway ]] || return 0
	local pid=${ST[redis_pid]:-}
	log "stopping the throwaway redis-server on port ${ST[redis_port]} (pid $pid)"
	# Only the process we started: the pid must still be a redis-server.
	if [[ -n $pid ]] && grep -q redis /proc/"$pid"/comm 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 20); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
	fi
	case ${ST[redis_dir]:-} in */parley-redis.*) rm -rf "${ST[redis_dir]}" ;; esac
}

# --- commands ----------------------------------------------------------------------------------------------

cmd_start() {
	lock
	state_load
	local failed=0
	if ensure_pg && ensure_test_db; then
		printf "export PARLEY_TEST_PG_DSN='postgres://postgres@127.0.0.1:%s/%s?sslmode=disable'\n" \
			"${ST[pg_port]}" "$TEST_DB"
	else
		log "PostgreSQL is not available"
		failed=1
	fi
	if ensure_redis; then
		printf "export PARLEY_TEST_REDIS_ADDR='127.0.0.1:%s'\n" "${ST[redis_port]}"
	else
		log "Redis is not available"
		failed=1
	fi
	ST[refs]=$((${ST[refs]:-0} + 1))
	state_save
	return "$failed"
}

cmd_stop() {
	lock
	state_load
	if [[ ! -f $STATE ]]; then
		log "nothing to stop"
		return 0
	fi
	local refs=$((${ST[refs]:-1} - 1))
	if [[ ${1:-} != --force && $refs -gt 0 ]]; then
		ST[refs]=$refs
		state_save
		log "still in use by $refs other start(s); not stopping (stop --force to stop anyway)"
		return 0
	fi
	stop_pg
	stop_redis
	rm -f "$STATE"
}

cmd_status() {
	if [[ -f $STATE ]]; then
		cat "$STATE"
	else
		echo "no state in $STATE_DIR"
	fi
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status ;;
*)
	echo "usage: $0 start|stop [--force]|status" >&2
	exit 2
	;;
esac
