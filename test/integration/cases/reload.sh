# SIGHUP reloads the configuration on a worker: a new alias serves at once, requests in flight
# finish on the configuration they started with, and a broken file leaves the old one serving.
D=$TMP/demo
new_instance "$D" || { fail setup "init --demo"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
cd "$TMP"
openssl ecparam -name prime256v1 -genkey -noout -out k.pem
enroll() { # ALIAS CN
    cmp -cmd ir -path "ejbca/publicweb/cmp/$1" -srvcert "$CA" -ref x -secret pass:password \
        -certout "$2.pem" -newkey k.pem -subject "/CN=$2" >"$2.log" 2>&1
}
enroll newalias before && fail unknown_before_reload "enrolled on an alias not configured" ||
    pass unknown_before_reload
jq '.aliases.newalias = .aliases.opensslra' "$D/cmpgate.json" >c.json && cp c.json "$D/cmpgate.json"
# a burst in flight while the reload happens
pids=()
for i in $(seq 1 8); do
    enroll opensslra "inflight$i" &
    pids+=($!)
done
kill -HUP "$DAEMON_PID"
ok=0
for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
[ $ok -eq 8 ] && pass requests_across_reload || fail requests_across_reload "$ok of 8"
for _ in $(seq 1 50); do grep -q 'configuration .* reloaded' "$D/serve.err" && break; sleep 0.1; done
check_out reload_logged 'SIGHUP: configuration .* reloaded' cat "$D/serve.err"
check new_alias_after_reload enroll newalias after
printf '{"cas": ' >"$D/cmpgate.json"
kill -HUP "$DAEMON_PID"
for _ in $(seq 1 50); do grep -q 'was not reloaded' "$D/serve.err" && break; sleep 0.1; done
check_out broken_reload_refused 'was not reloaded' cat "$D/serve.err"
check still_serving_after_broken_reload enroll newalias after2
kill -0 "$DAEMON_PID" && pass daemon_alive || fail daemon_alive
stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0
