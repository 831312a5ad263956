# test/integration/lib.sh - helpers for integration cases: a real daemon on free loopback
# ports, the real `openssl cmp` client, a real LMDB store on disk.
# Each case file is a bash script sourced after this file; it calls `pass NAME` / `fail NAME
# WHY` (or `check NAME CMD...`) and the runner counts the lines.

: "${BUILD:?BUILD must name the build directory}"
CMPGATE="$BUILD/cmpgate"
CMPDUMP="$BUILD/test/cmpdump"
TMP=$(mktemp -d /tmp/cg-it.XXXXXX)
DAEMON_PID=""
trap 'stop_daemon_kill; rm -rf "$TMP"' EXIT

pass() { echo "ok $CASE/$1"; }
fail() { echo "FAIL $CASE/$1: ${2:-}"; }
# check NAME CMD... : pass when CMD succeeds
check() {
    local name=$1
    shift
    if "$@" >"$TMP/check.out" 2>&1; then pass "$name"; else fail "$name" "$(tail -n 3 "$TMP/check.out" | tr '\n' ' ')"; fi
}
# check_out NAME PATTERN CMD... : pass when CMD's output (stdout+stderr) matches PATTERN
check_out() {
    local name=$1 pat=$2
    shift 2
    "$@" >"$TMP/check.out" 2>&1
    if grep -qE -- "$pat" "$TMP/check.out"; then pass "$name"; else fail "$name" "no /$pat/ in: $(tail -n 3 "$TMP/check.out" | tr '\n' ' ')"; fi
}

# new_instance DIR : a demo instance listening on free ports, with test aliases added.
new_instance() {
    local dir=$1
    "$CMPGATE" init --demo "$dir" >/dev/null || return 1
    local cfg="$dir/cmpgate.json"
    jq '.listen.http = ["127.0.0.1:0"] | .listen.admin = ["127.0.0.1:0"] | .listen.tcp = ["127.0.0.1:0"]
        | .aliases.strictra = (.aliases.opensslra + {"allow_ra_verify_popo": false})
        | .aliases.sigra = (.aliases.opensslra + {"response_protection": "signature"})' \
        "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
}

# start_daemon DIR : start serve on DIR/cmpgate.json, wait for its LISTEN line; sets PORT,
# ADMIN_PORT, DAEMON_PID, SERVER (host:port).
start_daemon() {
    local dir=$1
    : >"$dir/serve.out"
    "$CMPGATE" serve --config "$dir/cmpgate.json" >"$dir/serve.out" 2>>"$dir/serve.err" &
    DAEMON_PID=$!
    for _ in $(seq 1 200); do
        if grep -q '^LISTEN' "$dir/serve.out" 2>/dev/null; then
            local line
            line=$(grep '^LISTEN' "$dir/serve.out")
            SERVER=$(echo "$line" | sed -E 's/.*http=([^ ]+).*/\1/')
            PORT=${SERVER##*:}
            ADMIN=$(echo "$line" | sed -E 's/.*admin=([^ ]+).*/\1/')
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$dir/serve.err" >&2; return 1; }
        sleep 0.05
    done
    return 1
}

# stop_daemon : SIGTERM and wait; returns the daemon's exit status.
stop_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID"
    local rc=$?
    DAEMON_PID=""
    return $rc
}

stop_daemon_kill() {
    [ -n "$DAEMON_PID" ] && kill -KILL "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=""
}

# cmp ARGS... : openssl cmp against the running daemon (quiet unless it fails)
cmp() {
    openssl cmp -server "$SERVER" "$@"
}

# refused NAME FAILINFO CMP-ARGS... : openssl cmp fails and reports PKIFailureInfo FAILINFO
refused() {
    local name=$1 fi=$2
    shift 2
    if cmp "$@" -unprotected_errors >"$TMP/refused.out" 2>&1; then
        fail "$name" "request succeeded"
    elif grep -q "PKIFailureInfo: $fi" "$TMP/refused.out"; then pass "$name"; else
        fail "$name" "no PKIFailureInfo: $fi in: $(grep -E 'PKIStatus|PKIFailure|error' "$TMP/refused.out" | head -3 | tr '\n' ' ')"
    fi
}

# post PATH FILE : POST FILE as application/pkixcmp; prints the HTTP status, body to $TMP/resp
post() {
    curl -s -o "$TMP/resp" -w '%{http_code}' -H 'Content-Type: application/pkixcmp' \
        --data-binary "@$2" "http://$SERVER/$1"
}
