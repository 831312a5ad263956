# Certificate confirmation (RFC 4210 certConf) with revoke_unconfirmed: a certificate that is
# never confirmed is revoked after confirm_timeout_s, one the client rejects is revoked at
# once; implicit confirmation and a normal certConf keep it. Without revoke_unconfirmed (the
# default, alias opensslra) nothing is revoked. The daemon survives and stops cleanly.
D=$TMP/confirm
new_instance "$D" || { fail setup "init --demo"; exit 1; }
cfg=$D/cmpgate.json
jq '.aliases.strictconf = (.aliases.opensslra + {"revoke_unconfirmed": true, "confirm_timeout_s": 2})' \
    "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
"$CMPGATE" check-config --config "$cfg" >/dev/null 2>&1 || { fail setup "config: $("$CMPGATE" check-config --config "$cfg" 2>&1)"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
P=ejbca/publicweb/cmp
cd "$TMP" || exit 1
openssl genrsa -out key.pem 2048 2>/dev/null
# an unrelated CA certificate: with -out_trusted the client cannot validate the new
# certificate and rejects it in its certConf
openssl req -x509 -new -key key.pem -subj "/CN=Unrelated CA" -days 1 -out unrelated.pem 2>/dev/null
# enroll ALIAS USER [OPTIONS...] : RA-mode ir for CN=USER on ALIAS (certificate in USER.pem)
enroll() {
    local alias=$1 user=$2
    shift 2
    cmp -cmd ir -path $P/$alias -srvcert "$CA" -ref x -secret pass:password -newkey key.pem \
        -subject "/CN=$user" -certout "$user.pem" "$@"
}
# status USER : the store status of USER's (only) certificate
status() {
    "$CMPGATE" cert list --user "$1" --config "$cfg" 2>/dev/null | sed -nE 's/.*"status":"([a-z]+)".*/\1/p' | head -n 1
}
# expect NAME USER STATUS : USER's certificate has STATUS in the store
expect() {
    local s
    s=$(status "$2")
    [ "$s" = "$3" ] && pass "$1" || fail "$1" "status '$s', expected '$3'"
}

# (a) no certConf at all
t_noconf_before=$(date +%s.%N) # before the request: no later than the issuance
check strict_no_confirm_ir enroll strictconf s_noconf -disable_confirm
t_noconf=$(date +%s.%N)
check default_no_confirm_ir enroll opensslra d_noconf -disable_confirm
expect strict_no_confirm_active_before_timeout s_noconf active
# (b) a client that rejects the certificate
if enroll strictconf s_reject -out_trusted unrelated.pem -reqout s_rej_ir.der,s_rej_cc.der \
    -rspout s_rej_ip.der,s_rej_pc.der >reject.out 2>&1; then
    fail strict_reject_client_fails "the client accepted the certificate"
else pass strict_reject_client_fails; fi
check_out strict_reject_certconf_sent 'body=certConf' "$CMPDUMP" s_rej_cc.der
check_out strict_reject_pkiconf 'body=pkiconf' "$CMPDUMP" s_rej_pc.der
check_out strict_reject_logged 'body=certConf .*outcome=pkiConf\(rejected-by-client,revoked\) username=s_reject' cat "$D/serve.err"
expect strict_reject_revoked_at_once s_reject revoked
if enroll opensslra d_reject -out_trusted unrelated.pem >reject2.out 2>&1; then
    fail default_reject_client_fails "the client accepted the certificate"
else pass default_reject_client_fails; fi
expect default_reject_not_revoked d_reject active
# (c) implicit confirmation, (d) a normal certConf
check strict_implicit_confirm_ir enroll strictconf s_implicit -implicit_confirm -rspout s_implicit.der
check_out strict_implicit_confirm_granted 'body=ip status=accepted.*implicitConfirm=1' "$CMPDUMP" s_implicit.der
check strict_certconf_ir enroll strictconf s_conf -rspout s_ip.der,s_pkiconf.der
check_out strict_certconf_pkiconf 'body=pkiconf' "$CMPDUMP" s_pkiconf.der

# the unconfirmed certificate is revoked after the 2 s timeout (not before: measured from before
# the request) and within about 4 s of it (measured from the answer; poll up to 15 s)
seen=""
for _ in $(seq 1 60); do
    if [ "$(status s_noconf)" = revoked ]; then seen=$(date +%s.%N); break; fi
    sleep 0.25
done
[ -n "$seen" ] && pass strict_no_confirm_revoked || fail strict_no_confirm_revoked "still $(status s_noconf) after 15 s"
if [ -n "$seen" ] && awk -v s="$seen" -v b="$t_noconf_before" -v a="$t_noconf" \
    'BEGIN { exit !(s - b >= 2 && s - a <= 6) }'; then
    pass strict_no_confirm_revoked_after_timeout
else
    fail strict_no_confirm_revoked_after_timeout "revoked $(awk -v s="${seen:-0}" -v b="$t_noconf_before" 'BEGIN { printf "%.2f", s - b }') s after the request"
fi
# everything else stays as it was after the same wait (at least 2 sweeps past the timeout)
sleep 2
expect default_no_confirm_not_revoked d_noconf active
expect strict_implicit_confirm_not_revoked s_implicit active
expect strict_certconf_not_revoked s_conf active
expect strict_reject_still_revoked s_reject revoked
expect default_reject_still_active d_reject active
serial=$(openssl x509 -in s_noconf.pem -noout -serial 2>/dev/null | cut -d= -f2 | tr A-F a-f)
check_out strict_unconfirmed_logged "event=unconfirmed serial=$serial outcome=revoked" cat "$D/serve.err"
n=$(grep -c 'event=unconfirmed' "$D/serve.err")
[ "$n" = 1 ] && pass only_one_unconfirmed_revocation || fail only_one_unconfirmed_revocation "$n"
kill -0 "$DAEMON_PID" 2>/dev/null && pass daemon_alive || fail daemon_alive "the daemon exited: $(tail -n 3 "$D/serve.err" | tr '\n' ' ')"
stop_daemon && pass daemon_exit_0 || fail daemon_exit_0 "exit status $?"
