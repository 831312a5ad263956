# The reference "Enrolling Device with HMAC password" workflow on the default alias `cmp`
# (path ejbca/publicweb/cmp): generate a key, initial enrollment with a one-time enrollment
# code, generate a new key, key update request authenticated with the old key and certificate.
# The commands are the guide's verbatim apart from host and paths, and from the guide's
# `-user cmptest -pass CMP-pwd`: OpenSSL 3.0's cmp client has no -user/-pass options; the
# equivalent is `-ref cmptest -secret pass:CMP-pwd` (senderKID and the PBM secret).
D=$TMP/device
new_instance "$D" || { fail setup "init --demo"; exit 1; }
cfg=$D/cmpgate.json
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
mkdir -p "$TMP/certs" && cd "$TMP" || exit 1
ra() { "$CMPGATE" ra "$@" --config "$cfg"; }
pubkey() { openssl x509 -in "$1" -noout -pubkey; }

# 1. Generate a key pair.
check genrsa_cl_key openssl genrsa -out certs/cl_key.pem 2048
# 2. Initial enrollment: end entity cmptest, subject DN CN=cmptest, enrollment code CMP-pwd.
check addendentity_cmptest ra addendentity cmptest --dn "CN=cmptest" --password CMP-pwd
check ir_reference cmp -cmd ir -path ejbca/publicweb/cmp -srvcert "$CA" -ref cmptest \
    -secret pass:CMP-pwd -newkey certs/cl_key.pem -certout certs/cl_cert.pem -subject "/CN=cmptest"
check_out ir_cert_subject '^subject=CN = cmptest$' openssl x509 -in certs/cl_cert.pem -noout -subject
check ir_cert_verifies openssl verify -CAfile "$CA" certs/cl_cert.pem
[ "$(pubkey certs/cl_cert.pem)" = "$(openssl pkey -in certs/cl_key.pem -pubout 2>/dev/null)" ] &&
    pass ir_cert_has_cl_key || fail ir_cert_has_cl_key "public key differs"
# 3. Generate a new key pair.
check genrsa_cl_new_key openssl genrsa -out certs/cl_new_key.pem 2048
# 4. Renew with a new certificate, authenticated with the old key pair and certificate.
check kur_reference cmp -cmd kur -path ejbca/publicweb/cmp -srvcert "$CA" -key certs/cl_key.pem \
    -cert certs/cl_cert.pem -newkey certs/cl_new_key.pem -certout certs/cl_new_cert.pem
check_out kur_cert_same_subject '^subject=CN = cmptest$' openssl x509 -in certs/cl_new_cert.pem -noout -subject
[ -s certs/cl_new_cert.pem ] && [ "$(pubkey certs/cl_new_cert.pem)" = "$(openssl pkey -in certs/cl_new_key.pem -pubout 2>/dev/null)" ] &&
    [ "$(pubkey certs/cl_new_cert.pem)" != "$(pubkey certs/cl_cert.pem)" ] &&
    pass kur_cert_has_new_key || fail kur_cert_has_new_key "public key is not cl_new_key's"
check kur_cert_issued_by_ca openssl verify -CAfile "$CA" certs/cl_new_cert.pem
old_serial=$(openssl x509 -in certs/cl_cert.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
new_serial=$(openssl x509 -in certs/cl_new_cert.pem -noout -serial 2>/dev/null | cut -d= -f2 | tr A-F a-f)
"$CMPGATE" cert list --user cmptest --config "$cfg" >list.out 2>&1
if [ "$(grep -c '"serial"' list.out)" = 2 ] && grep -q "\"serial\":\"$new_serial\"" list.out &&
    grep "\"serial\":\"$old_serial\"" list.out | grep -q '"status":"active"'; then
    pass kur_both_listed_old_active
else fail kur_both_listed_old_active "$(tr '\n' ' ' <list.out | head -c 500)"; fi
if ra show cmptest >show.json 2>&1 && jq -e '(.certificates | length) == 2' show.json >/dev/null; then
    pass kur_ra_show_two_certs
else fail kur_ra_show_two_certs "$(tr -d '\n' <show.json | head -c 400)"; fi
# Error table: "A key update request was submitted using the same keypair" -> BAD_MESSAGE_CHECK
# (allow_update_with_same_key is off on alias cmp).
refused kur_same_key_badMessageCheck badMessageCheck -cmd kur -path ejbca/publicweb/cmp -srvcert "$CA" \
    -key certs/cl_new_key.pem -cert certs/cl_new_cert.pem -newkey certs/cl_new_key.pem -certout certs/x.pem
n=$("$CMPGATE" cert list --user cmptest --config "$cfg" | grep -c '"serial"')
[ "$n" = 2 ] && pass kur_same_key_issues_nothing || fail kur_same_key_issues_nothing "$n certificates"
kill -0 "$DAEMON_PID" 2>/dev/null && pass daemon_alive || fail daemon_alive "the daemon exited: $(tail -n 3 "$D/serve.err" | tr '\n' ' ')"
stop_daemon && pass daemon_exit_0 || fail daemon_exit_0 "exit status $?"
