# Client mode over HTTP with the real openssl cmp client: the reference documents' client-mode
# commands verbatim (apart from host and paths) on opensslclient (HMAC), openssleec
# (EndEntityCertificate), the default alias `cmp` (HMAC then EndEntityCertificate; the device
# enrollment and its kur renewal) and a
# DnPartPwd alias, then the refusal rows of the error table (NOT_AUTHORIZED for a wrong or
# reused code or an unknown user, BAD_REQUEST for a mismatched DN, invalid extensions or a
# revoked signer, NOT_AUTHORIZED for a signer certificate not in the store or of another user,
# BAD_MESSAGE_CHECK for a signature that does not verify) and one code presented 16 times at
# once.
D=$TMP/client
new_instance "$D" || { fail setup "init --demo"; exit 1; }
cfg=$D/cmpgate.json
# dnpart: the password in the UID attribute of the requested subject, unprotected requests.
jq '.aliases.dnpart = {"mode": "client", "authentication_modules": ["DnPartPwd"],
        "authentication_parameters": ["UID"], "extract_username_component": "CN",
        "response_protection": "signature"}' "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
"$CMPGATE" check-config --config "$cfg" >/dev/null 2>&1 || { fail setup "config: $("$CMPGATE" check-config --config "$cfg" 2>&1)"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
cd "$TMP"
ra() { "$CMPGATE" ra "$@" --config "$cfg"; }
# shows NAME USER JQ-EXPR : `ra show USER` succeeds and JQ-EXPR holds on its JSON
shows() {
    local name=$1 user=$2 expr=$3
    if ra show "$user" >show.json 2>show.err && jq -e "$expr" show.json >/dev/null; then pass "$name"; else
        fail "$name" "$(tr -d '\n' <show.json | head -c 400) $(cat show.err)"; fi
}
# ncerts USER : number of certificates of USER in the store
ncerts() { "$CMPGATE" cert list --user "$1" --config "$cfg" | grep -c '"serial"'; }
openssl genrsa 2048 >key1.pem 2>/dev/null

# --- Operations guide, "Enrolling in Client Mode with HMAC Password Authentication" --------
check ref_addendentity ra addendentity user1 --password password "CN=user1,O=My Organization,C=SE" ManagementCA 1 USERGENERATED
check ref_setclearpwd ra setclearpwd user1 password
check ref_setendentitystatus ra setendentitystatus user1 10
check ir_opensslclient_reference cmp -cmd ir -path ejbca/publicweb/cmp/opensslclient -srvcert "$CA" \
    -ref user1 -secret pass:password -certout clcert1.pem -newkey key1.pem -subject "/CN=user1/O=My Organization/C=SE"
check_out opensslclient_cert_subject 'subject=CN = user1, O = My Organization, C = SE' \
    openssl x509 -in clcert1.pem -noout -subject
check opensslclient_cert_verifies openssl verify -CAfile "$CA" clcert1.pem
shows hmac_enrolled_generated user1 '.status == "GENERATED" and .status_code == 40
    and .has_password == false and (.certificates | length) == 1'
[ "$(ncerts user1)" = 1 ] && pass hmac_one_cert_listed || fail hmac_one_cert_listed "$(ncerts user1)"
# The code was consumed: the same command again is refused.
refused reused_code_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/opensslclient \
    -srvcert "$CA" -ref user1 -secret pass:password -certout x.pem -newkey key1.pem \
    -subject "/CN=user1/O=My Organization/C=SE"
# Status back to NEW without a new code: the consumed code still does not work.
ra setendentitystatus user1 10 >/dev/null
refused reused_code_status_new_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/opensslclient \
    -srvcert "$CA" -ref user1 -secret pass:password -certout x.pem -newkey key1.pem \
    -subject "/CN=user1/O=My Organization/C=SE"
[ "$(ncerts user1)" = 1 ] && pass refused_issue_nothing || fail refused_issue_nothing "$(ncerts user1)"

# --- Operations guide, "Enrolling in Client Mode, Client Certificate Authentication" -------
# The guide re-uses user1's certificate (clcert.pem, key.pem) from above.
cp clcert1.pem clcert.pem
cp key1.pem key.pem
openssl genrsa 2048 >key1.pem 2>/dev/null
check eec_ref_setclearpwd ra setclearpwd user1 password
check eec_ref_setendentitystatus ra setendentitystatus user1 10
check ir_openssleec_reference cmp -cmd ir -path ejbca/publicweb/cmp/openssleec -srvcert "$CA" \
    -cert clcert.pem -key key.pem -certout clcert1.pem -newkey key1.pem -subject "/CN=user1/O=My Organization/C=SE"
check_out openssleec_ir_subject 'subject=CN = user1, O = My Organization, C = SE' \
    openssl x509 -in clcert1.pem -noout -subject
shows eec_ir_generated user1 '.status == "GENERATED" and .has_password == false and (.certificates | length) == 2'
check cr_ref_setendentitystatus ra setendentitystatus user1 10
check cr_openssleec_reference cmp -cmd cr -path ejbca/publicweb/cmp/openssleec -srvcert "$CA" \
    -cert clcert.pem -key key.pem -certout clcert1.pem -newkey key1.pem -subject "/CN=user1/O=My Organization/C=SE" \
    -reqout eec_cr.der,eec_conf.der -rspout eec_cp.der,eec_pkiconf.der
check_out openssleec_cr_signed_request 'body=cr .*protection=signature' "$CMPDUMP" eec_cr.der
check_out openssleec_cp_signed 'body=cp status=accepted.*protection=signature' "$CMPDUMP" eec_cp.der
check_out openssleec_certconf_accepted 'body=pkiconf' "$CMPDUMP" eec_pkiconf.der
shows eec_cr_generated user1 '.status == "GENERATED" and (.certificates | length) == 3'
[ "$(ncerts user1)" = 3 ] && pass eec_three_certs_listed || fail eec_three_certs_listed "$(ncerts user1)"
# Status GENERATED: a signed cr is refused (the end entity must be NEW).
refused eec_status_generated_notAuthorized notAuthorized -cmd cr -path ejbca/publicweb/cmp/openssleec \
    -srvcert "$CA" -cert clcert.pem -key key.pem -certout x.pem -newkey key1.pem \
    -subject "/CN=user1/O=My Organization/C=SE"

# A signature that does not verify: the signed cr above with one byte of its protection
# BIT STRING flipped -> badMessageCheck (unprotected error).
ra setendentitystatus user1 10 >/dev/null
prot=$(openssl asn1parse -inform DER -in eec_cr.der | awk '/d=1 .*cont \[ 0 \]/ {getline; print; exit}')
off=$(echo "$prot" | sed -E 's/^ *([0-9]+):.*hl= *([0-9]+) l= *([0-9]+).*/\1 \2 \3/')
set -- $off
if [ -n "${3:-}" ] && echo "$prot" | grep -q 'BIT STRING'; then
    pos=$(($1 + $2 + $3 / 2))
    cp eec_cr.der tampered.der
    byte=$(od -An -tu1 -j "$pos" -N1 eec_cr.der | tr -d ' ')
    printf "$(printf '\\%03o' $((byte ^ 0x5a)))" | dd of=tampered.der bs=1 seek="$pos" conv=notrunc 2>/dev/null
    code=$(post ejbca/publicweb/cmp/openssleec tampered.der)
    [ "$code" = 200 ] && "$CMPDUMP" "$TMP/resp" | grep -q 'body=error status=rejection failInfo=badMessageCheck .*protection=none' &&
        pass tampered_signature_badMessageCheck || fail tampered_signature_badMessageCheck "$code $("$CMPDUMP" "$TMP/resp")"
else
    fail tampered_signature_badMessageCheck "no protection BIT STRING found: $prot"
fi
shows tampered_issued_nothing user1 '.status == "NEW" and (.certificates | length) == 3'
ra setendentitystatus user1 40 >/dev/null

# --- Operations guide, "Enrolling Device with HMAC password" (default alias `cmp`) ---------
mkdir -p certs
cp "$CA" certs/3GPPCA.pem
check device_addendentity ra addendentity cmptest --dn 'CN=cmptest' --password CMP-pwd
openssl genrsa -out certs/cl_key.pem 2048 2>/dev/null
# The guide's `-user cmptest -pass CMP-pwd` are not options of OpenSSL 3.0's `openssl cmp`;
# its equivalents are -ref (senderKID) and -secret (the PBM password).
check device_ir_reference cmp -cmd ir -path ejbca/publicweb/cmp -srvcert certs/3GPPCA.pem \
    -ref cmptest -secret pass:CMP-pwd -newkey certs/cl_key.pem -certout certs/cl_cert.pem -subject "/CN=cmptest"
check_out device_cert_subject 'subject=CN = cmptest$' openssl x509 -in certs/cl_cert.pem -noout -subject
shows device_generated cmptest '.status == "GENERATED" and .has_password == false and (.certificates | length) == 1'
# Steps 3 and 4 of the guide: a new key pair, then kur signed with the old key and certificate.
openssl genrsa -out certs/cl_new_key.pem 2048 2>/dev/null
check device_kur_reference cmp -cmd kur -path ejbca/publicweb/cmp -srvcert certs/3GPPCA.pem \
    -key certs/cl_key.pem -cert certs/cl_cert.pem -newkey certs/cl_new_key.pem -certout certs/cl_new_cert.pem
check_out device_kur_subject 'subject=CN = cmptest$' openssl x509 -in certs/cl_new_cert.pem -noout -subject
[ -s certs/cl_new_cert.pem ] && [ "$(openssl x509 -in certs/cl_new_cert.pem -noout -pubkey 2>/dev/null)" = \
    "$(openssl pkey -in certs/cl_new_key.pem -pubout 2>/dev/null)" ] && pass device_kur_new_key ||
    fail device_kur_new_key "the renewed certificate does not carry cl_new_key.pem"
shows device_kur_generated cmptest '.status == "GENERATED" and (.certificates | length) == 2'
# The `cmp` alias also accepts a certificate-signed cr (its second module).
openssl genrsa -out certs/cl_cr_key.pem 2048 2>/dev/null
ra setendentitystatus cmptest 10 >/dev/null
check cmp_alias_signed_cr cmp -cmd cr -path ejbca/publicweb/cmp -srvcert certs/3GPPCA.pem \
    -key certs/cl_new_key.pem -cert certs/cl_new_cert.pem -newkey certs/cl_cr_key.pem -certout certs/cl_cr_cert.pem \
    -subject "/CN=cmptest"
check_out cmp_alias_signed_cr_subject 'subject=CN = cmptest$' openssl x509 -in certs/cl_cr_cert.pem -noout -subject
shows cmp_alias_three_certs cmptest '.status == "GENERATED" and (.certificates | length) == 3'
# Module order: a PBM-protected request with a wrong code reports HMAC's NOT_AUTHORIZED.
ra addendentity order1 --dn CN=order1 --password right >/dev/null
refused cmp_alias_wrong_code_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp \
    -srvcert "$CA" -ref order1 -secret pass:wrong -newkey key1.pem -certout x.pem -subject "/CN=order1"
# A multi-valued RDN registered as RFC 4514 writes it: the subject with that RDN enrolls, and
# the certificate carries it.
ra addendentity mv1 --dn 'CN=mv1+UID=7,O=Operator' --password Mv1-code >/dev/null
check client_multivalued_rdn cmp -cmd ir -path ejbca/publicweb/cmp -srvcert "$CA" -ref mv1 \
    -secret pass:Mv1-code -newkey key1.pem -certout mv1.pem -subject "/CN=mv1+UID=7/O=Operator"
check_out client_multivalued_rdn_subject 'subject=CN = mv1 \+ UID = 7, O = Operator$' \
    openssl x509 -in mv1.pem -noout -subject

# --- DnPartPwd, unprotected requests ------------------------------------------------------
check dnpart_addendentity ra addendentity dev1 --dn CN=dev1 --password Dev1-code
check dnpart_unprotected_ir cmp -cmd ir -path ejbca/publicweb/cmp/dnpart -srvcert "$CA" -unprotected_requests \
    -newkey key1.pem -certout dev1.pem -subject "/CN=dev1/UID=Dev1-code" -reqout dev1_ir.der,dev1_conf.der \
    -rspout dev1_ip.der,dev1_pkiconf.der
openssl x509 -in dev1.pem -noout -subject >dev1.subj 2>&1
if grep -q 'subject=CN = dev1$' dev1.subj && ! grep -q -i -e UID -e Dev1-code dev1.subj &&
    ! openssl x509 -in dev1.pem -noout -text | grep -q Dev1-code; then
    pass dnpart_cert_without_password
else fail dnpart_cert_without_password "$(cat dev1.subj)"; fi
check_out dnpart_ir_unprotected 'body=ir .*protection=none' "$CMPDUMP" dev1_ir.der
check_out dnpart_certconf_unprotected 'body=certConf .*protection=none' "$CMPDUMP" dev1_conf.der
check_out dnpart_certconf_accepted 'body=pkiconf' "$CMPDUMP" dev1_pkiconf.der
shows dnpart_generated dev1 '.status == "GENERATED" and .has_password == false and (.certificates | length) == 1'
ra addendentity dev2 --dn CN=dev2 --password Dev2-code >/dev/null
refused dnpart_wrong_code_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/dnpart -srvcert "$CA" \
    -unprotected_requests -newkey key1.pem -certout x.pem -subject "/CN=dev2/UID=wrong"
refused dnpart_no_uid_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/dnpart -srvcert "$CA" \
    -unprotected_requests -newkey key1.pem -certout x.pem -subject "/CN=dev2"

# --- HMAC refusals (error table rows) -----------------------------------------------------
ra addendentity user2 --password right "CN=user2,O=My Organization,C=SE" ManagementCA 1 USERGENERATED >/dev/null
refused wrong_code_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/opensslclient -srvcert "$CA" \
    -ref user2 -secret pass:wrong -certout x.pem -newkey key1.pem -subject "/CN=user2/O=My Organization/C=SE"
refused wrong_code_unprotected_error notAuthorized -cmd ir -path ejbca/publicweb/cmp/opensslclient -srvcert "$CA" \
    -ref user2 -secret pass:wrong -certout x.pem -newkey key1.pem -subject "/CN=user2/O=My Organization/C=SE" \
    -rspout wrong_code.der
check_out wrong_code_error_form 'body=error status=rejection failInfo=notAuthorized .*protection=none' "$CMPDUMP" wrong_code.der
refused unknown_user_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/opensslclient -srvcert "$CA" \
    -ref nosuchuser -secret pass:password -certout x.pem -newkey key1.pem -subject "/CN=nosuchuser"
refused mismatched_dn_badRequest badRequest -cmd ir -path ejbca/publicweb/cmp/opensslclient -srvcert "$CA" \
    -ref user2 -secret pass:right -certout x.pem -newkey key1.pem -subject "/CN=user2/O=Other Organization/C=SE"
# Extensions the ENDUSER profile does not let through.
cat >ext.cnf <<'EOF'
[cmp]
[custom_ext]
1.2.3.4.5.6.7 = ASN1:UTF8String:not allowed
[bc_ext]
basicConstraints = critical,CA:TRUE
EOF
refused custom_extension_badRequest badRequest -config ext.cnf -reqexts custom_ext -cmd ir \
    -path ejbca/publicweb/cmp/opensslclient -srvcert "$CA" -ref user2 -secret pass:right -certout x.pem \
    -newkey key1.pem -subject "/CN=user2/O=My Organization/C=SE"
refused basic_constraints_badRequest badRequest -config ext.cnf -reqexts bc_ext -cmd ir \
    -path ejbca/publicweb/cmp/opensslclient -srvcert "$CA" -ref user2 -secret pass:right -certout x.pem \
    -newkey key1.pem -subject "/CN=user2/O=My Organization/C=SE"
shows refusals_keep_code user2 '.status == "NEW" and .has_password == true and .certificates == []'
ra addendentity user3 --dn CN=user3 --password pw3 --status 40 >/dev/null
refused status_generated_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/opensslclient \
    -srvcert "$CA" -ref user3 -secret pass:pw3 -certout x.pem -newkey key1.pem -subject "/CN=user3"
ra setendentitystatus user3 20 >/dev/null
refused status_initialized_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/opensslclient \
    -srvcert "$CA" -ref user3 -secret pass:pw3 -certout x.pem -newkey key1.pem -subject "/CN=user3"
[ "$(ncerts user3)" = 0 ] && pass status_refusals_issue_nothing || fail status_refusals_issue_nothing "$(ncerts user3)"

# --- EndEntityCertificate refusals --------------------------------------------------------
ra setendentitystatus user1 10 >/dev/null
# A valid certificate of ANOTHER user (cmptest) signing an ir for user1.
refused other_users_cert_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/openssleec \
    -srvcert "$CA" -cert certs/cl_new_cert.pem -key certs/cl_new_key.pem -certout x.pem -newkey key1.pem \
    -subject "/CN=user1/O=My Organization/C=SE"
# A certificate for user1 from another demo instance's ManagementCA (same issuer name).
"$CMPGATE" init --demo "$TMP/other" >/dev/null
openssl req -new -key key.pem -subj "/CN=user1/O=My Organization/C=SE" -out other.csr 2>/dev/null
openssl x509 -req -in other.csr -CA "$TMP/other/ManagementCA.cacert.pem" -CAkey "$TMP/other/ca/ManagementCA.key.pem" \
    -set_serial 0x1234567890abcdef -days 30 -out other_ca_cert.pem 2>/dev/null
refused foreign_ca_cert_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/openssleec -srvcert "$CA" \
    -cert other_ca_cert.pem -key key.pem -certout x.pem -newkey key1.pem -subject "/CN=user1/O=My Organization/C=SE"
openssl req -x509 -new -key key.pem -subj "/CN=user1/O=My Organization/C=SE" -days 30 -out selfsigned.pem 2>/dev/null
# OpenSSL 3.0 leaves a self-signed -cert out of extraCerts (X509_ADD_FLAG_NO_SS); -extracerts
# puts it there, so the gateway does see the (unknown) signer certificate.
refused self_signed_cert_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/openssleec -srvcert "$CA" \
    -cert selfsigned.pem -extracerts selfsigned.pem -key key.pem -certout x.pem -newkey key1.pem -subject "/CN=user1/O=My Organization/C=SE"
shows eec_refusals_issue_nothing user1 '.status == "NEW" and (.certificates | length) == 3'
# rr in client mode: revoking someone else's certificate is refused; one's own works.
refused rr_other_users_cert_notAuthorized notAuthorized -cmd rr -path ejbca/publicweb/cmp/openssleec \
    -srvcert "$CA" -oldcert certs/cl_cert.pem -cert clcert.pem -key key.pem
check_out rr_other_stays_active '"status":"active"' "$CMPGATE" cert list --user cmptest --config "$cfg"
check rr_own_cert cmp -cmd rr -path ejbca/publicweb/cmp/openssleec -srvcert "$CA" \
    -oldcert clcert1.pem -cert clcert1.pem -key key1.pem
serial=$(openssl x509 -in clcert1.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
check_out rr_own_revoked "\"serial\":\"$serial\".*\"status\":\"revoked\"" "$CMPGATE" cert list --user user1 --config "$cfg"
# The revoked certificate signing a request -> BAD_REQUEST.
refused revoked_signer_badRequest badRequest -cmd ir -path ejbca/publicweb/cmp/openssleec -srvcert "$CA" \
    -cert clcert1.pem -key key1.pem -certout x.pem -newkey key1.pem -subject "/CN=user1/O=My Organization/C=SE" \
    -rspout revoked.der
check_out revoked_signer_error_form 'body=error status=rejection failInfo=badRequest .*protection=none' "$CMPDUMP" revoked.der

# --- 16 parallel requests presenting one enrollment code ----------------------------------
ra addendentity crowd --dn CN=crowd --password One-code >/dev/null
pids=()
for i in $(seq 1 16); do
    cmp -cmd ir -path ejbca/publicweb/cmp/opensslclient -srvcert "$CA" -ref crowd -secret pass:One-code \
        -certout "crowd$i.pem" -newkey key1.pem -subject "/CN=crowd" -unprotected_errors >"crowd$i.out" 2>&1 &
    pids+=($!)
done
ok=0 na=0
for i in $(seq 1 16); do
    if wait "${pids[$((i - 1))]}"; then ok=$((ok + 1)); elif grep -q 'PKIFailureInfo: notAuthorized' "crowd$i.out"; then
        na=$((na + 1)); fi
done
[ "$ok" = 1 ] && pass parallel_one_issued || fail parallel_one_issued "$ok succeeded"
[ "$na" = 15 ] && pass parallel_others_notAuthorized || fail parallel_others_notAuthorized "$na notAuthorized"
shows parallel_entity_generated crowd '.status == "GENERATED" and .has_password == false and (.certificates | length) == 1'
[ "$(ncerts crowd)" = 1 ] && pass parallel_one_cert_listed || fail parallel_one_cert_listed "$(ncerts crowd)"

stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0 "exit $?"
