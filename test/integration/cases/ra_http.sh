# RA mode over HTTP with the real openssl cmp client: the reference documents' commands
# verbatim (apart from host and paths), cr, p10cr, the RFC 9811 path, and the error rows.
D=$TMP/demo
new_instance "$D" || { fail setup "init --demo"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
cd "$TMP"
openssl genrsa 2048 >key1.pem 2>/dev/null

# Operations guide, "Enrolling in RA Mode" (alias opensslra) - no -unprotected_errors.
check ir_opensslra_reference cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" \
    -ref NewUser -secret pass:password -certout clcert1.pem -newkey key1.pem \
    -subject "/CN=NewUser/O=My Organization/C=SE"
check_out ir_cert_subject 'subject=CN = NewUser, O = My Organization, C = SE' \
    openssl x509 -in clcert1.pem -noout -subject
check ir_cert_verifies openssl verify -CAfile "$CA" clcert1.pem
serial=$(openssl x509 -in clcert1.pem -noout -serial | cut -d= -f2)
[ ${#serial} -ge 32 ] && pass ir_serial_16_bytes || fail ir_serial_16_bytes "$serial"
check_out ir_store_lists_cert "\"serial\":\"$(echo "$serial" | tr A-F a-f)\".*\"status\":\"active\".*\"user\":\"NewUser\"" \
    "$CMPGATE" cert list --user NewUser --config "$D/cmpgate.json"

# Operations guide, "Revoking a Certificate in RA Mode" (alias cmpra).
check rr_cmpra_reference cmp -cmd rr -path ejbca/publicweb/cmp/cmpra -srvcert "$CA" \
    -oldcert ./clcert1.pem -secret pass:password -ref ffaabb
check_out rr_store_revoked '"status":"revoked"' "$CMPGATE" cert list --user NewUser --config "$D/cmpgate.json"
# Error table: "Trying to revoke a certificate that was already revoked" -> signed CERT_REVOKED.
check_out rr_twice_certRevoked 'PKIFailureInfo: certRevoked' cmp -cmd rr -path ejbca/publicweb/cmp/cmpra \
    -srvcert "$CA" -oldcert ./clcert1.pem -secret pass:password -ref ffaabb
# Error table: "Trying to revoke a non existing certificate" -> signed BAD_CERTIFICATE_ID.
openssl req -x509 -new -key key1.pem -subj "/CN=ManagementCA/O=EJBCA Sample/C=SE" -days 1 -out fake.pem 2>/dev/null
check_out rr_unknown_badCertId 'PKIFailureInfo: badCertId' cmp -cmd rr -path ejbca/publicweb/cmp/cmpra \
    -srvcert "$CA" -oldcert fake.pem -secret pass:password -ref ffaabb

check cr cmp -cmd cr -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x -secret pass:password \
    -certout cr.pem -newkey key1.pem -subject "/CN=cruser/O=Org"
check_out cr_subject 'CN = cruser' openssl x509 -in cr.pem -noout -subject
openssl req -new -key key1.pem -subj "/CN=p10user/C=SE" -out csr.pem
check p10cr cmp -cmd p10cr -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x -secret pass:password \
    -certout p10.pem -csr csr.pem
check_out p10cr_subject 'CN = p10user, C = SE' openssl x509 -in p10.pem -noout -subject
openssl ecparam -name prime256v1 -genkey -noout -out ec.pem
check ir_ec_key_rfc9811_path cmp -cmd ir -path .well-known/cmp/p/opensslra/initialization -srvcert "$CA" \
    -ref x -secret pass:password -certout ec_cert.pem -newkey ec.pem -subject "/CN=ecuser"
openssl genpkey -algorithm ed25519 -out ed.pem
check ir_ed25519_key cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x \
    -secret pass:password -certout ed_cert.pem -newkey ed.pem -subject "/CN=eduser"
check ir_signature_protected_response cmp -cmd ir -path ejbca/publicweb/cmp/sigra -srvcert "$CA" \
    -ref x -secret pass:password -certout sig.pem -newkey key1.pem -subject "/CN=siguser" -rspout sig_ip.der,sig_conf.der
check_out sigra_response_is_signed 'body=ip status=accepted.*protection=signature extraCerts=1' "$CMPDUMP" sig_ip.der
check ir_implicit_confirm cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x \
    -secret pass:password -certout ic.pem -newkey key1.pem -subject "/CN=icuser" -implicit_confirm -rspout ic.der
check_out implicit_confirm_granted 'body=ip .*caPubs=1 protection=pbm extraCerts=1 implicitConfirm=1' "$CMPDUMP" ic.der
check ir_raverified_allowed cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x \
    -secret pass:password -certout rav.pem -newkey key1.pem -subject "/CN=rav" -popo 0

# Error table rows answered with unprotected CMP errors.
check_out wrong_secret_badMessageCheck 'PKIFailureInfo: badMessageCheck' cmp -cmd ir \
    -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x -secret pass:wrong -certout x.pem \
    -newkey key1.pem -subject "/CN=x" -unprotected_errors
check_out raverified_refused_badPOP 'PKIFailureInfo: badPOP' cmp -cmd ir -path ejbca/publicweb/cmp/strictra \
    -srvcert "$CA" -ref x -secret pass:password -certout x.pem -newkey key1.pem -subject "/CN=x" -popo 0 -unprotected_errors
check_out no_pop_badPOP 'PKIFailureInfo: badPOP' cmp -cmd ir -path ejbca/publicweb/cmp/opensslra \
    -srvcert "$CA" -ref x -secret pass:password -certout x.pem -newkey key1.pem -subject "/CN=x" -popo -1 -unprotected_errors
openssl genrsa 1024 >small.pem 2>/dev/null
check_out rsa1024_refused 'badCertTemplate.*RSA key size 1024' cmp -cmd ir -path ejbca/publicweb/cmp/opensslra \
    -srvcert "$CA" -ref x -secret pass:password -certout x.pem -newkey small.pem -subject "/CN=x" -unprotected_errors
check_out missing_cn_refused 'badRequest.*CN is required' cmp -cmd ir -path ejbca/publicweb/cmp/opensslra \
    -srvcert "$CA" -ref x -secret pass:password -certout x.pem -newkey key1.pem -subject "/O=NoCN" -unprotected_errors
check_out segment_mismatch_badRequest 'PKIFailureInfo: badRequest' cmp -cmd ir \
    -path .well-known/cmp/p/opensslra/revocation -srvcert "$CA" -ref x -secret pass:password \
    -certout x.pem -newkey key1.pem -subject "/CN=x" -unprotected_errors
check_out unknown_alias_404 'HTTP 404|404' cmp -cmd ir -path ejbca/publicweb/cmp/nosuchalias -srvcert "$CA" \
    -ref x -secret pass:password -certout x.pem -newkey key1.pem -subject "/CN=x"

# Replay: the same ir bytes twice -> transactionIdInUse.
check ir_for_replay cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x -secret pass:password \
    -certout rp.pem -newkey key1.pem -subject "/CN=replay" -reqout replay_ir.der,replay_conf.der
code=$(post ejbca/publicweb/cmp/opensslra replay_ir.der)
[ "$code" = 200 ] && "$CMPDUMP" "$TMP/resp" | grep -q 'body=error status=rejection failInfo=transactionIdInUse .*protection=none' &&
    pass replay_transactionIdInUse || fail replay_transactionIdInUse "$code $("$CMPDUMP" "$TMP/resp")"
code=$(post ejbca/publicweb/cmp/opensslra replay_conf.der)
[ "$code" = 200 ] && "$CMPDUMP" "$TMP/resp" | grep -q 'failInfo=certConfirmed' &&
    pass replayed_certconf_refused || fail replayed_certconf_refused "$code $("$CMPDUMP" "$TMP/resp")"

# HTTP rows.
printf 'this is not DER' >notder.bin
[ "$(post ejbca/publicweb/cmp/opensslra notder.bin)" = 400 ] && pass non_der_400 || fail non_der_400
[ "$(post ejbca/publicweb/cmp/nosuch replay_ir.der)" = 404 ] && pass unknown_alias_http_404 || fail unknown_alias_http_404
openssl x509 -in "$CA" -outform DER -out cacert.der
code=$(post ejbca/publicweb/cmp/opensslra cacert.der)
[ "$code" = 200 ] && "$CMPDUMP" "$TMP/resp" | grep -q 'body=error status=rejection failInfo=badRequest' &&
    pass der_not_cmp_badRequest || fail der_not_cmp_badRequest "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$SERVER/ejbca/publicweb/cmp/opensslra")
[ "$code" = 405 ] && pass get_405 || fail get_405 "$code"
head -c 2000000 /dev/zero >big.bin
code=$(post ejbca/publicweb/cmp/opensslra big.bin)
[ "$code" = 413 ] && pass body_over_limit_413 || fail body_over_limit_413 "$code"
check_out healthz 'ok' curl -sf "http://$ADMIN/healthz"
check_out metrics 'cmpgate_cmp_success_total [1-9]' curl -sf "http://$ADMIN/metrics"
check_out metrics_sweep '^cmpgate_sweep_examined [0-9]' curl -sf "http://$ADMIN/metrics"

# A full work queue answers 503 at once (one worker, queue depth 1, a burst of 40 requests).
B=$TMP/busy
new_instance "$B" && jq '.workers = 1 | .queue_depth = 1' "$B/cmpgate.json" >"$B/c.json" &&
    mv "$B/c.json" "$B/cmpgate.json" && chmod 600 "$B/cmpgate.json"
SAVED_SERVER=$SERVER SAVED_PID=$DAEMON_PID SAVED_ADMIN=$ADMIN
start_daemon "$B" || fail busy_setup "daemon did not start"
pids=()
for i in $(seq 1 40); do
    curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/pkixcmp' \
        --data-binary @replay_ir.der "http://$SERVER/ejbca/publicweb/cmp/opensslra" >"busy$i.code" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
n503=$(cat busy*.code | grep -c '^503$')
nother=$(cat busy*.code | grep -vcE '^(200|503)$')
[ "$n503" -ge 1 ] && [ "$nother" -eq 0 ] && pass queue_full_503 || fail queue_full_503 "503: $n503, other: $nother"
check_out busy_metric 'cmpgate_busy_total [1-9]' curl -sf "http://$ADMIN/metrics"
stop_daemon || fail busy_sigterm_exit_0
SERVER=$SAVED_SERVER DAEMON_PID=$SAVED_PID ADMIN=$SAVED_ADMIN

# One log line per CMP message with the documented fields.
grep -q 'event=cmp alias=opensslra transport=http peer=127.0.0.1:[0-9]* status=200 body=ir txid=[0-9a-f]* outcome=accepted username=NewUser serial=[0-9a-f]* ms=' "$D/serve.err" &&
    pass log_line_fields || fail log_line_fields "$(grep event=cmp "$D/serve.err" | head -1)"

# Restart: SIGTERM exits 0 (and clean under the sanitizers), the store survives.
stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0 "exit $?"
start_daemon "$D" || fail restart "daemon did not restart"
check_out restart_keeps_certs '"user":"NewUser"' "$CMPGATE" cert list --user NewUser --config "$D/cmpgate.json"
check rr_after_restart cmp -cmd rr -path ejbca/publicweb/cmp/cmpra -srvcert "$CA" -oldcert cr.pem \
    -secret pass:password -ref ffaabb
stop_daemon || fail sigterm_exit_0_again
