# Hostile input against the real daemon: 1,000 mutated variants (bit flips, truncations,
# length corruption, inserted bytes) of valid requests captured from the real `openssl cmp`
# client (ir, cr, p10cr, rr, certConf), over HTTP and over CMP-over-TCP; the PBM iteration
# bomb; genm amplification; 20- and 20,000-level deep DER; a 20 MB body; 300 idle connections
# while a valid request is served in under one second. Every answer must be an HTTP error status or a CMP
# error/rejection, no certificate may be issued from a mutated request, and the daemon must
# stay up and keep serving. Variants that break a rule are kept in $BUILD/hostile-failures/.
CMPMUTATE="$BUILD/test/cmpmutate"
RELAY_BIN="$BUILD/test/tcprelay"
[ -x "$CMPMUTATE" ] && [ -x "$RELAY_BIN" ] || { fail setup "no $CMPMUTATE or $RELAY_BIN"; exit 1; }
HOLD_FDS=()
trap 'for fd in "${HOLD_FDS[@]}"; do exec {fd}>&-; done 2>/dev/null; stop_daemon_kill; rm -rf "$TMP"' EXIT
# private copies of the tools: the shared build directory may be relinked while the 1,000
# variants run (a binary being linked is briefly not executable)
for t in cmpdump cmpmutate tcprelay; do cp "$BUILD/test/$t" "$TMP/$t.bin" || { fail setup "copy $t"; exit 1; }; done
CMPDUMP=$TMP/cmpdump.bin CMPMUTATE=$TMP/cmpmutate.bin RELAY_BIN=$TMP/tcprelay.bin
KEEP=$BUILD/hostile-failures
rm -rf "$KEEP"
cd "$TMP"
openssl ecparam -name prime256v1 -genkey -noout -out ec.key
openssl genrsa 2048 >rsa.key 2>/dev/null

# The requests are captured against a throw-away instance, so that the daemon under test has
# never seen their transactionIDs: a mutated variant is refused for what it is, not because
# its transaction is already in use.
G=$TMP/gen
new_instance "$G" || { fail setup "init --demo (gen)"; exit 1; }
start_daemon "$G" || { fail setup "gen daemon did not start"; exit 1; }
GCA=$G/ManagementCA.cacert.pem
gcmp() { cmp -path ejbca/publicweb/cmp/opensslra -srvcert "$GCA" -ref x -secret pass:password "$@" >/dev/null 2>&1; }
gcmp -cmd ir -newkey ec.key -subject "/CN=hostile-ir/O=Org" -certout g_ir.pem -reqout ir.der,certConf.der
gcmp -cmd cr -newkey ec.key -subject "/CN=hostile-cr" -certout g_cr.pem -reqout cr.der -implicit_confirm
openssl req -new -key rsa.key -subj "/CN=hostile-p10" -out p10.csr
gcmp -cmd p10cr -csr p10.csr -certout g_p10.pem -reqout p10cr.der -implicit_confirm
gcmp -cmd rr -oldcert g_cr.pem -reqout rr.der
gcmp -cmd genm -reqout genm.der
stop_daemon
SEEDS="ir.der certConf.der cr.der p10cr.der rr.der"
for s in $SEEDS; do [ -s "$s" ] || { fail setup "no $s captured"; exit 1; }; done
pass captured_seeds

D=$TMP/demo
new_instance "$D" || { fail setup "init --demo"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
TCPSERVER=$(grep '^LISTEN' "$D/serve.out" | sed -E 's/.*tcp=([^ ]+).*/\1/')
CA=$D/ManagementCA.cacert.pem
ncerts() { "$CMPGATE" cert list --config "$D/cmpgate.json" | wc -l; }
before=$(ncerts)

# keep FILE WHY : a variant that broke a rule, kept for the report
keep() {
    mkdir -p "$KEEP"
    cp "$1" "$KEEP/$(basename "$1")"
    echo "$(basename "$1") $2" >>"$KEEP/README"
}

# http_one FILE : POST FILE; prints "ok" or "bad WHY"
http_one() {
    local f=$1 code
    code=$(curl -s -m 20 -o "$f.rsp" -w '%{http_code}' -H 'Content-Type: application/pkixcmp' \
        --data-binary "@$f" "http://$SERVER/ejbca/publicweb/cmp/opensslra")
    case $code in
    4[0-9][0-9]) echo ok ;;
    200)
        local d
        d=$("$CMPDUMP" "$f.rsp" 2>&1)
        case $d in
        body=error*|*status=rejection*) echo ok ;;
        *) echo "bad 200 $d" ;;
        esac
        ;;
    *) echo "bad HTTP $code" ;;
    esac
}

# tcp_one FILE : one version-10 frame (close bit set) to the TCP listener; "ok" or "bad WHY"
tcp_one() {
    local f=$1 hex
    "$RELAY_BIN" --raw "$TCPSERVER" --wait 5000 --out "$f.frame" "v10:0:1:@$f" >"$f.raw" 2>&1
    hex=$(sed -n 1p "$f.raw")
    case ${hex:8:6} in
    0a0003 | 0a0103 | 0a0006 | 0a0106) echo ok ;; # finRep / errorMsgRep
    0a0005 | 0a0105)                               # pkiRep: a CMP error or rejection
        tail -c +8 "$f.frame" >"$f.rsp"
        local d
        d=$("$CMPDUMP" "$f.rsp" 2>&1)
        case $d in
        body=error*|*status=rejection*) echo ok ;;
        *) echo "bad pkiRep $d" ;;
        esac
        ;;
    *) echo "bad frame '$(head -c 40 "$f.raw" | tr '\n' ' ')'" ;;
    esac
}

# 1,000 variants: 600 over HTTP, 400 over TCP, four at a time.
mkdir -p mh mt
"$CMPMUTATE" mutate 4210 600 mh $SEEDS >mh/list || fail mutate_http "cmpmutate"
"$CMPMUTATE" mutate 9483 400 mt $SEEDS >mt/list || fail mutate_tcp "cmpmutate"
run_all() { # DIR FN : runs FN on every variant of DIR, 4 in parallel; result lines in DIR/results
    local dir=$1 fn=$2 f
    : >"$dir/results"
    while read -r f _; do
        echo "$f"
    done <"$dir/list" | xargs -P 4 -I{} bash -c "$(declare -f http_one tcp_one); \
        SERVER=$SERVER TCPSERVER=$TCPSERVER CMPDUMP=$CMPDUMP RELAY_BIN=$RELAY_BIN; \
        echo \"{} \$($fn $dir/{})\"" >>"$dir/results"
}
export SERVER TCPSERVER CMPDUMP RELAY_BIN
start=$(date +%s)
run_all mh http_one
run_all mt tcp_one
echo "# 1000 variants in $(( $(date +%s) - start ))s"
for dir in mh mt; do
    n=$(grep -c ' ok$' "$dir/results")
    total=$(wc -l <"$dir/list")
    grep -v ' ok$' "$dir/results" | while read -r f why; do keep "$dir/$f" "$dir: $why ($(grep "^$f " "$dir/list" | cut -d' ' -f2-))"; done
    [ "$n" = "$total" ] && pass "${dir}_every_answer_an_error($n)" ||
        fail "${dir}_every_answer_an_error" "$n of $total; $(grep -v ' ok$' "$dir/results" | head -3 | tr '\n' ';')"
done
kill -0 "$DAEMON_PID" 2>/dev/null && pass daemon_alive_after_variants || fail daemon_alive_after_variants
after=$(ncerts)
[ "$before" = "$after" ] && pass "no_certificate_from_mutated_request($after)" ||
    fail no_certificate_from_mutated_request "$before before, $after after"

# The PBM iteration bomb: iterationCount 2^31-1, refused before deriving (well under a second).
"$CMPMUTATE" pbm ir.der bomb.der 2147483647 || fail pbm_bomb_built "cmpmutate pbm"
t0=$(date +%s%N)
code=$(post ejbca/publicweb/cmp/opensslra bomb.der)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
d=$("$CMPDUMP" "$TMP/resp" 2>&1)
[ "$code" = 200 ] && echo "$d" | grep -q 'body=error status=rejection' && [ "$ms" -lt 500 ] &&
    pass "pbm_iteration_bomb_refused(${ms}ms)" || fail pbm_iteration_bomb_refused "$code ${ms}ms $d"
"$RELAY_BIN" --raw "$TCPSERVER" --wait 5000 --out bomb.frame "v10:0:1:@bomb.der" >bomb.raw 2>&1
tail -c +8 bomb.frame >bomb.rsp
"$CMPDUMP" bomb.rsp 2>&1 | grep -q 'body=error status=rejection' && pass pbm_iteration_bomb_tcp ||
    fail pbm_iteration_bomb_tcp "$(head -c 60 bomb.raw)"

# Amplification: an authenticated genm asking for id-it-caCerts 1,000 times (12 KB) must not be
# answered with 1,000 copies of the CA chain: the answer stays under max(64 KB, request size).
"$CMPMUTATE" genm 1000 genm.der genm1000.der password || fail genm_amplification_built "cmpmutate genm"
code=$(post ejbca/publicweb/cmp/opensslra genm1000.der)
size=$(stat -c %s "$TMP/resp")
[ "$size" -le 65536 ] && pass "genm_1000_itavs_not_amplified($code, $size bytes)" ||
    fail genm_1000_itavs_not_amplified "HTTP $code, $size-byte answer to a $(stat -c %s genm1000.der)-byte genm"

# Deep DER: 20 and 20,000 nested SEQUENCE headers (30 84 LLLLLLLL) around a valid ir.
for levels in 20 20000; do
    "$CMPMUTATE" nest $levels ir.der "deep$levels.der" || fail "deep${levels}_built"
    code=$(post ejbca/publicweb/cmp/opensslra "deep$levels.der")
    d=$("$CMPDUMP" "$TMP/resp" 2>&1)
    if [ "$code" = 400 ] || { [ "$code" = 200 ] && echo "$d" | grep -q 'body=error status=rejection failInfo=badRequest'; }; then
        pass "deep_der_${levels}_levels_http($code)"
    else
        fail "deep_der_${levels}_levels_http" "$code $d"
    fi
    r=$(tcp_one "deep$levels.der")
    [ "$r" = ok ] && pass "deep_der_${levels}_levels_tcp" || fail "deep_der_${levels}_levels_tcp" "$r"
done
kill -0 "$DAEMON_PID" 2>/dev/null && pass daemon_alive_after_deep_der || fail daemon_alive_after_deep_der

# A 20 MB body: 413 (refused on the Content-Length, before buffering).
code=$(head -c 20971520 /dev/zero | curl -s -m 30 -o /dev/null -w '%{http_code}' \
    -H 'Content-Type: application/pkixcmp' --data-binary @- "http://$SERVER/ejbca/publicweb/cmp/opensslra")
[ "$code" = 413 ] && pass body_20mb_413 || fail body_20mb_413 "HTTP $code"
# ... and chunked, where no length is announced
code=$(head -c 20971520 /dev/zero | curl -s -m 30 -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
    -H 'Content-Type: application/pkixcmp' --data-binary @- "http://$SERVER/ejbca/publicweb/cmp/opensslra")
[ "$code" = 413 ] && pass body_20mb_chunked_413 || fail body_20mb_chunked_413 "HTTP $code"

# 300 idle connections (200 HTTP, 100 TCP) held open while a valid ir is served in < 1 s.
HPORT=${SERVER##*:}
TPORT=${TCPSERVER##*:}
held=0
for i in $(seq 1 300); do
    p=$HPORT
    [ "$i" -gt 200 ] && p=$TPORT
    exec {fd}<>"/dev/tcp/127.0.0.1/$p" || break
    HOLD_FDS+=("$fd")
    held=$((held + 1))
done
[ "$held" = 300 ] && pass idle_connections_opened || fail idle_connections_opened "$held of 300"
sleep 0.5
t0=$(date +%s%N)
cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x -secret pass:password \
    -newkey ec.key -subject "/CN=hostile-idle" -certout idle.pem -implicit_confirm >idle.out 2>&1
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc -eq 0 ] && [ "$ms" -lt 1000 ] && pass "valid_ir_with_300_idle_connections(${ms}ms)" ||
    fail valid_ir_with_300_idle_connections "rc=$rc ${ms}ms $(tail -n 2 idle.out | tr '\n' ' ')"
for fd in "${HOLD_FDS[@]}"; do exec {fd}>&-; done
HOLD_FDS=()

# Still serving afterwards, over HTTP and TCP, and the hostile requests issued nothing.
check after_http_ir cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x \
    -secret pass:password -newkey ec.key -subject "/CN=hostile-after" -certout after.pem -implicit_confirm
"$RELAY_BIN" --listen 127.0.0.1:0 --to "$TCPSERVER" --form 10 >relay.out 2>&1 &
RELAY=$!
for _ in $(seq 1 100); do
    RPORT=$(sed -nE 's/^RELAY http=127\.0\.0\.1:([0-9]+)$/\1/p' relay.out)
    [ -n "$RPORT" ] && break
    sleep 0.05
done
check after_tcp_ir openssl cmp -server "127.0.0.1:$RPORT" -path x -srvcert "$CA" -ref x -secret pass:password \
    -cmd ir -newkey ec.key -subject "/CN=hostile-after-tcp" -certout after_tcp.pem -implicit_confirm
kill "$RELAY" 2>/dev/null
[ "$(ncerts)" = $((before + 3)) ] && pass only_valid_requests_issued || fail only_valid_requests_issued "$before → $(ncerts), 3 valid requests"
stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0 "exit $?"
grep -E 'AddressSanitizer|runtime error|LeakSanitizer' "$D/serve.err" >/dev/null &&
    fail no_sanitizer_report "$(grep -m3 -E 'Sanitizer|runtime error' "$D/serve.err")" || pass no_sanitizer_report
