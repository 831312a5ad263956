#!/usr/bin/env bash
# test/bench/ab.sh - two builds of cmpgate side by side: which uses less CPU per transaction.
#
#   test/bench/ab.sh BUILD_A BUILD_B [RUNS]     (default 7 runs)
#
# Both daemons (fresh demo instances, durable stores) run at the same time, each driven by its
# own load generator (BUILD_A's cmpgate-bench) with PBM ir transactions at 32 connections, so
# that the host's drift, which moves a server's CPU by a fifth between runs seconds apart,
# hits both alike. Each run reads every thread's CPU time in nanoseconds
# (/proc/PID/task/*/schedstat) before and after; the result is the median, over the runs, of
# B minus A per transaction, in total and for the workers, the event loop and the committer.
# N (default 4000) sets the transactions per run and server, C (default 32) the connections.
# Meant for changes of a few microseconds; the benchmark's targets are judged by run.sh.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
A=$(cd "$1" && pwd)
B=$(cd "$2" && pwd)
RUNS=${3:-7}
N=${N:-4000}
C=${C:-32}
for t in jq python3; do command -v $t >/dev/null || { echo "ab.sh: $t is required" >&2; exit 2; }; done
for b in "$A" "$B"; do
    [ -x "$b/cmpgate" ] || { echo "ab.sh: no $b/cmpgate" >&2; exit 2; }
done
[ -x "$A/cmpgate-bench" ] || { echo "ab.sh: no $A/cmpgate-bench" >&2; exit 2; }

TMP=$(mktemp -d /tmp/cmpgate-ab.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"' EXIT

# start NAME BUILD: a demo instance on free ports; sets PID and HTTP
start() {
    local d=$TMP/$1
    "$2/cmpgate" init --demo "$d" >/dev/null
    jq '.listen = {http: ["127.0.0.1:0"], tcp: ["127.0.0.1:0"], admin: ["127.0.0.1:0"]}
        | .store.sync = true | .store.map_size_mb = 1024 | .log.level = "warn"' \
        "$d/cmpgate.json" >"$d/c.json" && mv "$d/c.json" "$d/cmpgate.json"
    "$2/cmpgate" serve --config "$d/cmpgate.json" >"$d/out" 2>"$d/err" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 100); do grep -q '^LISTEN' "$d/out" 2>/dev/null && break; sleep 0.1; done
    HTTP=$(sed -n 's/^LISTEN http=\([^ ]*\).*/\1/p' "$d/out")
    [ -n "$HTTP" ] || { cat "$d/err" >&2; echo "ab.sh: $1 did not start" >&2; exit 1; }
}
# snap PID: "thread-name nanoseconds" per thread
snap() { for t in /proc/"$1"/task/*; do echo "$(cat "$t/comm") $(cut -d' ' -f1 "$t/schedstat")"; done; }
load() { # HTTP PREFIX REQUESTS
    "$A/cmpgate-bench" --prebuild --server "$1" --path /ejbca/publicweb/cmp/opensslra --cmd ir \
        --secret pass:password --ref bench --requests "$3" --concurrency "$C" \
        --subject-prefix "/CN=$2" >/dev/null 2>&1
}

start a "$A"; PA=$PID HA=$HTTP
start b "$B"; PB=$PID HB=$HTTP
load "$HA" warm 500
load "$HB" warm 500
for r in $(seq "$RUNS"); do
    snap "$PA" >"$TMP/a0"; snap "$PB" >"$TMP/b0"
    load "$HA" a$r "$N" & j1=$!
    load "$HB" b$r "$N" & j2=$!
    wait $j1 || { echo "ab.sh: A's load failed" >&2; exit 1; }
    wait $j2 || { echo "ab.sh: B's load failed" >&2; exit 1; }
    snap "$PA" >"$TMP/a1"; snap "$PB" >"$TMP/b1"
    for x in a b; do
        paste "$TMP/${x}0" "$TMP/${x}1" | awk -v n="$N" -v x="$x" '
            { k = $1; if (k ~ /^cg\/w/) k = "workers"; else if (k == "cg/store") k = "store";
              else if (k == "cmpgate") k = "loop"; else k = "other";
              d = ($4 - $2) / n / 1e6; v[k] += d; t += d }
            END { printf "%s total=%.4f workers=%.4f loop=%.4f store=%.4f\n", x, t, v["workers"], v["loop"], v["store"] }'
    done >>"$TMP/runs"
done
python3 - "$TMP/runs" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
d = {}
for r in rows:
    for kv in r[1:]:
        k, v = kv.split('=')
        d.setdefault((r[0], k), []).append(float(v))
print("ms per transaction, medians of %d side-by-side runs; B-A in microseconds" % len(d[('a', 'total')]))
for k in ['total', 'workers', 'loop', 'store']:
    a, b = d[('a', k)], d[('b', k)]
    diffs = [(y - x) * 1000 for x, y in zip(a, b)]
    print(f"{k:8s} A {statistics.median(a):.4f}  B {statistics.median(b):.4f}  B-A {statistics.median(diffs):+.1f} us"
          f"  (runs: {' '.join('%+.1f' % x for x in diffs)})")
PY
