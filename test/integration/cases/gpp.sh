# The 3GPP flow (reference "Vendor CA Authentication" and "Huawei Pico 3GPP") on the demo
# alias 3gpp with the demo vendor credentials: a vendor-signed ir for a registered operator
# end entity, kur signed with the operator certificate, renewal with the same key, the
# refusal rows (unknown vendor, unregistered username, entity no longer NEW), the alias on
# "/" (http.root_alias, the reference's Apache ProxyPass "/"), and the reference "CMP Response
# Additional CA Certificates" / "PKI Message Response Additional CA Certificates" contents.
D=$TMP/gpp
new_instance "$D" || { fail setup "init --demo"; exit 1; }
cfg=$D/cmpgate.json
# gppextra: the 3gpp alias with the vendor root added to caPubs and extraCerts.
jq '.aliases.gppextra = (.aliases["3gpp"] + {"response_capubs": ["VendorRootCA"],
        "response_extracerts": ["VendorRootCA"]})' "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
"$CMPGATE" check-config --config "$cfg" >/dev/null 2>&1 || { fail setup "config: $("$CMPGATE" check-config --config "$cfg" 2>&1)"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
VROOT=$D/vendor/VendorRootCA.cacert.pem
VCERT=$D/vendor/device.cert.pem
VKEY=$D/vendor/device.key.pem
P=ejbca/publicweb/cmp/3gpp
cd "$TMP" || exit 1
ra() { "$CMPGATE" ra "$@" --config "$cfg"; }
ncerts() { "$CMPGATE" cert list --user "$1" --config "$cfg" | grep -c '"serial"'; }
pubkey() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
fpr() { openssl x509 -in "$1" -noout -fingerprint -sha256 2>/dev/null; }
# nth_cert FILE N : the N-th (0-based) PEM certificate of FILE on stdout
nth_cert() { awk -v n="$2" '/BEGIN CERT/{i++} i==n+1' "$1"; }
openssl genrsa -out op_key.pem 2048 2>/dev/null
openssl genrsa -out op_key2.pem 2048 2>/dev/null

# --- a device certificate of an unknown vendor: NOT_AUTHORIZED ------------------------------
openssl ecparam -name prime256v1 -genkey -noout -out other_root.key
openssl req -x509 -new -key other_root.key -subj "/CN=OtherVendorRoot/O=Other Vendor/C=SE" -days 30 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out other_root.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out other_dev.key
openssl req -new -key other_dev.key -subj "/CN=device-0001/O=Other Vendor/C=SE" -out other_dev.csr 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' >dev_ext.cnf
openssl x509 -req -in other_dev.csr -CA other_root.pem -CAkey other_root.key -CAcreateserial -days 30 \
    -extfile dev_ext.cnf -out other_dev.pem 2>/dev/null
check setup_other_vendor_cert openssl verify -CAfile other_root.pem other_dev.pem
check addendentity_operator ra addendentity device-0001 --dn "CN=device-0001,O=Operator,C=SE"
refused unknown_vendor_notAuthorized notAuthorized -cmd ir -path $P -srvcert "$CA" -cert other_dev.pem \
    -key other_dev.key -newkey op_key.pem -subject "/CN=device-0001/O=Operator/C=SE" -certout x.pem
# --- the vendor certificate with a username that is not registered: NOT_AUTHORIZED -----------
refused unregistered_user_notAuthorized notAuthorized -cmd ir -path $P -srvcert "$CA" -cert "$VCERT" \
    -key "$VKEY" -newkey op_key.pem -subject "/CN=device-9999/O=Operator/C=SE" -certout x.pem
[ "$(ncerts device-0001)" = 0 ] && pass refusals_issue_nothing || fail refusals_issue_nothing "$(ncerts device-0001)"

# --- vendor-signed initial enrollment ------------------------------------------------------
check ir_vendor_signed cmp -cmd ir -path $P -srvcert "$CA" -cert "$VCERT" -key "$VKEY" -newkey op_key.pem \
    -subject "/CN=device-0001/O=Operator/C=SE" -certout op_cert.pem -rspout ip.der,conf.der \
    -cacertsout capubs.pem -extracertsout extra.pem
check_out ip_signed_capubs_extracerts 'body=ip status=accepted .*caPubs=1 protection=signature extraCerts=1' \
    "$CMPDUMP" ip.der
check_out conf_is_pkiconf 'body=pkiconf .*protection=signature' "$CMPDUMP" conf.der
[ -n "$(fpr "$CA")" ] && [ "$(nth_cert capubs.pem 0 | fpr /dev/stdin)" = "$(fpr "$CA")" ] &&
    pass ip_capubs0_is_ca || fail ip_capubs0_is_ca "caPubs[0] is not ManagementCA"
[ "$(nth_cert extra.pem 0 | fpr /dev/stdin)" = "$(fpr "$CA")" ] &&
    pass ip_extracerts0_is_ca || fail ip_extracerts0_is_ca "extraCerts[0] is not ManagementCA"
check_out ir_operator_subject '^subject=CN = device-0001, O = Operator, C = SE$' \
    openssl x509 -in op_cert.pem -noout -subject
check ir_operator_cert_verifies openssl verify -CAfile "$CA" op_cert.pem
if ra show device-0001 >show.json 2>&1 && jq -e '.status == "GENERATED" and (.certificates | length) == 1' show.json >/dev/null; then
    pass ir_entity_generated
else fail ir_entity_generated "$(tr -d '\n' <show.json | head -c 400)"; fi

# --- a second vendor-signed ir: the entity is no longer NEW -> NOT_AUTHORIZED ---------------
refused second_vendor_ir_notAuthorized notAuthorized -cmd ir -path $P -srvcert "$CA" -cert "$VCERT" \
    -key "$VKEY" -newkey op_key2.pem -subject "/CN=device-0001/O=Operator/C=SE" -certout x.pem
[ "$(ncerts device-0001)" = 1 ] && pass second_ir_issues_nothing || fail second_ir_issues_nothing "$(ncerts device-0001)"

# --- kur signed with the operator certificate ----------------------------------------------
check kur_operator_signed cmp -cmd kur -path $P -srvcert "$CA" -cert op_cert.pem -key op_key.pem \
    -newkey op_key2.pem -certout op_cert2.pem
check_out kur_same_subject '^subject=CN = device-0001, O = Operator, C = SE$' \
    openssl x509 -in op_cert2.pem -noout -subject
[ -s op_cert2.pem ] && [ "$(pubkey op_cert2.pem)" = "$(openssl pkey -in op_key2.pem -pubout 2>/dev/null)" ] &&
    pass kur_new_key || fail kur_new_key "public key is not op_key2's"
check kur_cert_verifies openssl verify -CAfile "$CA" op_cert2.pem
# --- renewal with the same key (allow_update_with_same_key on this alias) ------------------
check kur_same_key_allowed cmp -cmd kur -path $P -srvcert "$CA" -cert op_cert2.pem -key op_key2.pem \
    -newkey op_key2.pem -certout op_cert3.pem
[ -s op_cert3.pem ] && [ "$(pubkey op_cert3.pem)" = "$(pubkey op_cert2.pem)" ] &&
    [ "$(openssl x509 -in op_cert3.pem -noout -serial)" != "$(openssl x509 -in op_cert2.pem -noout -serial)" ] &&
    pass kur_same_key_new_cert || fail kur_same_key_new_cert "no new certificate with the same key"
# a kur signed with the vendor certificate (vendor mode covers initial requests only)
refused kur_vendor_signed_notAuthorized notAuthorized -cmd kur -path $P -srvcert "$CA" -cert "$VCERT" \
    -key "$VKEY" -newkey op_key.pem -subject "/CN=device-0001/O=Operator/C=SE" -certout x.pem
[ "$(ncerts device-0001)" = 3 ] && pass three_certs_listed || fail three_certs_listed "$(ncerts device-0001)"

# --- response contents: additional CA certificates in caPubs and extraCerts ----------------
check addendentity_extra ra addendentity device-0002 --dn "CN=device-0002,O=Operator,C=SE"
check ir_gppextra cmp -cmd ir -path ejbca/publicweb/cmp/gppextra -srvcert "$CA" -cert "$VCERT" -key "$VKEY" \
    -newkey op_key.pem -subject "/CN=device-0002/O=Operator/C=SE" -certout x.pem -rspout ip2.der,conf2.der \
    -cacertsout capubs2.pem -extracertsout extra2.pem
check_out extra_ip_two_capubs_two_extracerts 'body=ip status=accepted .*caPubs=2 protection=signature extraCerts=2' \
    "$CMPDUMP" ip2.der
[ "$(grep -c 'BEGIN CERT' capubs2.pem)" = 2 ] && [ "$(nth_cert capubs2.pem 0 | fpr /dev/stdin)" = "$(fpr "$CA")" ] &&
    [ "$(nth_cert capubs2.pem 1 | fpr /dev/stdin)" = "$(fpr "$VROOT")" ] &&
    pass extra_capubs_ca_first_then_vendor || fail extra_capubs_ca_first_then_vendor "$(grep -c 'BEGIN CERT' capubs2.pem) certificates, order wrong"
[ "$(grep -c 'BEGIN CERT' extra2.pem)" = 2 ] && [ "$(nth_cert extra2.pem 0 | fpr /dev/stdin)" = "$(fpr "$CA")" ] &&
    [ "$(nth_cert extra2.pem 1 | fpr /dev/stdin)" = "$(fpr "$VROOT")" ] &&
    pass extra_extracerts_ca_first_then_vendor || fail extra_extracerts_ca_first_then_vendor "$(grep -c 'BEGIN CERT' extra2.pem) certificates, order wrong"
# the default 3gpp alias leaves the additional certificates blank: only the CA
[ "$(grep -c 'BEGIN CERT' capubs.pem)" = 1 ] && [ "$(grep -c 'BEGIN CERT' extra.pem)" = 1 ] &&
    pass default_alias_only_ca || fail default_alias_only_ca "capubs $(grep -c 'BEGIN CERT' capubs.pem) extra $(grep -c 'BEGIN CERT' extra.pem)"

# --- the alias on "/" (http.root_alias) ----------------------------------------------------
check addendentity_root ra addendentity device-0003 --dn "CN=device-0003,O=Operator,C=SE"
# without root_alias "/" is not a CMP path: openssl cmp without -path posts to "/" -> 404
check_out root_without_root_alias_404 'code=404' cmp -cmd ir -srvcert "$CA" -cert "$VCERT" -key "$VKEY" \
    -newkey op_key.pem -subject "/CN=device-0003/O=Operator/C=SE" -certout x.pem
kill -0 "$DAEMON_PID" 2>/dev/null && pass daemon_alive || fail daemon_alive "the daemon exited: $(tail -n 3 "$D/serve.err" | tr '\n' ' ')"
stop_daemon && pass daemon_exit_0 || fail daemon_exit_0 "exit status $?"
jq '.http.root_alias = "3gpp"' "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
start_daemon "$D" || { fail setup "daemon did not restart"; exit 1; }
# no -path: openssl cmp 3.0 posts to "/" ("will contact http://HOST:PORT/")
check_out ir_root_path_no_path_option 'will contact http://[0-9.:]+/$' cmp -cmd ir -srvcert "$CA" -cert "$VCERT" \
    -key "$VKEY" -newkey op_key.pem -subject "/CN=device-0003/O=Operator/C=SE" -certout root_cert.pem
check_out root_cert_subject '^subject=CN = device-0003, O = Operator, C = SE$' \
    openssl x509 -in root_cert.pem -noout -subject
# -path "" also posts to "/"
check addendentity_root2 ra addendentity device-0004 --dn "CN=device-0004,O=Operator,C=SE"
check ir_root_path_empty cmp -cmd ir -path "" -srvcert "$CA" -cert "$VCERT" -key "$VKEY" -newkey op_key.pem \
    -subject "/CN=device-0004/O=Operator/C=SE" -certout root_cert2.pem
check_out root_kur 'received 1 enrolled certificate' cmp -cmd kur -srvcert "$CA" -cert root_cert2.pem -key op_key.pem \
    -newkey op_key2.pem -certout root_cert3.pem
# the named path keeps working
check_out named_path_still_routes 'PKIFailureInfo: notAuthorized' cmp -cmd ir -path $P -srvcert "$CA" -cert "$VCERT" \
    -key "$VKEY" -newkey op_key.pem -subject "/CN=device-0004/O=Operator/C=SE" -certout x.pem -unprotected_errors
stop_daemon && pass daemon_exit_0_root || fail daemon_exit_0_root "exit status $?"
