#!/usr/bin/env bash
# ab.sh: side-by-side A/B of two Parley binaries with the load generator, interleaved (A B A B ...), so that
# the machine's drift hits both alike.
#
#   scripts/ab.sh BIN_A BIN_B        # e.g. binaries built from the commit before a change and after it
#
# Each round runs scripts/compare.sh once per binary with SERVERS (default "parley parley-nomam": the default
# configuration with both archives on, and both archives off) and SCENARIOS (default "chat muc"), and keeps the
# results in $OUT/A-N and $OUT/B-N. At the end it prints, per server and scenario, the server CPU per 1,000
# messages (chat) or deliveries (muc) and the e2e p99 of every run, and B's median over A's median.
# ROUNDS (default 2), OUT (default a temporary directory) and compare.sh's variables (RATE, DURATION,
# CHAT_USERS, MUC_OCCUPANTS, ...) apply. Every generator run is bounded by compare.sh's timeouts.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: scripts/ab.sh BIN_A BIN_B" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2")
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-$(mktemp -d /tmp/parley-ab.XXXXXX)}
mkdir -p "$OUT"
export SERVERS=${SERVERS:-parley parley-nomam}
export SCENARIOS=${SCENARIOS:-chat muc}
export SESSIONS=${SESSIONS:-0} WARMUP=${WARMUP:-0} OFFLINE_USERS=${OFFLINE_USERS:-0} OFFLINE_SENDERS=${OFFLINE_SENDERS:-0}
export PROFILE=${PROFILE:-0}
for round in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=$a; [ $side = B ] && bin=$b
    echo "ab.sh: round $round, $side ($bin)" >&2
    PARLEY_BIN=$bin OUT_DIR=$OUT/$side-$round scripts/compare.sh >"$OUT/$side-$round.log" 2>&1 ||
      { echo "ab.sh: compare.sh failed for $side round $round; see $OUT/$side-$round.log" >&2; exit 1; }
  done
done
python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
rows = {}
for path in sorted(glob.glob(os.path.join(out, '*-*', 'results-*.json'))):
    side = os.path.basename(os.path.dirname(path)).split('-')[0]
    for r in json.load(open(path))['runs']:
        m = r['metrics']
        cpu = m.get('server_cpu_s_per_1000_msgs', m.get('server_cpu_s_per_1000_deliveries'))
        p99 = r.get('latency', {}).get('e2e', {}).get('p99_ms')
        lost = m.get('lost', 0)
        rows.setdefault((r['label'], r['scenario']), {'A': [], 'B': []})[side].append((cpu, p99, lost))
print(f"| server | scenario | A: CPU s/1000, p99 ms, lost | B: CPU s/1000, p99 ms, lost | B/A CPU (medians) | B/A p99 |")
print("| --- | --- | --- | --- | --- | --- |")
for (label, scen), v in sorted(rows.items()):
    fmt = lambda xs: "; ".join(f"{c:.4f}, {p:.2f}, {l}" for c, p, l in xs)
    ma = statistics.median(c for c, _, _ in v['A']) if v['A'] else float('nan')
    mb = statistics.median(c for c, _, _ in v['B']) if v['B'] else float('nan')
    pa = statistics.median(p for _, p, _ in v['A']) if v['A'] else float('nan')
    pb = statistics.median(p for _, p, _ in v['B']) if v['B'] else float('nan')
    print(f"| {label} | {scen} | {fmt(v['A'])} | {fmt(v['B'])} | {mb/ma:.3f} | {pb/pa:.3f} |")
PY
echo "ab.sh: results in $OUT" >&2
