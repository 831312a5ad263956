# SIGKILL in the middle of a burst of enrollments AND revocations: every certificate whose
# response reached a client is in the store after the kill, every revocation a client saw
# accepted is revoked in the store, and the store opens cleanly (cert list exits 0) every
# round. 2 rounds; 20 with CG_SOAK=1 (scripts/test --soak).
D=$TMP/demo
new_instance "$D" || { fail setup "init --demo"; exit 1; }
CA=$D/ManagementCA.cacert.pem
cd "$TMP"
openssl ecparam -name prime256v1 -genkey -noout -out k.pem
rounds=2
[ "${CG_SOAK:-0}" = 1 ] && rounds=20
NREV=8
NIR=48
ok_rounds=0
mid=0 # rounds where the kill cut the burst (not every client got its answer)
racmp() {
    openssl cmp -server "$SERVER" -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x \
        -secret pass:password "$@"
}
for r in $(seq 1 $rounds); do
    start_daemon "$D" || { fail "round$r" "daemon did not start: $(tail -n 2 "$D/serve.err")"; continue; }
    # certificates to revoke during the burst, issued (and durable) before it
    prep=0
    for i in $(seq 1 $NREV); do
        racmp -cmd ir -newkey k.pem -subject "/CN=rrprep${r}_$i" -certout "p${r}_$i.pem" \
            -implicit_confirm >/dev/null 2>&1 && prep=$((prep + 1))
    done
    pids=()
    for i in $(seq 1 $NIR); do
        racmp -cmd ir -newkey k.pem -subject "/CN=rrcrash${r}_$i" -certout "r${r}_$i.pem" \
            -implicit_confirm >/dev/null 2>&1 &
        pids+=($!)
        if [ "$i" -le $NREV ] && [ -s "p${r}_$i.pem" ]; then
            # "rev<r>_<i>.ok" exists only when the client saw the revocation accepted
            (racmp -cmd rr -oldcert "p${r}_$i.pem" >"rev${r}_$i.log" 2>&1 && touch "rev${r}_$i.ok") &
            pids+=($!)
        fi
    done
    # the kill lands 20-400 ms into the burst: mid-burst in most rounds
    sleep "$(printf '0.%03d' $((RANDOM % 380 + 20)))"
    kill -KILL "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=""
    for p in "${pids[@]}"; do wait "$p"; done
    if ! "$CMPGATE" cert list --config "$D/cmpgate.json" >"list$r.txt" 2>"list$r.err"; then
        fail "round${r}_store_opens" "cert list failed: $(head -c 200 "list$r.err")"
        continue
    fi
    got=0 missing=0 revok=0 notrev=0
    for f in p${r}_*.pem r${r}_*.pem; do
        [ -s "$f" ] || continue
        got=$((got + 1))
        s=$(openssl x509 -in "$f" -noout -serial | cut -d= -f2 | tr A-F a-f)
        grep -q "\"serial\":\"$s\"" "list$r.txt" || missing=$((missing + 1))
    done
    for f in rev${r}_*.ok; do
        [ -e "$f" ] || continue
        revok=$((revok + 1))
        i=${f#rev${r}_}
        i=${i%.ok}
        s=$(openssl x509 -in "p${r}_$i.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
        grep -q "\"serial\":\"$s\".*\"status\":\"revoked\"" "list$r.txt" || notrev=$((notrev + 1))
    done
    [ $got -lt $((prep + NIR)) ] && mid=$((mid + 1))
    if [ $missing -eq 0 ] && [ $notrev -eq 0 ] && [ $prep -gt 0 ]; then
        ok_rounds=$((ok_rounds + 1))
        pass "round${r}_received_certs_and_revocations_stored($got certs, $revok revocations)"
    else
        fail "round${r}_received_certs_and_revocations_stored" \
            "$missing of $got certificates missing, $notrev of $revok accepted revocations not revoked (prep $prep)"
    fi
done
echo "# crash_rr: $ok_rounds of $rounds rounds passed; the kill cut the burst in $mid"
# the store still opens and serves after the last kill
start_daemon "$D" && check after_last_kill_ir racmp -cmd ir -newkey k.pem -subject "/CN=rr-after" \
    -certout after.pem -implicit_confirm || fail after_last_kill "daemon did not start"
stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0 "exit $?"
