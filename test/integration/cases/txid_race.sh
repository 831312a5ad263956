# Two ir with one transactionID sent at the same moment, many pairs at once: each is
# processed while the other's write may still be in flight (deferred writes), so both can
# pass the transactionID check. Exactly one of each pair must be answered with a certificate
# and the other with transactionIdInUse (a failed write is processed again: its answer is
# never sent), and the store must hold exactly the certificates that were answered.
D=$TMP/demo
G=$TMP/gen
K=12
new_instance "$G" || { fail setup "init --demo (generator)"; exit 1; }
start_daemon "$G" || { fail setup "generator daemon did not start"; exit 1; }
CA=$G/ManagementCA.cacert.pem
cd "$TMP"
openssl ecparam -name prime256v1 -genkey -noout -out k.pem
# 2K fresh ir messages, recorded from another instance (new to the one under test)
for i in $(seq 1 $K); do
    for s in a b; do
        cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref NewUser \
            -secret pass:password -newkey k.pem -subject "/CN=race-$i$s/O=Org" \
            -implicit_confirm -certout "g$i$s.pem" -reqout "ir$i$s.der" >"rec.log" 2>&1 ||
            { fail setup "recording ir $i$s: $(grep -m1 error rec.log)"; exit 1; }
    done
    "$BUILD/test/cmpmutate" txid "ir${i}a.der" "ir${i}b.der" "ir${i}b2.der" password ||
        { fail setup "cmpmutate txid"; exit 1; }
done
stop_daemon_kill
new_instance "$D" || { fail setup "init --demo"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
send() { # FILE : POST it, the answer into FILE.rsp
    curl -s -m 30 -o "$1.rsp" -H 'Content-Type: application/pkixcmp' \
        --data-binary "@$1" "http://$SERVER/ejbca/publicweb/cmp/opensslra"
}
pids=()
for i in $(seq 1 $K); do
    send "ir${i}a.der" & pids+=($!)
    send "ir${i}b2.der" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
bad=0 issued=0
for i in $(seq 1 $K); do
    a=$("$CMPDUMP" "ir${i}a.der.rsp" 2>&1)
    b=$("$CMPDUMP" "ir${i}b2.der.rsp" 2>&1)
    na=0 nb=0
    echo "$a" | grep -q 'body=ip status=accepted' && na=1
    echo "$b" | grep -q 'body=ip status=accepted' && nb=1
    other=$([ $na -eq 1 ] && echo "$b" || echo "$a")
    if [ $((na + nb)) -ne 1 ] || ! echo "$other" | grep -q 'failInfo=transactionIdInUse'; then
        bad=$((bad + 1))
        echo "# pair $i: $a | $b"
    fi
    issued=$((issued + na + nb))
done
[ $bad -eq 0 ] && pass one_of_each_pair_issued || fail one_of_each_pair_issued "$bad of $K pairs"
n=$("$CMPGATE" cert list --config "$D/cmpgate.json" | grep -c '"user":"race-')
[ "$n" -eq "$issued" ] && [ "$n" -eq $K ] && pass store_holds_exactly_the_answered ||
    fail store_holds_exactly_the_answered "store $n, answered $issued, pairs $K"
redone=$(curl -s "http://$ADMIN/metrics" | sed -n 's/^cmpgate_redone_total //p')
[ -n "$redone" ] && pass metrics_redone_total || fail metrics_redone_total "no cmpgate_redone_total"
echo "# txid_race: $redone of $K pairs went through a failed deferred write and a redo"
stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0
