# The load generator cmpgate-bench (test/bench/cmpgate_bench.c, driven by test/bench/run.sh)
# against the real daemon, with small counts: every --cmd with PBM over HTTP (ir, cr, p10cr,
# genm, rr, ir with implicitConfirm), ir over the TCP listener, kur with a certificate
# enrolled by openssl cmp, signature protection through the RA alias sigbench and the bench
# administrator of run.sh. Negative runs prove its checker can fail: a wrong secret (the
# daemon refuses) and OpenSSL's mock server answering with a PBM under another secret; the
# mock under the right secret (OpenSSL's own PBM, fresh salt per message) passes. Finally the
# store holds every certificate the successful runs issued.
BENCH="$BUILD/cmpgate-bench"
MOCK_PIDS=""
trap 'for p in $MOCK_PIDS; do kill "$p" 2>/dev/null; done; stop_daemon_kill; rm -rf "$TMP"' EXIT
N=20 # requests per run
C=4  # connections per run

D=$TMP/bench
new_instance "$D" || { fail setup "init --demo"; exit 1; }
cfg=$D/cmpgate.json
# as test/bench/run.sh: the bench administrator and the signature-protected RA alias sigbench
jq '.administrators = [{"subject": "CN=Bench Admin,O=EJBCA Sample,C=SE", "ca": "ManagementCA",
        "end_entity_profiles": ["*"], "operations": ["ir", "cr", "p10cr", "kur", "rr"]}]
    | .aliases.sigbench = {"mode": "ra", "authentication_modules": ["EndEntityCertificate"],
        "authentication_parameters": ["ManagementCA"], "response_protection": "signature",
        "ra_name_generation_scheme": "DN", "ra_name_generation_parameters": "CN",
        "ra_end_entity_profile": "EMPTY", "ra_certificate_profile": "ENDUSER",
        "ra_ca_name": "ManagementCA"}' "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
"$CMPGATE" check-config --config "$cfg" >/dev/null 2>&1 || { fail setup "config: $("$CMPGATE" check-config --config "$cfg" 2>&1)"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
P=/ejbca/publicweb/cmp
PBM=(--secret pass:password --ref bench)
cd "$TMP" || exit 1

# The bench administrator, enrolled through the HMAC RA alias, then a restart (as run.sh).
openssl ecparam -name prime256v1 -genkey -noout -out admin.key 2>/dev/null
check enroll_bench_admin cmp -cmd ir -path ${P#/}/opensslra -srvcert "$CA" -ref bench -secret pass:password \
    -subject "/CN=Bench Admin/O=EJBCA Sample/C=SE" -newkey admin.key -certout admin.pem
stop_daemon && pass restart_stop_exit_0 || fail restart_stop_exit_0 "exit $?"
start_daemon "$D" || { fail setup "daemon did not restart"; exit 1; }
TCPSERVER=$(grep '^LISTEN' "$D/serve.out" | sed -E 's/.*tcp=([^ ]+).*/\1/')
case "$TCPSERVER" in 127.0.0.1:[1-9]*) ;; *) fail setup "no tcp= in $(cat "$D/serve.out")"; exit 1 ;; esac

# bench ID ARGS... : one cmpgate-bench run, N requests on C connections, prebuilt; its JSON
# line in ID.json, its stderr in ID.err, its exit status in RC
bench() {
    local id=$1
    shift
    "$BENCH" --prebuild --requests "$N" --concurrency "$C" "$@" >"$id.json" 2>"$id.err"
    RC=$?
}
why() { echo "exit $RC, $(head -c 300 "$1.json") $(grep 'last error' "$1.err" | tail -n 1)$(grep 'cmpgate-bench:' "$1.err" | tail -n 1)"; }
# bench_ok NAME ARGS... : exit 0, requests == ok == N, errors == 0
bench_ok() {
    local name=$1
    shift
    bench "$name" "$@"
    if [ "$RC" = 0 ] && jq -e --argjson n "$N" '.requests == $n and .ok == $n and .errors == 0' "$name.json" >/dev/null 2>&1; then
        pass "$name"
    else fail "$name" "$(why "$name")"; fi
}
# bench_fails NAME PATTERN ARGS... : exit 1, requests == errors == N, ok == 0, and the
# "last error:" line of stderr matches PATTERN
bench_fails() {
    local name=$1 pat=$2
    shift 2
    bench "$name" "$@"
    if [ "$RC" = 1 ] && jq -e --argjson n "$N" '.requests == $n and .errors == $n and .ok == 0' "$name.json" >/dev/null 2>&1 &&
        grep -qE -- "^last error: .*$pat" "$name.err"; then
        pass "$name"
    else fail "$name" "$(why "$name") (want exit 1, all errors, /$pat/)"; fi
}
ok_of() { jq -r '.ok // 0' "$1.json" 2>/dev/null || echo 0; }
# users_like PREFIX : certificates in the store whose user name starts with PREFIX
users_like() { "$CMPGATE" cert list --config "$cfg" | grep -c "\"user\":\"$1"; }

# --- 1. PBM over HTTP, every command ----------------------------------------------------------
RA=(--server "$SERVER" --path $P/opensslra "${PBM[@]}")
bench_ok pbm_ir "${RA[@]}" --cmd ir --subject-prefix /CN=bb-ir
bench_ok pbm_cr "${RA[@]}" --cmd cr --subject-prefix /CN=bb-cr
bench_ok pbm_p10cr "${RA[@]}" --cmd p10cr --subject-prefix /CN=bb-p10
bench_ok pbm_genm "${RA[@]}" --cmd genm
bench_ok pbm_rr "${RA[@]}" --cmd rr --subject-prefix /CN=bb-rr
bench_ok pbm_ir_implicit_confirm "${RA[@]}" --cmd ir --implicit-confirm --subject-prefix /CN=bb-ic
# --server-pid: the daemon's CPU per transaction from its CPU-time clock, above zero and below
# a second (each transaction signs a certificate; nanoseconds, not 10 ms ticks, so a few
# milliseconds of work show)
bench_ok pbm_ir_server_cpu "${RA[@]}" --cmd ir --subject-prefix /CN=bb-cpu --server-pid "$DAEMON_PID"
jq -e '.server_cpu_ms_per_req > 0 and .server_cpu_ms_per_req < 1000' pbm_ir_server_cpu.json >/dev/null &&
    pass server_cpu_measured || fail server_cpu_measured "$(cat pbm_ir_server_cpu.json)"
# implicitConfirm: no certConf reached the daemon for those transactions
n=$(grep -c 'body=certConf .*username=bb-ic-' "$D/serve.err")
[ "$n" = 0 ] && pass implicit_confirm_no_certconf || fail implicit_confirm_no_certconf "$n certConf logged"
n=$(grep -c 'body=certConf .*username=bb-ir-' "$D/serve.err")
[ "$n" = "$(ok_of pbm_ir)" ] && pass ir_one_certconf_each || fail ir_one_certconf_each "$n certConf for $(ok_of pbm_ir) ir"

# Many connections keep the work queue full: a worker that takes an ir derives the PBM key of
# an ir queued behind it together with its own (cmpgate_pbm_paired_total), on a CPU with the
# SHA extensions; elsewhere nothing is paired. Either way every transaction succeeds.
before=$(curl -sf "http://$ADMIN/metrics" | sed -n 's/^cmpgate_pbm_paired_total //p')
N=200 C=32 bench_ok pbm_ir_paired "${RA[@]}" --cmd ir --subject-prefix /CN=bb-pair
after=$(curl -sf "http://$ADMIN/metrics" | sed -n 's/^cmpgate_pbm_paired_total //p')
if grep -qw sha_ni /proc/cpuinfo; then
    [ -n "$after" ] && [ $((after - ${before:-0})) -gt 0 ] && pass pbm_keys_paired ||
        fail pbm_keys_paired "cmpgate_pbm_paired_total ${before:-?} -> ${after:-?}"
else
    [ "$after" = 0 ] && pass pbm_keys_not_paired || fail pbm_keys_not_paired "no SHA extensions, yet $after paired"
fi

# --- 2. ir over the TCP listener ---------------------------------------------------------------
bench_ok tcp_ir --server "$TCPSERVER" --tcp "${PBM[@]}" --cmd ir --subject-prefix /CN=bb-tcp
n=$(grep -c 'alias=tcp transport=tcp .*body=ir .*outcome=accepted username=bb-tcp-' "$D/serve.err")
[ "$n" = "$(ok_of tcp_ir)" ] && pass tcp_ir_logged_over_tcp || fail tcp_ir_logged_over_tcp "$n log lines"

# --- 3. kur: a device enrolled with its code on the client alias cmp (HMAC, then
# EndEntityCertificate, automatic key update) renews with its certificate, N times -----------
openssl ecparam -name prime256v1 -genkey -noout -out kur.key 2>/dev/null
"$CMPGATE" ra addendentity bb-kur --dn CN=bb-kur --password pw-bb-kur --config "$cfg" >/dev/null
check enroll_kur_device cmp -cmd ir -path ${P#/} -srvcert "$CA" -ref bb-kur -secret pass:pw-bb-kur \
    -newkey kur.key -subject /CN=bb-kur -certout kur.pem
bench_ok kur --server "$SERVER" --path $P --cmd kur --cert kur.pem --key kur.key
n=$(grep -c 'alias=cmp transport=http .*body=kur .*outcome=accepted username=bb-kur ' "$D/serve.err")
[ "$n" = "$(ok_of kur)" ] && pass kur_logged || fail kur_logged "$n kur log lines"
n=$("$CMPGATE" cert list --user bb-kur --config "$cfg" | grep -c '"status":"active"')
[ "$n" = $((1 + $(ok_of kur))) ] && pass kur_certs_stored || fail kur_certs_stored "$n active for bb-kur"

# --- 4. signature protection: the bench administrator on the RA alias sigbench -------------
bench_ok sig_ir --server "$SERVER" --path $P/sigbench --cmd ir --cert admin.pem --key admin.key \
    --subject-prefix /CN=bb-sig
n=$(grep -c 'alias=sigbench transport=http .*body=ir .*outcome=accepted username=bb-sig-' "$D/serve.err")
[ "$n" = "$(ok_of sig_ir)" ] && pass sig_ir_logged || fail sig_ir_logged "$n log lines"

# --- 5. the checker fails ---------------------------------------------------------------------
# (a) a wrong secret: the daemon refuses every request (an unprotected error), nothing issued
bench_fails wrong_secret_all_errors 'without protection|MAC|error response' --server "$SERVER" --path $P/opensslra \
    --secret pass:wrong --ref bench --cmd ir --subject-prefix /CN=bb-wrong
n=$(users_like bb-wrong-)
[ "$n" = 0 ] && pass wrong_secret_issues_nothing || fail wrong_secret_issues_nothing "$n certificates"

# start_mock NAME ARGS... : OpenSSL's mock server on a free port (test/bench/run.sh); sets
# MOCK_PID MOCK_PORT
start_mock() {
    local name=$1
    shift
    MOCK_PORT=""
    openssl cmp -port 0 "$@" >"$name.out" 2>"$name.err" &
    MOCK_PID=$!
    MOCK_PIDS="$MOCK_PIDS $MOCK_PID"
    for _ in $(seq 1 100); do
        MOCK_PORT=$(sed -n 's/^ACCEPT .*:\([0-9]*\) PID.*/\1/p' "$name.out")
        [ -n "$MOCK_PORT" ] && return 0
        kill -0 "$MOCK_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
stop_mock() {
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    MOCK_PIDS=$(echo "$MOCK_PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
}
# (b) the mock protects its answers with another secret: every response MAC fails
if start_mock mock_other -srv_secret pass:other -srv_ref bench -rsp_cert admin.pem -accept_raverified; then
    pass mock_other_started
    bench_fails mock_other_secret_mac_fails 'MAC does not verify' --server "127.0.0.1:$MOCK_PORT" \
        --path / "${PBM[@]}" --cmd ir
    stop_mock "$MOCK_PID"
else fail mock_other_started "$(tail -n 3 mock_other.err | tr '\n' ' ')"; fi
# (c) the mock under the right secret: OpenSSL's PBM (fresh salt per message) verifies
if start_mock mock_same -srv_secret pass:password -srv_ref bench -rsp_cert admin.pem -accept_raverified; then
    pass mock_same_started
    bench_ok mock_same_secret_ok --server "127.0.0.1:$MOCK_PORT" --path / "${PBM[@]}" --cmd ir
    stop_mock "$MOCK_PID"
    # the mock answered two requests (ir, certConf) per transaction
    n=$(grep -c 'Received request' mock_same.err)
    [ "$n" = $((2 * $(ok_of mock_same_secret_ok))) ] && pass mock_same_two_requests_each ||
        fail mock_same_two_requests_each "$n requests for $(ok_of mock_same_secret_ok) transactions"
else fail mock_same_started "$(tail -n 3 mock_same.err | tr '\n' ' ')"; fi

# --- 6. the store: what the successful runs issued ----------------------------------------------
# per run: exactly its certificates under its subject prefix
for r in "pbm_ir bb-ir-" "pbm_cr bb-cr-" "pbm_p10cr bb-p10-" "pbm_ir_implicit_confirm bb-ic-" \
    "tcp_ir bb-tcp-" "sig_ir bb-sig-"; do
    set -- $r
    n=$(users_like "$2")
    [ "$n" -ge "$(ok_of "$1")" ] && pass "store_$1" || fail "store_$1" "$n certificates for $(ok_of "$1") ok"
done
# rr enrolled its own certificates first, then revoked each one
n=$("$CMPGATE" cert list --config "$cfg" | grep "\"user\":\"bb-rr-" | grep -c '"status":"revoked"')
[ "$n" -ge "$(ok_of pbm_rr)" ] && [ "$n" -gt 0 ] && pass store_rr_revoked || fail store_rr_revoked "$n revoked for $(ok_of pbm_rr) rr"
# in all: at least the ir/cr/p10cr/kur runs, the rr setup, the administrator and the device
want=2
for r in pbm_ir pbm_cr pbm_p10cr pbm_ir_implicit_confirm tcp_ir kur sig_ir pbm_rr; do
    want=$((want + $(ok_of $r)))
done
total=$("$CMPGATE" cert list --config "$cfg" | grep -c '"serial"')
[ "$total" -ge "$want" ] && pass store_total || fail store_total "$total certificates listed, $want issued"

kill -0 "$DAEMON_PID" 2>/dev/null && pass daemon_alive || fail daemon_alive "the daemon exited: $(tail -n 3 "$D/serve.err" | tr '\n' ' ')"
stop_daemon && pass daemon_exit_0 || fail daemon_exit_0 "exit status $?"
