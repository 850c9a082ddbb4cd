#!/usr/bin/env bash
# peer.sh runs private Prosody and ejabberd instances for parley-bench: loopback only, own config, data,
# logs and a throwaway self-signed certificate in DIR. The Debian system services are never touched.
#
#   bench/peers/peer.sh start prosody|ejabberd DIR [PORT]   start, wait until c2s answers, print the server pid
#   bench/peers/peer.sh stop  prosody|ejabberd DIR          stop the instance started in DIR
#   bench/peers/peer.sh pid   prosody|ejabberd DIR          print the pid to measure (RSS, CPU)
#
# Default ports: Prosody 15222, ejabberd 25222. Both run as their Debian system users (Prosody refuses
# root, ejabberdctl switches to its user), so DIR is made readable and owned by that user.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cmd=${1:?usage: peer.sh start|stop|pid prosody|ejabberd DIR [PORT]}
server=${2:?server: prosody or ejabberd}
dir=${3:?DIR: the run directory}

log() { echo "peer.sh: $*" >&2; }

# as_user runs a command as a system user without touching the environment (HOME stays ours, so the
# Erlang cookie lands in DIR and not in /var/lib/ejabberd).
as_user() {
  local user=$1; shift
  if [ "$(id -un)" = "$user" ]; then "$@"; return; fi
  setpriv --reuid "$user" --regid "$user" --init-groups "$@"
}

wait_port() {
  local port=$1 pid=$2 i
  for i in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.5
  done
  return 1
}

make_cert() {
  [ -f "$dir/cert.pem" ] && return 0
  # A P-256 key: the same certificate type for every server, cheap enough not to dominate logins.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,DNS:conference.localhost" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
}

ejabberd_node() { echo "pbench$(cat "$dir/port")@localhost"; }
ejabberdctl_in() {
  HOME="$dir" as_user ejabberd env HOME="$dir" ejabberdctl -n "$(ejabberd_node)" -d "$dir/conf" \
    -s "$dir/spool" -l "$dir/logs" -f "$dir/conf/ejabberd.yml" -c "$dir/conf/ejabberdctl.cfg" "$@"
}

server_pid() {
  case $server in
    prosody) cat "$dir/prosody.pid" ;;
    ejabberd)
      # The Erlang VM (beam.smp) started for our node name, not the ejabberdctl wrapper.
      local node; node=$(ejabberd_node)
      ps -eo pid=,args= | awk -v n="$node" '$0 ~ /beam.smp/ && index($0, "-sname " n) { print $1; exit }'
      ;;
  esac
}

start() {
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  chmod 755 "$dir"
  make_cert
  case $server in
    prosody)
      local port=${4:-15222}
      echo "$port" > "$dir/port"
      mkdir -p "$dir/data" "$dir/certs"
      chown -R prosody:prosody "$dir" 2>/dev/null || true
      as_user prosody env PARLEY_BENCH_DIR="$dir" PARLEY_BENCH_PORT="$port" \
        prosody -F --config "$here/prosody.cfg.lua" >"$dir/console.log" 2>&1 &
      echo $! > "$dir/launcher.pid"
      ;;
    ejabberd)
      local port=${4:-25222}
      echo "$port" > "$dir/port"
      mkdir -p "$dir/conf" "$dir/spool" "$dir/logs"
      sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" "$here/ejabberd.yml" > "$dir/conf/ejabberd.yml"
      cp /etc/ejabberd/inetrc "$dir/conf/inetrc"
      # +sbwt none: Erlang schedulers otherwise spin while idle, which would count as server CPU in the
      # per-message figures and take cycles from the generator on a small shared machine.
      cat > "$dir/conf/ejabberdctl.cfg" <<CFG
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 +sbwt none +sbwtdcpu none +sbwtdio none"
INET_DIST_INTERFACE=127.0.0.1
ERL_EPMD_ADDRESS=127.0.0.1
EJABBERD_PID_PATH=$dir/ejabberd.pid
CONTRIB_MODULES_PATH=$dir/contrib
CONTRIB_MODULES_CONF_DIR=$dir/conf/modules.d
EJABBERD_BYPASS_WARNINGS=true
CFG
      chown -R ejabberd:ejabberd "$dir" 2>/dev/null || true
      (cd "$dir" && ejabberdctl_in foreground >"$dir/console.log" 2>&1) &
      echo $! > "$dir/launcher.pid"
      ;;
    *) log "unknown server $server"; exit 2 ;;
  esac
  if ! wait_port "$(cat "$dir/port")" "$(cat "$dir/launcher.pid")"; then
    log "$server did not open port $(cat "$dir/port"); console:"; tail -20 "$dir/console.log" >&2 || true
    exit 1
  fi
  local pid=""
  for _ in $(seq 1 20); do pid=$(server_pid 2>/dev/null || true); [ -n "$pid" ] && break; sleep 0.25; done
  [ -n "$pid" ] || { log "no pid for $server"; exit 1; }
  echo "$pid" > "$dir/server.pid"
  echo "$pid"
}

stop() {
  [ -d "$dir" ] || return 0
  local pid; pid=$(cat "$dir/server.pid" 2>/dev/null || true)
  case $server in
    ejabberd) [ -f "$dir/port" ] && ejabberdctl_in stop >/dev/null 2>&1 || true ;;
    prosody) [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true ;;
  esac
  for _ in $(seq 1 40); do
    { [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; } && break
    sleep 0.25
  done
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  local lp; lp=$(cat "$dir/launcher.pid" 2>/dev/null || true)
  if [ -n "$lp" ] && kill -0 "$lp" 2>/dev/null; then kill -TERM "$lp" 2>/dev/null || true; fi
  return 0
}

case $cmd in
  start) start "$@" ;;
  stop) stop ;;
  pid) server_pid ;;
  *) log "unknown command $cmd"; exit 2 ;;
esac
