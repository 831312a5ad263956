# Parallel requests for one RA end entity are serialized, never failed (the reference
# system fails all but one): 32 concurrent openssl cmp ir for the same subject.
D=$TMP/demo
new_instance "$D" || { fail setup "init --demo"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
cd "$TMP"
openssl ecparam -name prime256v1 -genkey -noout -out k.pem
N=32
pids=()
for i in $(seq 1 $N); do
    openssl cmp -server "$SERVER" -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" \
        -ref NewUser -secret pass:password -certout "par$i.pem" -newkey k.pem \
        -subject "/CN=SameUser/O=My Organization/C=SE" >"par$i.log" 2>&1 &
    pids+=($!)
done
ok=0
for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
[ $ok -eq $N ] && pass "all_${N}_parallel_ir_succeed" || fail "all_${N}_parallel_ir_succeed" "$ok of $N"
n=$("$CMPGATE" cert list --user SameUser --config "$D/cmpgate.json" | grep -c '"user":"SameUser"')
[ "$n" -eq $N ] && pass "store_lists_${N}_certs" || fail "store_lists_${N}_certs" "$n"
distinct=$(for i in $(seq 1 $N); do openssl x509 -in "par$i.pem" -noout -serial 2>/dev/null; done | sort -u | wc -l)
[ "$distinct" -eq $N ] && pass distinct_serials || fail distinct_serials "$distinct"
stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0
