# CMP over raw TCP (alias tcp, RA mode, HMAC "password"): ir + certConf, cr, p10cr, kur and rr
# produced by the real openssl cmp client through test/tools/tcprelay (HTTP in, TCP frames
# out), in both header forms (version 10 and RFC 2510), over one persistent connection and
# over one connection per message; then raw-socket framing cases (tcprelay --raw) and a
# burst of malformed frames after which TCP and HTTP are still served.
RELAY_BIN="$BUILD/test/tcprelay"
RELAY_PIDS=""
trap 'for p in $RELAY_PIDS; do kill "$p" 2>/dev/null; done; stop_daemon_kill; rm -rf "$TMP"' EXIT
FINREP=000000040a010300
ERRMSGREP=000000020600

D=$TMP/demo
"$CMPGATE" init --demo "$TMP/plain" >/dev/null
[ "$(jq -c .listen.tcp "$TMP/plain/cmpgate.json")" = '["127.0.0.1:8829"]' ] && pass demo_listens_tcp_8829 ||
    fail demo_listens_tcp_8829 "$(jq -c .listen "$TMP/plain/cmpgate.json")"
new_instance "$D" || { fail setup "init --demo"; exit 1; }
jq '.listen.tcp = ["127.0.0.1:0"]' "$D/cmpgate.json" >"$D/cfg.new" && mv "$D/cfg.new" "$D/cmpgate.json" &&
    chmod 600 "$D/cmpgate.json"
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
TCPSERVER=$(grep '^LISTEN' "$D/serve.out" | sed -E 's/.*tcp=([^ ]+).*/\1/')
case "$TCPSERVER" in 127.0.0.1:[1-9]*) pass listen_line_tcp ;; *) fail listen_line_tcp "$(cat "$D/serve.out")"; exit 1 ;; esac
CA=$D/ManagementCA.cacert.pem
cd "$TMP"
openssl genrsa 2048 >key1.pem 2>/dev/null
openssl genrsa 2048 >key2.pem 2>/dev/null
openssl x509 -in "$CA" -outform DER -out cacert.der

# start_relay NAME ARGS... : a relay in the background; sets RPORT
start_relay() {
    local name=$1
    shift
    "$RELAY_BIN" --listen 127.0.0.1:0 --to "$TCPSERVER" "$@" >"relay_$name.out" 2>&1 &
    RELAY_PIDS="$RELAY_PIDS $!"
    for _ in $(seq 1 100); do
        RPORT=$(sed -nE 's/^RELAY http=127\.0\.0\.1:([0-9]+)$/\1/p' "relay_$name.out")
        [ -n "$RPORT" ] && return 0
        sleep 0.05
    done
    return 1
}
rcmp() {
    openssl cmp -server "127.0.0.1:$RPORT" -path x -srvcert "$CA" -ref x -secret pass:password "$@"
}
# list_user USER : the store's view of USER's certificates
list_user() { "$CMPGATE" cert list --user "$1" --config "$D/cmpgate.json"; }

# run_mode TAG ARGS... : every operation through one relay; MSGS counts the TCP messages
run_mode() {
    local t=$1
    shift
    start_relay "$t" "$@" || { fail "${t}_relay" "relay did not start"; return; }
    check "${t}_ir" rcmp -cmd ir -certout "$t.ir.pem" -newkey key1.pem -subject "/CN=tcp-$t-ir/O=Org" \
        -reqout "$t.ir.der,$t.conf.der"
    check_out "${t}_ir_subject" "subject=CN = tcp-$t-ir, O = Org" openssl x509 -in "$t.ir.pem" -noout -subject
    check "${t}_ir_verifies" openssl verify -CAfile "$CA" "$t.ir.pem"
    serial=$(openssl x509 -in "$t.ir.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
    check_out "${t}_ir_in_store" "\"serial\":\"$serial\".*\"status\":\"active\".*\"user\":\"tcp-$t-ir\"" list_user "tcp-$t-ir"
    check "${t}_cr" rcmp -cmd cr -certout "$t.cr.pem" -newkey key1.pem -subject "/CN=tcp-$t-cr"
    check_out "${t}_cr_subject" "subject=CN = tcp-$t-cr" openssl x509 -in "$t.cr.pem" -noout -subject
    check "${t}_cr_verifies" openssl verify -CAfile "$CA" "$t.cr.pem"
    openssl req -new -key key2.pem -subj "/CN=tcp-$t-p10/C=SE" -out "$t.csr.pem"
    check "${t}_p10cr" rcmp -cmd p10cr -certout "$t.p10.pem" -csr "$t.csr.pem"
    check_out "${t}_p10cr_subject" "subject=CN = tcp-$t-p10, C = SE" openssl x509 -in "$t.p10.pem" -noout -subject
    check "${t}_p10cr_verifies" openssl verify -CAfile "$CA" "$t.p10.pem"
    check_out "${t}_p10cr_in_store" '"status":"active"' list_user "tcp-$t-p10"
    # kur on the RA alias tcp (HMAC only): the reference row "key update without the
    # EndEntityCertificate module" → badRequest, an unprotected CMP error intact over TCP;
    # successful key updates over TCP are at the end of this file
    check_out "${t}_kur_error_intact" 'PKIFailureInfo: badRequest' rcmp -cmd kur -oldcert "$t.ir.pem" \
        -key key1.pem -newkey key2.pem -certout "$t.kur.pem" -unprotected_errors
    check "${t}_rr" rcmp -cmd rr -oldcert "$t.cr.pem"
    check_out "${t}_rr_revoked" '"status":"revoked"' list_user "tcp-$t-cr"
    check_out "${t}_rr_twice_certRevoked" 'PKIFailureInfo: certRevoked' rcmp -cmd rr -oldcert "$t.cr.pem"
    MSGS=9 # ir certConf cr certConf p10cr certConf kur rr rr
}

for mode in "v10_conn --form 10" "v10_permsg --form 10 --per-message" \
    "r2510_conn --form 2510" "r2510_permsg --form 2510 --per-message"; do
    set -- $mode
    t=$1
    shift
    run_mode "$t" "$@"
    n=$(grep -c '^CONNECT' "relay_$t.out")
    case $t in
    *_conn) [ "$n" = 1 ] && pass "${t}_one_connection" || fail "${t}_one_connection" "$n TCP connections" ;;
    *) [ "$n" = "$MSGS" ] && pass "${t}_connection_per_message" || fail "${t}_connection_per_message" "$n for $MSGS" ;;
    esac
done
grep -q 'event=cmp alias=tcp transport=tcp peer=127.0.0.1:[0-9]* status=200 body=ir txid=[0-9a-f]* outcome=accepted username=tcp-v10_conn-ir' "$D/serve.err" &&
    pass log_line_tcp || fail log_line_tcp "$(grep 'transport=tcp' "$D/serve.err" | head -1)"
# ir and certConf of the persistent relay came from one peer (one TCP connection)
peers=$(grep 'transport=tcp' "$D/serve.err" | grep 'username=tcp-v10_conn-ir' | sed -E 's/.*peer=([^ ]+).*/\1/' | sort -u | wc -l)
[ "$peers" = 1 ] && pass ir_certconf_same_connection || fail ir_certconf_same_connection "$peers peers"

# raw ITEM... : tcprelay --raw against the TCP listener; output in $TMP/raw.out
raw() { "$RELAY_BIN" --raw "$TCPSERVER" "$@" >raw.out 2>&1; }
# raw_expect NAME HEX OPEN|CLOSED ARGS... : the exact answer bytes and the connection state
raw_expect() {
    local name=$1 hex=$2 state=$3
    shift 3
    raw "$@"
    if [ "$(sed -n 1p raw.out)" = "$hex" ] && [ "$(sed -n 2p raw.out)" = "$state" ]; then pass "$name"; else fail "$name" "$(tr '\n' ' ' <raw.out)"; fi
}

# A well-formed frame whose payload is DER but not CMP: the unprotected CMP error an HTTP client gets.
raw --wait 1000 --out v10_notcmp.bin v10:0:0:@cacert.der
head=$(head -c 14 raw.out)
tail -c +8 v10_notcmp.bin >v10_notcmp.der
[ "${head:8:6}" = 0a0005 ] && grep -q '^OPEN' raw.out && "$CMPDUMP" v10_notcmp.der | grep -q 'body=error status=rejection failInfo=badRequest .*protection=none' &&
    pass v10_der_not_cmp_badRequest || fail v10_der_not_cmp_badRequest "$head $("$CMPDUMP" v10_notcmp.der 2>&1)"
raw --wait 1000 --out r2510_notcmp.bin r2510:0:@cacert.der
head=$(head -c 10 raw.out)
tail -c +6 r2510_notcmp.bin >r2510_notcmp.der
[ "${head:8:2}" = 05 ] && grep -q '^OPEN' raw.out && "$CMPDUMP" r2510_notcmp.der | grep -q 'body=error status=rejection failInfo=badRequest .*protection=none' &&
    pass r2510_der_not_cmp_badRequest || fail r2510_der_not_cmp_badRequest "$head $("$CMPDUMP" r2510_notcmp.der 2>&1)"
# The same through the relay (HTTP client view), compared with HTTP proper.
start_relay notcmp --form 10
code=$(curl -s -o relay_notcmp.der -w '%{http_code}' -H 'Content-Type: application/pkixcmp' \
    --data-binary @cacert.der "http://127.0.0.1:$RPORT/x")
[ "$code" = 200 ] && "$CMPDUMP" relay_notcmp.der | grep -q 'failInfo=badRequest' && pass relay_der_not_cmp || fail relay_der_not_cmp "$code"
code=$(post ejbca/publicweb/cmp/tcp cacert.der)
[ "$code" = 200 ] && [ "$("$CMPDUMP" relay_notcmp.der | sed -E 's/txid=[^ ]*//; s/nonce[^ ]*//g')" = "$("$CMPDUMP" "$TMP/resp" | sed -E 's/txid=[^ ]*//; s/nonce[^ ]*//g')" ] &&
    pass tcp_error_same_as_http || fail tcp_error_same_as_http "$("$CMPDUMP" relay_notcmp.der) vs $("$CMPDUMP" "$TMP/resp")"

# Frame cutting at the daemon: one byte at a time, and several frames in one write.
raw_expect_prefix() { # NAME PATTERN ARGS... : first output line matches PATTERN
    local name=$1 pat=$2
    shift 2
    raw "$@"
    if sed -n 1p raw.out | grep -qE "$pat"; then pass "$name"; else fail "$name" "$(tr '\n' ' ' <raw.out | cut -c1-200)"; fi
}
raw_expect_prefix bytewise_frame '^[0-9a-f]{8}0a0005' --bytewise --wait 1000 v10:0:0:@cacert.der
raw_expect_prefix bytewise_frame_2510 '^[0-9a-f]{8}05' --bytewise --wait 1000 r2510:0:@cacert.der
raw --wait 1000 v10:0:0:@cacert.der r2510:0:@cacert.der v10:0:1:@cacert.der
sed -n 1p raw.out | grep -qE '^[0-9a-f]{8}0a0005.*[0-9a-f]{8}05.*[0-9a-f]{8}0a0105' && grep -q '^CLOSED' raw.out &&
    pass several_frames_one_write || fail several_frames_one_write "$(tr '\n' ' ' <raw.out | cut -c1-120)"
# The replayed ir of the persistent run, cut from a bytewise stream: transactionIdInUse.
raw --bytewise --wait 1000 --out replay.bin v10:0:1:@v10_conn.ir.der
tail -c +8 replay.bin >replay.der
"$CMPDUMP" replay.der | grep -q 'failInfo=transactionIdInUse' && grep -q '^CLOSED' raw.out &&
    pass replayed_ir_over_tcp || fail replayed_ir_over_tcp "$("$CMPDUMP" replay.der 2>&1)"

# Bad input: finRep (version 10, or form unknown) / errorMsgRep (RFC 2510), then close.
raw_expect truncated_header "$FINREP" CLOSED --eof 000000
raw_expect truncated_v10_header "$FINREP" CLOSED --eof 000000050a00
raw_expect truncated_v10_payload "$FINREP" CLOSED --eof 000000100a00003003
raw_expect truncated_2510_payload "$ERRMSGREP" CLOSED --eof 00000010003003
raw_expect absurd_length_v10 "$FINREP" CLOSED 7fffffff0a0000
raw_expect absurd_length_2510 "$ERRMSGREP" CLOSED ffffffff00
# max_body_bytes (1048576) + 1: refused on the header alone, no payload sent
raw_expect over_max_body_v10 "$FINREP" CLOSED 001000040a0000
raw_expect over_max_body_2510 "$ERRMSGREP" CLOSED 0010000200
raw_expect length_below_header "$FINREP" CLOSED 000000020a0000
raw_expect unknown_version "$FINREP" CLOSED 000000030b0000
raw_expect http_on_tcp_port "$FINREP" CLOSED 504f5354202f20485454502f312e310d0a0d0a
raw_expect unknown_type_v10 "$FINREP" CLOSED 000000030a0004
raw_expect unknown_type_2510 "$ERRMSGREP" CLOSED 0000000107
raw_expect not_der_v10 "$FINREP" CLOSED v10:0:0:6e6f7420444552
raw_expect not_der_2510 "$ERRMSGREP" CLOSED r2510:0:6e6f7420444552
raw_expect empty_payload_v10 "$FINREP" CLOSED v10:0:0:-
raw_expect trailing_garbage_der "$FINREP" CLOSED v10:0:0:300000
raw_expect pollreq_no_polling "$FINREP" CLOSED v10:2:0:000000010000003c
raw_expect pollreq_2510 "$ERRMSGREP" CLOSED r2510:2:00000001
raw_expect finalmsgrep_from_client "$ERRMSGREP" CLOSED r2510:5:3000
raw_expect pkirep_from_client "$FINREP" CLOSED v10:5:0:3000
# a burst of malformed frames on many connections at once
burst=""
for i in $(seq 1 30); do
    "$RELAY_BIN" --raw "$TCPSERVER" --wait 2000 "$(printf '%08x0a00%02x' 3 $((i % 3 + 7)))" >"burst_a$i.out" 2>&1 &
    burst="$burst $!"
    "$RELAY_BIN" --raw "$TCPSERVER" --wait 2000 ffffffff00 >"burst_b$i.out" 2>&1 &
    burst="$burst $!"
    "$RELAY_BIN" --raw "$TCPSERVER" --wait 2000 --eof 00000a >"burst_c$i.out" 2>&1 &
    burst="$burst $!"
done
wait $burst
n=$(cat burst_*.out | grep -cxE "$FINREP|$ERRMSGREP")
[ "$n" = 90 ] && [ "$(cat burst_*.out | grep -cx CLOSED)" = 90 ] && pass burst_all_answered_and_closed ||
    fail burst_all_answered_and_closed "$n of 90"
kill -0 "$DAEMON_PID" 2>/dev/null && pass daemon_alive_after_burst || fail daemon_alive_after_burst
# after the burst: a valid TCP request, and an HTTP one
start_relay after --form 10
check after_burst_tcp_ir rcmp -cmd ir -certout after_tcp.pem -newkey key1.pem -subject "/CN=tcp-after"
check_out after_burst_tcp_subject 'CN = tcp-after' openssl x509 -in after_tcp.pem -noout -subject
check after_burst_http_ir cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x \
    -secret pass:password -certout after_http.pem -newkey key1.pem -subject "/CN=http-after"
check_out after_burst_http_subject 'CN = http-after' openssl x509 -in after_http.pem -noout -subject

# SIGTERM with an idle persistent TCP connection open: stops and exits 0.
stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0 "exit $?"

# Key update over TCP: the legacy clients of base stations renew over TCP too. The TCP
# transport serves the one alias named by tcp.alias; pointing it at the client-mode alias cmp
# (HMAC then EndEntityCertificate, automatic key update) lets a device enroll with its code
# and then renew with its certificate, in both framings, on one connection and per message.
jq '.tcp.alias = "cmp"' "$D/cmpgate.json" >"$D/cfg.new" && mv "$D/cfg.new" "$D/cmpgate.json" &&
    chmod 600 "$D/cmpgate.json"
start_daemon "$D" || { fail kur_setup "daemon did not restart"; exit 1; }
TCPSERVER=$(grep '^LISTEN' "$D/serve.out" | sed -E 's/.*tcp=([^ ]+).*/\1/')
for mode in "kv10_conn --form 10" "kv10_permsg --form 10 --per-message" \
    "kr2510_conn --form 2510" "kr2510_permsg --form 2510 --per-message"; do
    set -- $mode
    t=$1
    shift
    start_relay "$t" "$@" || { fail "${t}_relay" "relay did not start"; continue; }
    "$CMPGATE" ra addendentity "dev-$t" --dn "CN=dev-$t" --password "code-$t" --config "$D/cmpgate.json" >/dev/null
    check "${t}_ir_with_code" openssl cmp -server "127.0.0.1:$RPORT" -path x -srvcert "$CA" -cmd ir \
        -ref "dev-$t" -secret "pass:code-$t" -newkey key1.pem -certout "$t.dev.pem" -subject "/CN=dev-$t"
    check "${t}_kur" openssl cmp -server "127.0.0.1:$RPORT" -path x -srvcert "$CA" -cmd kur \
        -cert "$t.dev.pem" -key key1.pem -newkey key2.pem -certout "$t.new.pem"
    check_out "${t}_kur_subject" "subject=CN = dev-$t" openssl x509 -in "$t.new.pem" -noout -subject
    [ "$(openssl x509 -in "$t.new.pem" -noout -pubkey)" = "$(openssl pkey -in key2.pem -pubout)" ] &&
        pass "${t}_kur_new_key" || fail "${t}_kur_new_key"
    [ "$(list_user "dev-$t" | grep -c '"status":"active"')" = 2 ] && pass "${t}_two_certs_stored" ||
        fail "${t}_two_certs_stored" "$(list_user "dev-$t")"
done
grep -q "event=cmp alias=cmp transport=tcp .* body=kur .*outcome=accepted" "$D/serve.err" &&
    pass kur_logged_over_tcp || fail kur_logged_over_tcp
stop_daemon && pass sigterm_exit_0_kur || fail sigterm_exit_0_kur "exit $?"
