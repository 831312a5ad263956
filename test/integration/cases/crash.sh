# SIGKILL in the middle of a burst of enrollments: every certificate whose response reached
# a client must be in the store after a restart (no response before a durable commit).
D=$TMP/demo
new_instance "$D" || { fail setup "init --demo"; exit 1; }
CA=$D/ManagementCA.cacert.pem
cd "$TMP"
openssl ecparam -name prime256v1 -genkey -noout -out k.pem
rounds=2
[ "${CG_SOAK:-0}" = 1 ] && rounds=20
for r in $(seq 1 $rounds); do
    start_daemon "$D" || { fail "round$r" "daemon did not start"; continue; }
    pids=()
    for i in $(seq 1 40); do
        openssl cmp -server "$SERVER" -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" \
            -ref x -secret pass:password -certout "r${r}_$i.pem" -newkey k.pem \
            -subject "/CN=crash${r}_$i" -implicit_confirm >/dev/null 2>&1 &
        pids+=($!)
    done
    sleep 0.$((RANDOM % 6 + 2))
    kill -KILL "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=""
    for p in "${pids[@]}"; do wait "$p"; done
    "$CMPGATE" cert list --config "$D/cmpgate.json" >"list$r.txt" || { fail "round${r}_store_opens" "cert list failed"; continue; }
    got=0
    missing=0
    for f in r${r}_*.pem; do
        [ -s "$f" ] || continue
        got=$((got + 1))
        s=$(openssl x509 -in "$f" -noout -serial | cut -d= -f2 | tr A-F a-f)
        grep -q "\"serial\":\"$s\"" "list$r.txt" || missing=$((missing + 1))
    done
    [ $missing -eq 0 ] && pass "round${r}_every_received_cert_stored($got received)" ||
        fail "round${r}_every_received_cert_stored" "$missing of $got missing"
done
