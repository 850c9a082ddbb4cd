#!/usr/bin/env bash
# compare.sh runs the same parley-bench scenarios (connect, chat, muc, offline) with the same parameters
# against ejabberd, Prosody and, when ./cmd/parley builds, Parley, one server at a time, and writes
#   $OUT_DIR/results-DATE.json   every result
#   $OUT_DIR/compare.md          a table per scenario, a column per server
#   $OUT_DIR/latency.png, $OUT_DIR/rss-per-session.png   (gnuplot)
# Every server runs privately on 127.0.0.1 from a throwaway directory and is stopped on exit, whatever
# happens. Unattended. A small run (SESSIONS=500, RATE=1000, DURATION=10) took 3.5 minutes for all three
# servers; the defaults add registration of 2,200 accounts and longer phases, a few minutes per server, and
# every generator run is capped at 10 minutes, so a hung server cannot keep the script past its budget.
#
# Scale with environment variables:
#   SESSIONS=2000        connect: sessions held           CONNECT_RATE=200   connect: new sessions/s
#   RATE=2000            chat: offered messages/s         DURATION=20        chat, muc: seconds of sending; connect: hold
#   CHAT_USERS=200       chat: online users (pairs)       MUC_OCCUPANTS=50 MUC_SENDERS=5 MUC_RATE=100
#   OFFLINE_MESSAGES=2000 OFFLINE_USERS=200 OFFLINE_RATE=500
#   TLS=1  MECH=SCRAM-SHA-1   NOFILE=20000 (ulimit -n for servers and generator alike)
#   CONNECT_HOLD=60      connect: seconds the sessions idle before memory is read again (idle RSS per session)
#   WARMUP=100           connect: sessions logged in before the memory baseline and kept (one-time costs of a
#                        server's first logins are then not counted per session), for every server alike
#   SWEEP_RATES="4000 8000 ... 32000" SWEEP_DURATION=10   chat at each rate: the highest with p99 < 100 ms
#                       (a server's sweep stops at the first rate it does not sustain)
#   PROFILE=1            Parley: CPU profiles of chat and muc, a heap profile of the idle sessions (pprof),
#                        kept in $OUT_DIR/profiles with the figures
#   SERVERS="ejabberd prosody parley parley-nomam"   OUT_DIR=docs/bench   KEEP_WORK=1 keeps the run directory
#   SCENARIOS="connect connect-plain chat sweep muc offline"   SOURCES=127.0.0.1,127.0.0.2 (generator source addresses)
#
# The scale run of the performance issue (19,000 TLS sessions held 60 s) is the connect scenario alone:
#   SERVERS=parley SCENARIOS=connect SESSIONS=19000 CONNECT_RATE=150 SOURCES=127.0.0.1,127.0.0.2 \
#     OUT_DIR=docs/bench/scale scripts/compare.sh
#
# parley runs with its defaults: every chat message goes to both users' archives (MAM, durable before the
# server acknowledges). parley-nomam turns the archives off (archive.retention: 0, muc.archive: false), as the peers' stock
# configurations have no MAM: that pair is the like-for-like comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SESSIONS=${SESSIONS:-2000}
CONNECT_RATE=${CONNECT_RATE:-200}
RATE=${RATE:-2000}
DURATION=${DURATION:-20}
CHAT_USERS=${CHAT_USERS:-200}
MUC_OCCUPANTS=${MUC_OCCUPANTS:-50}
MUC_SENDERS=${MUC_SENDERS:-5}
MUC_RATE=${MUC_RATE:-100}
OFFLINE_MESSAGES=${OFFLINE_MESSAGES:-2000}
OFFLINE_USERS=${OFFLINE_USERS:-200}
OFFLINE_SENDERS=${OFFLINE_SENDERS:-2}
OFFLINE_RATE=${OFFLINE_RATE:-500}
TLS=${TLS:-1}
MECH=${MECH:-SCRAM-SHA-1}
NOFILE=${NOFILE:-20000}
SERVERS=${SERVERS:-ejabberd prosody parley parley-nomam}
CONNECT_HOLD=${CONNECT_HOLD:-60}
SWEEP_RATES=${SWEEP_RATES:-4000 8000 12000 16000 20000 24000 28000 32000}
SWEEP_DURATION=${SWEEP_DURATION:-10}
WARMUP=${WARMUP:-100}
PROFILE=${PROFILE:-1}
SCENARIOS=${SCENARIOS:-connect connect-plain chat sweep muc offline}
SOURCES=${SOURCES:-}
want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }
OUT_DIR=${OUT_DIR:-docs/bench}

log() { echo "compare.sh: $*" >&2; }

work=$(mktemp -d /tmp/parley-compare.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/results" "$work/bin"
started=()   # "server dir" of every instance started, for the trap

cleanup() {
  local status=$?
  for entry in "${started[@]}"; do
    stop_server ${entry} || true
  done
  if [ "${KEEP_WORK:-0}" = 1 ]; then log "run directory kept: $work"; else rm -rf "$work"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The same open-file limit for every server and for the generator (each inherits it from this shell).
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$NOFILE" -gt "$hard" ]; then NOFILE=$hard; fi
ulimit -n "$NOFILE"
log "ulimit -n $(ulimit -n)"

go build -o "$work/bin/parley-bench" ./cmd/parley-bench
bench="$work/bin/parley-bench"

# What a fresh machine lacks: the peers under test (Debian packages; their system services are not used) and
# gnuplot for the charts.
need=()
for s in $SERVERS; do
  case $s in
    prosody) command -v prosody >/dev/null || need+=(prosody) ;;
    ejabberd) command -v ejabberdctl >/dev/null || need+=(ejabberd) ;;
  esac
done
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need[*]} (Debian packages)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >/dev/null 2>&1 ||
      log "could not install ${need[*]}; servers without their package are skipped"
  else
    log "missing ${need[*]}: install them (apt-get install ${need[*]}); servers without their package are skipped"
  fi
fi

# Accounts: scenarios share users 0.. (each closes its sessions before the next starts); the offline
# scenario gets its own range above them so that no recipient can still be online from an earlier one.
# The connect scenarios' warm-up sessions use the WARMUP accounts after SESSIONS.
base_users=$((SESSIONS + WARMUP))
for n in "$CHAT_USERS" "$MUC_OCCUPANTS"; do [ "$n" -gt "$base_users" ] && base_users=$n; done
offline_first=$base_users
accounts=$((base_users + OFFLINE_SENDERS + OFFLINE_USERS))

port_of() { case $1 in prosody) echo 15222 ;; ejabberd) echo 25222 ;; parley) echo 35222 ;; parley-nomam) echo 45222 ;; esac; }
# Parley's metrics listener, which also serves pprof in these runs.
metrics_port_of() { echo $(($(port_of "$1") + 68)); }

wait_port() {
  local port=$1 pid=$2
  for _ in $(seq 1 120); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}

# start_server prints the pid to measure; it returns non-zero when the server cannot run (Parley not
# ready yet), and the server is then skipped.
start_server() {
  local server=$1 dir=$2
  if (exec 3<>"/dev/tcp/127.0.0.1/$(port_of "$server")") 2>/dev/null; then
    log "$server: port $(port_of "$server") is already taken by another process; not measuring that"
    return 1
  fi
  case $server in
    prosody|ejabberd)
      started+=("$server $dir")
      bench/peers/peer.sh start "$server" "$dir" "$(port_of "$server")"
      ;;
    parley|parley-nomam)
      # Parley hook: used as soon as `go build ./cmd/parley` succeeds. The flags follow cmd/parley as of
      # this writing (`parley serve -config FILE`, `-set key=value`, `-ready-file`); a key that does not
      # exist makes parley exit, and the server is skipped rather than run with a default port.
      # Parley's defaults already serve MUC on conference.localhost and keep offline messages, like the
      # peers' configurations here. Accounts come from XEP-0077 (register.open) as for the peers.
      # PARLEY_BIN measures a binary built elsewhere (scripts/ab.sh compares two commits this way).
      if [ -n "${PARLEY_BIN:-}" ] && [ ! -x "$work/bin/parley" ]; then cp "$PARLEY_BIN" "$work/bin/parley"; fi
      if [ ! -x "$work/bin/parley" ] && ! go build -o "$work/bin/parley" ./cmd/parley 2>"$work/parley-build.log"; then
        log "parley does not build yet (see below); skipped"; tail -5 "$work/parley-build.log" >&2
        return 1
      fi
      mkdir -p "$dir"
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,DNS:conference.localhost" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
      cat > "$dir/parley.yaml" <<YAML
domain: localhost
data_dir: $dir/data
log:
  level: warn
listen:
  c2s: 127.0.0.1:$(port_of "$server")
  c2s_tls: "off"
  https: "off"
  http: "off"
  metrics: 127.0.0.1:$(metrics_port_of "$server")
  pprof: true
tls:
  cert_file: $dir/cert.pem
  key_file: $dir/key.pem
auth:
  scram_iterations: 4096
# As for the peers: no per-IP limits or byte-rate shaping, 256 KiB stanzas, open in-band registration.
c2s:
  allow_plaintext: true # for connect-plain; with TLS=1 the generator negotiates STARTTLS all the same
  max_stanza: 262144
  max_conns_per_ip: -1
  conn_rate_per_ip: -1
  rate_bytes: -1
register:
  open: true
  per_ip: -1
YAML
      if [ "$server" = parley-nomam ]; then printf 'archive:\n  retention: 0s\nmuc:\n  archive: false\n' >> "$dir/parley.yaml"; fi
      # A binary from before a key existed (scripts/ab.sh measures older commits) refuses the key: leave it out.
      grep -q conn_rate_per_ip "$work/bin/parley" || sed -i '/conn_rate_per_ip/d' "$dir/parley.yaml"
      # No PARLEY_* variable of the caller's may change the run.
      env -u PARLEY_CONFIG $(env | awk -F= '/^PARLEY_/ {print "-u " $1}') \
        "$work/bin/parley" serve -config "$dir/parley.yaml" -ready-file "$dir/ready.json" >"$dir/console.log" 2>&1 &
      local pid=$!
      echo "$pid" > "$dir/server.pid"
      started+=("$server $dir")
      if ! wait_port "$(port_of "$server")" "$pid"; then
        log "parley did not start; console:"; tail -20 "$dir/console.log" >&2
        return 1
      fi
      echo "$pid"
      ;;
  esac
}

stop_server() {
  local server=$1 dir=$2
  case $server in
    prosody|ejabberd) bench/peers/peer.sh stop "$server" "$dir" ;;
    parley|parley-nomam)
      local pid; pid=$(cat "$dir/server.pid" 2>/dev/null || true)
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" || true
      fi
      ;;
  esac
}

# set_common sets the generator flags every scenario of $server (on $port, pid $pid) shares.
set_common() {
  common=(-server "127.0.0.1:$port" -domain localhost $tls_flag -mech "$MECH" -label "$server" -server-pid "$pid")
  if [ -n "$SOURCES" ]; then common+=(-sources "$SOURCES"); fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
tls_flag=""
[ "$TLS" = 1 ] && tls_flag="-tls"
ran=()
for server in $SERVERS; do
  dir="$work/$server"
  log "== $server"
  # Not in $(...): start_server records what it started for the trap, which a subshell would lose.
  if ! start_server "$server" "$dir" >"$work/$server.pid"; then
    log "$server skipped"
    continue
  fi
  pid=$(tail -1 "$work/$server.pid")
  ran+=("$server")
  port=$(port_of "$server")
  set_common
  log "$server: registering $accounts accounts (XEP-0077)"
  # Every generator run is bounded (timeout) so that a server that hangs cannot stall an unattended run.
  timeout 600 "$bench" register "${common[@]}" -users "$accounts" -register-workers 8 >&2 || log "$server: registration had failures"
  run_scenario() {
    local name=$1; shift
    log "$server: $name"
    timeout 600 "$bench" "$name" "${common[@]}" -json "$work/results/$server-$name.json" "$@" >"$work/results/$server-$name.txt" 2>&1 ||
      log "$server: $name reported losses or failures (see the table)"
    cat "$work/results/$server-$name.txt" >&2
    sleep 2
  }
  # profile KIND DELAY SECONDS: in the background, after DELAY s, a pprof profile of Parley into
  # $OUT_DIR/profiles/SERVER-KIND.pprof (cpu for SECONDS s, or heap).
  profile() {
    case $server in parley*) ;; *) return 0 ;; esac
    [ "$PROFILE" = 1 ] || return 0
    local kind=$1 delay=$2 secs=$3 url
    url="http://127.0.0.1:$(metrics_port_of "$server")/debug/pprof"
    mkdir -p "$OUT_DIR/profiles"
    case $kind in
      *heap) url="$url/heap" ;;
      *) url="$url/profile?seconds=$secs" ;;
    esac
    (sleep "$delay"; curl -sf -o "$OUT_DIR/profiles/$server-$kind.pprof" "$url" || log "$server: no $kind profile") &
  }
  ramp=$(( (SESSIONS + CONNECT_RATE - 1) / CONNECT_RATE ))
  if want connect; then
    profile connect-heap $((ramp + 4 + CONNECT_HOLD - 5)) 0
    run_scenario connect -sessions "$SESSIONS" -warmup "$WARMUP" -rate "$CONNECT_RATE" -hold "${CONNECT_HOLD}s" -settle 2s
  fi
  if want connect-plain; then
    # The same without TLS (plaintext c2s on loopback), reported as connect-plain. The server is restarted
    # first: a VM that kept the memory of the connect scenario would make the new sessions look free.
    if want connect; then
      stop_server "$server" "$dir"
      sleep 1
      if ! start_server "$server" "$dir" >"$work/$server.pid"; then
        log "$server: did not restart"
        continue
      fi
      pid=$(tail -1 "$work/$server.pid")
      set_common
    fi
    plain=()
    for a in "${common[@]}"; do [ "$a" != -tls ] && plain+=("$a"); done
    log "$server: connect without TLS"
    timeout 600 "$bench" connect "${plain[@]}" -as connect-plain -json "$work/results/$server-connect-plain.json" \
      -sessions "$SESSIONS" -warmup "$WARMUP" -rate "$CONNECT_RATE" -hold "${CONNECT_HOLD}s" -settle 2s \
      >"$work/results/$server-connect-plain.txt" 2>&1 || log "$server: connect without TLS reported failures"
    grep -E 'sessions_ok|per_session|per_idle' "$work/results/$server-connect-plain.txt" >&2 || true
    sleep 2
  fi
  login=$(( (CHAT_USERS + 199) / 200 + 2 ))
  if want chat; then
    profile chat-cpu "$login" $((DURATION - 2))
    run_scenario chat -users "$CHAT_USERS" -rate "$RATE" -duration "${DURATION}s"
  fi
  want sweep || SWEEP_RATES_RUN=""
  for rate in ${SWEEP_RATES_RUN-$SWEEP_RATES}; do
    log "$server: chat sweep at $rate msg/s"
    timeout 600 "$bench" chat -sweep "${common[@]}" -json "$work/results/$server-sweep-$rate.json" -users "$CHAT_USERS" \
      -rate "$rate" -duration "${SWEEP_DURATION}s" >"$work/results/$server-sweep-$rate.txt" 2>&1 ||
      log "$server: chat at $rate msg/s reported losses or failures"
    grep -E 'delivered|lost |e2e|server_cpu_s_per' "$work/results/$server-sweep-$rate.txt" >&2 || true
    # A rate this server does not sustain (a loss, or p99 of 100 ms or more) ends its sweep: higher ones
    # would not be sustained either, and each would cost a drain timeout.
    if ! awk '$1 == "lost" && $2 > 0 {bad = 1} $1 == "e2e" && $6 + 0 >= 100 {bad = 1} END {exit bad}' \
      "$work/results/$server-sweep-$rate.txt"; then
      log "$server: $rate msg/s not sustained; the sweep stops here"
      break
    fi
    sleep 2
  done
  if want muc; then
    profile muc-cpu $(( (MUC_OCCUPANTS + 199) / 200 + 3 )) $((DURATION - 2))
    run_scenario muc -occupants "$MUC_OCCUPANTS" -senders "$MUC_SENDERS" -rate "$MUC_RATE" -duration "${DURATION}s"
  fi
  want offline && run_scenario offline -first-user "$offline_first" -messages "$OFFLINE_MESSAGES" -users "$OFFLINE_USERS" \
    -senders "$OFFLINE_SENDERS" -rate "$OFFLINE_RATE" -drain 30s -settle 2s
  stop_server "$server" "$dir"
done

if [ ${#ran[@]} -eq 0 ]; then log "no server ran"; exit 1; fi
shopt -s nullglob
results=("$work"/results/*.json)
title="Development machine: $(nproc) cores shared with other work, $(uname -sr); servers: ${ran[*]}; \
SESSIONS=$SESSIONS CONNECT_RATE=$CONNECT_RATE RATE=$RATE DURATION=$DURATION CHAT_USERS=$CHAT_USERS \
MUC_OCCUPANTS=$MUC_OCCUPANTS MUC_SENDERS=$MUC_SENDERS MUC_RATE=$MUC_RATE OFFLINE_MESSAGES=$OFFLINE_MESSAGES \
CONNECT_HOLD=$CONNECT_HOLD WARMUP=$WARMUP SWEEP_RATES=\"$SWEEP_RATES\" SWEEP_DURATION=$SWEEP_DURATION \
OFFLINE_USERS=$OFFLINE_USERS TLS=$TLS MECH=$MECH, ulimit -n $(ulimit -n); load average at start $load_start, \
at end $(cut -d' ' -f1-3 /proc/loadavg)."
"$bench" report -out "$OUT_DIR" -title "$title" "${results[@]}"
if command -v gnuplot >/dev/null; then
  gnuplot -e "dir='$OUT_DIR'" bench/charts.gp && log "charts: $OUT_DIR/latency.png $OUT_DIR/rss-per-session.png"
else
  log "gnuplot not available: no charts (apt-get install gnuplot-nox)"
fi
rm -f "$OUT_DIR"/latency-*.dat "$OUT_DIR"/rss.dat
log "done: $OUT_DIR/compare.md"
