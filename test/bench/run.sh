#!/usr/bin/env bash
# test/bench/run.sh - side-by-side benchmark: cmpgate (fresh demo instance, durable store)
# against OpenSSL's own CMP mock server, same load, same machine; plus the crypto floor.
#
#   test/bench/run.sh [--quick] [--scale] [--out FILE] [--keep]
#
#   --quick   fewer requests per run (smoke run, about two minutes)
#   --scale   also: throughput with 10,000 and 1,000,000 end entities in the store (against
#             a fresh store alongside, three back-to-back pairs each), and 10,000 concurrent
#             keep-alive connections held (RSS of cmpgate while held)
#   --out     Markdown copy of the table (default build/bench-table.md)
#   --keep    keep the temporary directory (configs, logs, JSON of every run)
#
# Every run is a full CMP transaction (ir → ip → certConf → pkiConf; one row also with
# implicitConfirm: ir → ip) built before the clock
# starts (--prebuild); the server CPU comes from the process's CPU-time clock (all threads,
# nanoseconds), the peak RSS from VmHWM (reset before each run through
# /proc/PID/clear_refs). The CPU targets are judged on five more PBM windows at 64
# connections, cmpgate and the mock back to back (medians).
# Only 127.0.0.1 is used; every server started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
QUICK=0
SCALE=0
KEEP=0
OUT=build/bench-table.md
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --scale) SCALE=1 ;;
    --keep) KEEP=1 ;;
    --out) OUT=$2; shift ;;
    --out=*) OUT=${1#--out=} ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
for t in jq openssl meson ninja; do
    command -v $t >/dev/null || { echo "run.sh: $t is required" >&2; exit 2; }
done

T_START=$(date +%s)
# --- build --------------------------------------------------------------------------------
[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
if ! ninja -C build >/tmp/cmpgate-bench-build.$$.log 2>&1; then
    cat /tmp/cmpgate-bench-build.$$.log >&2
    rm -f /tmp/cmpgate-bench-build.$$.log
    echo "run.sh: build failed" >&2
    exit 1
fi
rm -f /tmp/cmpgate-bench-build.$$.log
B=$ROOT/build
BENCH=$B/cmpgate-bench

# 10,000 held connections need file descriptors on both sides (servers inherit this limit)
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ] || [ "$HARD" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$HARD"; fi

TMP=$(mktemp -d /tmp/cmpgate-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ "$KEEP" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%3ds] %s\n' $(($(date +%s) - T_START)) "$*" >&2; }

# --- helpers --------------------------------------------------------------------------------
# new_instance DIR [MAP_MB]: a demo instance on free ports (port 0), durable store, the
# signature-protected RA alias "sigbench" and the bench administrator.
new_instance() {
    local dir=$1 map=${2:-1024}
    "$B/cmpgate" init --demo "$dir" >/dev/null
    jq --argjson map "$map" '
      .listen = {http: ["127.0.0.1:0"], tcp: ["127.0.0.1:0"], admin: ["127.0.0.1:0"]}
      | .store.sync = true | .store.map_size_mb = $map
      | .limits.max_connections = 12000
      | .log.level = "warn"
      | .administrators = [{subject: "CN=Bench Admin,O=EJBCA Sample,C=SE", ca: "ManagementCA",
                            end_entity_profiles: ["*"], operations: ["ir","cr","p10cr","kur","rr"]}]
      | .aliases.sigbench = {mode: "ra", authentication_modules: ["EndEntityCertificate"],
                             authentication_parameters: ["ManagementCA"],
                             response_protection: "signature",
                             ra_name_generation_scheme: "DN", ra_name_generation_parameters: "CN",
                             ra_end_entity_profile: "EMPTY", ra_certificate_profile: "ENDUSER",
                             ra_ca_name: "ManagementCA"}' \
        "$dir/cmpgate.json" >"$dir/cmpgate.json.new"
    mv "$dir/cmpgate.json.new" "$dir/cmpgate.json"
    if ! "$B/cmpgate" check-config --config "$dir/cmpgate.json" >/dev/null 2>"$dir/check.err"; then
        # an older config schema without "log.level": drop it
        jq 'del(.log.level)' "$dir/cmpgate.json" >"$dir/cmpgate.json.new"
        mv "$dir/cmpgate.json.new" "$dir/cmpgate.json"
        "$B/cmpgate" check-config --config "$dir/cmpgate.json" >/dev/null
    fi
}

# start_cmpgate DIR: sets CG_PID CG_HTTP CG_TCP
start_cmpgate() {
    local dir=$1
    "$B/cmpgate" serve --config "$dir/cmpgate.json" >"$dir/serve.out" 2>>"$dir/serve.err" &
    CG_PID=$!
    PIDS+=("$CG_PID")
    for _ in $(seq 100); do
        grep -q '^LISTEN' "$dir/serve.out" 2>/dev/null && break
        kill -0 "$CG_PID" 2>/dev/null || { cat "$dir/serve.err" >&2; echo "cmpgate did not start" >&2; exit 1; }
        sleep 0.1
    done
    CG_HTTP=$(sed -n 's/^LISTEN http=\([^ ]*\).*/\1/p' "$dir/serve.out")
    CG_TCP=$(sed -n 's/^LISTEN .* tcp=\([^ ]*\).*/\1/p' "$dir/serve.out")
    [ -n "$CG_HTTP" ] || { echo "no LISTEN line from cmpgate" >&2; exit 1; }
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# start_mock NAME ARGS...: OpenSSL's mock server on a free port; sets MOCK_PID MOCK_PORT.
# (It takes a port only, so it listens on the wildcard address; it is driven over 127.0.0.1.)
start_mock() {
    local name=$1
    shift
    openssl cmp -port 0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    MOCK_PID=$!
    PIDS+=("$MOCK_PID")
    for _ in $(seq 100); do
        grep -q '^ACCEPT' "$TMP/$name.out" 2>/dev/null && break
        kill -0 "$MOCK_PID" 2>/dev/null || { cat "$TMP/$name.err" >&2; exit 1; }
        sleep 0.1
    done
    MOCK_PORT=$(sed -n 's/^ACCEPT .*:\([0-9]*\) PID.*/\1/p' "$TMP/$name.out")
    [ -n "$MOCK_PORT" ] || { echo "mock server $name did not start" >&2; exit 1; }
}

# bench ID PID ARGS...: one measured run; JSON in $TMP/ID.json
bench() {
    local id=$1 pid=$2
    shift 2
    if ! "$BENCH" --prebuild --server-pid "$pid" "$@" >"$TMP/$id.json" 2>"$TMP/$id.err"; then
        log "$id: errors ($(tail -1 "$TMP/$id.err"))"
    fi
    [ -s "$TMP/$id.json" ] || { echo '{}' >"$TMP/$id.json"; log "$id: no result"; }
}
j() { jq -r "$2 // \"-\"" "$TMP/$1.json"; }

ROWS=()
# row ID SERVER PROTECTION TRANSPORT CONNS
row() {
    local id=$1
    local rss
    rss=$(jq -r 'if .server_peak_rss_kb then (.server_peak_rss_kb / 1024 | . * 10 | round / 10) else "-" end' "$TMP/$id.json")
    ROWS+=("$2|$3|$4|$5|$(j "$id" .requests)|$(j "$id" .errors)|$(jq -r 'if .rps then (.rps|round) else "-" end' "$TMP/$id.json")|$(j "$id" .p50_ms)|$(j "$id" .p99_ms)|$(j "$id" .server_cpu_ms_per_req)|$rss|$(j "$id" .client_cpu_ms_per_req)")
}

if [ "$QUICK" = 1 ]; then N1=100; N=400; SPEED=1; else N1=500; N=3000; SPEED=2; fi

# --- cmpgate instance ---------------------------------------------------------------------
log "cmpgate: fresh demo instance in $TMP/cg"
new_instance "$TMP/cg"
start_cmpgate "$TMP/cg"
log "cmpgate pid $CG_PID http $CG_HTTP tcp $CG_TCP"

# the bench administrator: enrolled through the HMAC RA alias before any measured run
openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/admin.key" 2>/dev/null
openssl cmp -cmd ir -server "$CG_HTTP" -path ejbca/publicweb/cmp/opensslra \
    -secret pass:password -ref bench -subject "/CN=Bench Admin/O=EJBCA Sample/C=SE" \
    -newkey "$TMP/admin.key" -certout "$TMP/admin.pem" \
    -srvcert "$TMP/cg/ManagementCA.cacert.pem" >"$TMP/enroll.log" 2>&1 ||
    { cat "$TMP/enroll.log" >&2; echo "admin enrollment failed" >&2; exit 1; }
# the configuration already names the administrator; restart so every run starts alike
stop_pid "$CG_PID"
start_cmpgate "$TMP/cg"

PBM=(--secret pass:password --ref bench)
SIG=(--cert "$TMP/admin.pem" --key "$TMP/admin.key")
CA_PEM=$TMP/cg/ManagementCA.cacert.pem

for c in 1 16 64 256; do
    n=$N; [ $c = 1 ] && n=$N1
    log "cmpgate PBM ir, $c connections, $n requests"
    bench cg-pbm-$c "$CG_PID" --server "$CG_HTTP" --path /ejbca/publicweb/cmp/opensslra \
        --cmd ir "${PBM[@]}" --requests $n --concurrency $c
    log "cmpgate signature ir, $c connections"
    bench cg-sig-$c "$CG_PID" --server "$CG_HTTP" --path /ejbca/publicweb/cmp/sigbench \
        --cmd ir "${SIG[@]}" --requests $n --concurrency $c
done
log "cmpgate PBM ir over TCP, 64 connections"
bench cg-tcp-64 "$CG_PID" --server "$CG_TCP" --tcp --cmd ir "${PBM[@]}" --requests $N --concurrency 64
log "cmpgate PBM ir with implicitConfirm (one message per enrollment), 64 connections"
bench cg-implicit-64 "$CG_PID" --server "$CG_HTTP" --path /ejbca/publicweb/cmp/opensslra \
    --cmd ir "${PBM[@]}" --requests $N --concurrency 64 --implicit-confirm
log "cmpgate: 64 parallel requests for one RA end entity"
bench cg-same "$CG_PID" --server "$CG_HTTP" --path /ejbca/publicweb/cmp/opensslra --cmd ir \
    "${PBM[@]}" --requests 64 --concurrency 64 --same-subject --subject-prefix /CN=bench-one

# --- OpenSSL mock servers (one answers PBM, one signs; it issues and stores nothing) -------
start_mock mock-pbm -srv_secret pass:password -srv_ref bench -rsp_cert "$TMP/admin.pem" \
    -accept_raverified
MOCK_PBM_PID=$MOCK_PID MOCK_PBM_PORT=$MOCK_PORT
start_mock mock-sig -srv_cert "$TMP/admin.pem" -srv_key "$TMP/admin.key" -srv_trusted "$CA_PEM" \
    -rsp_cert "$TMP/admin.pem" -accept_raverified
MOCK_SIG_PID=$MOCK_PID MOCK_SIG_PORT=$MOCK_PORT
log "mock servers: pbm pid $MOCK_PBM_PID port $MOCK_PBM_PORT, sig pid $MOCK_SIG_PID port $MOCK_SIG_PORT"
for c in 1 16 64 256; do
    n=$N; [ $c = 1 ] && n=$N1
    log "mock PBM ir, $c connections"
    bench mock-pbm-$c "$MOCK_PBM_PID" --server 127.0.0.1:$MOCK_PBM_PORT --path / --cmd ir \
        "${PBM[@]}" --requests $n --concurrency $c
    log "mock signature ir, $c connections"
    bench mock-sig-$c "$MOCK_SIG_PID" --server 127.0.0.1:$MOCK_SIG_PORT --path / --cmd ir \
        "${SIG[@]}" --requests $n --concurrency $c
done
# The CPU targets compare cmpgate with the mock, whose rows above ran a minute after
# cmpgate's; the host's speed drifts more than that over a minute. So the two are measured
# again back to back, PBM at 64 connections, five times alternately, and the targets are
# judged on the median of the five cmpgate windows and of the five pairs' ratios. Each side
# is measured over about two seconds of load: cmpgate, about five times faster, over five
# times the mock's requests (a 0.4-second window gave cmpgate's figure a spread of a fifth,
# with the connections' set-up and the first and last small commit groups in it).
PAIRS=5
for k in $(seq $PAIRS); do
    log "pair $k: cmpgate then mock, PBM ir, 64 connections"
    bench cg-pair-$k "$CG_PID" --server "$CG_HTTP" --path /ejbca/publicweb/cmp/opensslra \
        --cmd ir "${PBM[@]}" --requests $((5 * N)) --concurrency 64 --subject-prefix /CN=pair$k
    bench mock-pair-$k "$MOCK_PBM_PID" --server 127.0.0.1:$MOCK_PBM_PORT --path / --cmd ir \
        "${PBM[@]}" --requests $N --concurrency 64
done
# the mock counts every HTTP request it answers: two per transaction (ir, certConf)
MOCK_SEEN=$(($(grep -c 'Received request' "$TMP/mock-pbm.err") + $(grep -c 'Received request' "$TMP/mock-sig.err")))
MOCK_SENT=0
for f in "$TMP"/mock-*-*.json; do MOCK_SENT=$((MOCK_SENT + 2 * $(jq -r '.ok // 0' "$f"))); done
stop_pid "$MOCK_PBM_PID"
stop_pid "$MOCK_SIG_PID"

# --- crypto floor -------------------------------------------------------------------------
log "crypto floor: openssl speed -seconds $SPEED ecdsap256, cmpgate-bench --crypto-floor"
SPEED_LINE=$(openssl speed -seconds $SPEED ecdsap256 2>/dev/null | grep 'ecdsa (nistp256)' | tail -1)
SIGN_S=$(awk '{print $(NF-1)}' <<<"$SPEED_LINE")
VERIFY_S=$(awk '{print $NF}' <<<"$SPEED_LINE")
"$BENCH" --crypto-floor >"$TMP/floor.json"
PBM_US=$(jq -r '.pbm_500_sha256_us' "$TMP/floor.json")
HMAC_US=$(jq -r '.hmac_sha256_400B_us' "$TMP/floor.json")
NCPU=$(nproc)

# --- table ------------------------------------------------------------------------------------
for c in 1 16 64 256; do row cg-pbm-$c cmpgate PBM http $c; done
for c in 1 16 64 256; do row mock-pbm-$c openssl-mock PBM http $c; done
for c in 1 16 64 256; do row cg-sig-$c cmpgate signature http $c; done
for c in 1 16 64 256; do row mock-sig-$c openssl-mock signature http $c; done
row cg-tcp-64 cmpgate PBM tcp 64
row cg-implicit-64 "cmpgate, implicitConfirm" PBM http 64
row cg-same "cmpgate, one EE" PBM http 64

HDR="server|protection|transport|conns|requests|errors|req/s|p50 ms|p99 ms|CPU ms/req|peak RSS MB|bench CPU ms/req"
{
    echo "$HDR"
    printf '%s\n' "${ROWS[@]}"
} | column -t -s '|' -o '  ' >"$TMP/table.txt"

num() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") exit 1; print v + 0 }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
FLOOR_MS=$(calc "%.4f" "1000/$SIGN_S + 1000/$VERIFY_S + $PBM_US/1000 + 4*$HMAC_US/1000")
FLOOR_RPS=$(calc "%.0f" "$NCPU*1000/$FLOOR_MS")
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# the back-to-back pairs: cmpgate's CPU per transaction, the mock's, and their ratio, each
PAIR_CG=() PAIR_MOCK=() PAIR_RATIO=()
for k in $(seq $PAIRS); do
    PAIR_CG+=("$(j cg-pair-$k .server_cpu_ms_per_req)")
    PAIR_MOCK+=("$(j mock-pair-$k .server_cpu_ms_per_req)")
    PAIR_RATIO+=("$(calc "%.3f" "${PAIR_CG[k - 1]}/${PAIR_MOCK[k - 1]}")")
done
CG_CPU=$(median "${PAIR_CG[@]}")
CG_RPS=$(j cg-pbm-64 .rps)
MOCK_CPU=$(median "${PAIR_MOCK[@]}")
CPU_RATIO=$(calc "%.1f" "$CG_CPU/$FLOOR_MS")
RPS_RATIO=$(calc "%.2f" "$CG_RPS/$FLOOR_RPS")
MOCK_RATIO=$(calc "%.3f" "$(median "${PAIR_RATIO[@]}")")
PAIRS_TEXT="cmpgate ${PAIR_CG[*]} ms, mock ${PAIR_MOCK[*]} ms, ratios ${PAIR_RATIO[*]}"
SAME_OK=$(j cg-same .ok)
SAME_RATIO=$(calc "%.2f" "$(j cg-same .max_ms)/$(j cg-same .p50_ms)")

verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo FAIL; fi; }
CHECKS=(
    "PBM ir at 64 connections >= 3000 req/s|$(printf '%.0f' "$CG_RPS")|$(verdict "$CG_RPS >= 3000")"
    "PBM ir at 64 connections p99 <= 50 ms|$(j cg-pbm-64 .p99_ms)|$(verdict "$(j cg-pbm-64 .p99_ms) <= 50")"
    "PBM ir at 64 connections: zero errors|$(j cg-pbm-64 .errors)|$(verdict "$(j cg-pbm-64 .errors) == 0")"
    "server CPU per PBM ir <= 0.35 ms|$CG_CPU|$(verdict "$CG_CPU <= 0.35")"
    "server CPU per PBM ir <= 1/4 of the mock's|$MOCK_RATIO x|$(verdict "$MOCK_RATIO <= 0.25")"
    "64 parallel ir for one RA end entity all succeed|$SAME_OK/64|$(verdict "$SAME_OK == 64")"
    "... none slower than 4x the median (max/p50)|$SAME_RATIO|$(verdict "$SAME_RATIO <= 4")"
)

{
    echo
    echo "cmpgate vs OpenSSL mock CMP server: full ir transactions (certConf included), --prebuild,"
    echo "durable store, EC P-256 CA and keys; $NCPU CPUs shared by servers and load generator."
    echo
    cat "$TMP/table.txt"
    echo
    echo "crypto floor ($NCPU CPUs): ECDSA P-256 sign $(calc "%.0f" "$SIGN_S")/s, verify $(calc "%.0f" "$VERIFY_S")/s per core (openssl speed);"
    echo "  PBM derivation (500 x SHA-256) $PBM_US us, HMAC-SHA256 $HMAC_US us (cmpgate-bench --crypto-floor)"
    echo "  floor per PBM ir = 1 sign + 1 verify + 1 PBM derivation + 4 HMACs = $FLOOR_MS ms CPU -> $FLOOR_RPS req/s on $NCPU cores"
    echo "  cmpgate (PBM, 64 conns): $CG_CPU ms CPU/req = ${CPU_RATIO}x the floor; $(printf '%.0f' "$CG_RPS") req/s = $RPS_RATIO of the floor rate"
    echo "  CPU per PBM ir, five back-to-back pairs at 64 connections: $PAIRS_TEXT (medians judged)"
    echo "  mock requests seen $MOCK_SEEN, expected $MOCK_SENT (2 per counted transaction)"
    echo
    printf '%s\n' "${CHECKS[@]}" | column -t -s '|' -o '  '
} | tee "$TMP/report.txt"

# --- Markdown copy ----------------------------------------------------------------------------
md_table() { # header rows...
    local h=$1
    shift
    echo "| ${h//|/ | } |"
    echo "|$(sed 's/[^|]*/---/g' <<<"$h")|"
    for r in "$@"; do echo "| ${r//|/ | } |"; done
}
mkdir -p "$(dirname "$OUT")"
{
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(openssl version | cut -d' ' -f1-2); $([ $QUICK = 1 ] && echo 'quick run' || echo 'full run')."
    echo
    md_table "$HDR" "${ROWS[@]}"
    echo
    echo "Crypto floor: ECDSA P-256 sign $(calc "%.0f" "$SIGN_S")/s, verify $(calc "%.0f" "$VERIFY_S")/s per core; PBM derivation $PBM_US µs; HMAC $HMAC_US µs."
    echo "Floor per PBM ir (1 sign + 1 verify + 1 derivation + 4 HMACs): $FLOOR_MS ms CPU, $FLOOR_RPS req/s on $NCPU cores."
    echo "cmpgate at 64 connections: $CG_CPU ms CPU per ir (${CPU_RATIO}× the floor), $(printf '%.0f' "$CG_RPS") req/s ($RPS_RATIO of the floor rate)."
    echo "CPU per PBM ir in five back-to-back pairs at 64 connections (the CPU targets take their medians): $PAIRS_TEXT."
    echo
    md_table "target|measured|result" "${CHECKS[@]}"
} >"$OUT"

# --- scale checks -----------------------------------------------------------------------------
if [ "$SCALE" = 1 ]; then
    stop_pid "$CG_PID"
    SDIR=$TMP/scale
    new_instance "$SDIR" 4096
    # A second instance that starts empty runs alongside (it holds only what the windows
    # add, 18,000 end entities at most): the populated store is judged against it in three
    # back-to-back pairs, medians, as the CPU targets are (the host's speed drifts).
    new_instance "$TMP/scale-fresh" 4096
    start_cmpgate "$TMP/scale-fresh"
    FRESH_PID=$CG_PID FRESH_HTTP=$CG_HTTP
    SROWS=()
    scale_window() { # ID PID HTTP PREFIX
        bench "$1" "$2" --server "$3" --path /ejbca/publicweb/cmp/opensslra \
            --cmd ir "${PBM[@]}" --requests $N --concurrency 64 --subject-prefix "$4"
    }
    have=0
    for target in 10000 1000000; do
        log "scale: populating to $target end entities"
        "$B/cmpgate-populate" --config "$SDIR/cmpgate.json" --entities $((target - have)) \
            --start $have >"$TMP/pop-$target.json"
        have=$target
        start_cmpgate "$SDIR"
        S_RPS=() S_P99=() F_RPS=() RATIO=()
        for k in 1 2 3; do
            log "scale: $target end entities, pair $k"
            scale_window "fresh-$target-$k" "$FRESH_PID" "$FRESH_HTTP" "/CN=fresh$target-$k"
            scale_window "scale-$target-$k" "$CG_PID" "$CG_HTTP" "/CN=scale$target-$k"
            S_RPS+=("$(j scale-$target-$k .rps)")
            S_P99+=("$(j scale-$target-$k .p99_ms)")
            F_RPS+=("$(j fresh-$target-$k .rps)")
            RATIO+=("$(calc "%.3f" "${S_RPS[k - 1]}/${F_RPS[k - 1]}")")
        done
        stop_pid "$CG_PID"
        SROWS+=("$target|$(jq -r .seconds "$TMP/pop-$target.json") s|$(calc "%.0f" "$(median "${S_RPS[@]}")")|$(median "${S_P99[@]}")|$(calc "%.0f" "$(median "${F_RPS[@]}")")|$(calc "%.2f" "$(median "${RATIO[@]}")") (${RATIO[*]})")
    done
    stop_pid "$FRESH_PID"
    log "scale: 10,000 concurrent keep-alive connections"
    start_cmpgate "$SDIR"
    bench hold "$CG_PID" --server "$CG_HTTP" --path /ejbca/publicweb/cmp/opensslra --cmd genm \
        "${PBM[@]}" --requests 10000 --concurrency 10000 --hold 10
    stop_pid "$CG_PID"
    HELD=$(j hold .held_open)
    HELD_RSS=$(jq -r 'if .server_rss_kb_held then (.server_rss_kb_held / 1024 | round) else "-" end' "$TMP/hold.json")
    SHDR="end entities in store|population time|PBM ir req/s (64 conns)|p99 ms|fresh store alongside, req/s|ratio (the three pairs)"
    {
        echo
        echo "scale (durable store, map 4096 MB):"
        { echo "$SHDR"; printf '%s\n' "${SROWS[@]}"; } | column -t -s '|' -o '  '
        echo "10,000 keep-alive connections (one genm each, then held 10 s): $HELD open, cmpgate VmRSS $HELD_RSS MB while held ($(j hold .errors) errors)"
    } | tee -a "$TMP/report.txt"
    {
        echo
        echo "Scale (\`--scale\`, durable store, map size 4096 MB):"
        echo
        md_table "$SHDR" "${SROWS[@]}"
        echo
        echo "10,000 concurrent keep-alive connections: $HELD held open, cmpgate VmRSS $HELD_RSS MB while held;" \
            "$(j hold .errors) of their first requests failed$(grep -o 'last error: .*' "$TMP/hold.err" | sed 's/^last error: / (last: /;s/$/)/')."
    } >>"$OUT"
fi

log "done in $(($(date +%s) - T_START)) s; Markdown table in $OUT"
