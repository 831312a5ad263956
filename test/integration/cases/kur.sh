# Key update requests (reference "Key Update Request (kur)", client and RA mode) and the kur
# rows of the reference error table: no EndEntityCertificate module (BAD_REQUEST), a revoked
# or expired signer (BAD_REQUEST), an end entity that is not in the database
# (BAD_MESSAGE_CHECK), another end entity's certificate (NOT_AUTHORIZED), an entity that is
# not NEW without automatic key update (BAD_MESSAGE_CHECK), RA-mode kur by an administrator
# and a template naming an unknown subject (BAD_MESSAGE_CHECK).
D=$TMP/kur
new_instance "$D" || { fail setup "init --demo"; exit 1; }
cfg=$D/cmpgate.json
# SHORT: a 3 s certificate profile, available in the EMPTY end entity profile.
# eecra: RA mode authenticated by an administrator's certificate (EndEntityCertificate);
# eecraauto: the same with allow_automatic_key_update (RA-created entities are GENERATED).
jq '.certificate_profiles.SHORT = (.certificate_profiles.ENDUSER + {"validity": "3s"})
    | .end_entity_profiles.EMPTY.available_certificate_profiles += ["SHORT"]
    | .administrators = [{"subject": "CN=RA Admin,O=EJBCA Sample,C=SE", "ca": "ManagementCA",
        "end_entity_profiles": ["*"], "operations": ["ir", "cr", "p10cr", "kur", "rr"]},
        {"subject": "CN=RA Limited,O=EJBCA Sample,C=SE", "ca": "ManagementCA",
        "end_entity_profiles": ["*"], "operations": ["ir"]}]
    | .aliases.eecra = {"mode": "ra", "authentication_modules": ["EndEntityCertificate"],
        "authentication_parameters": ["ManagementCA"], "response_protection": "signature",
        "ra_name_generation_scheme": "DN", "ra_name_generation_parameters": "CN",
        "ra_end_entity_profile": "EMPTY", "ra_certificate_profile": "ENDUSER",
        "ra_ca_name": "ManagementCA"}
    | .aliases.eecraauto = (.aliases.eecra + {"allow_automatic_key_update": true})' "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
"$CMPGATE" check-config --config "$cfg" >/dev/null 2>&1 || { fail setup "config: $("$CMPGATE" check-config --config "$cfg" 2>&1)"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
P=ejbca/publicweb/cmp
cd "$TMP" || exit 1
ra() { "$CMPGATE" ra "$@" --config "$cfg"; }
ncerts() { "$CMPGATE" cert list --user "$1" --config "$cfg" | grep -c '"serial"'; }
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr A-F a-f; }
# enroll USER CERT KEY [ADDENDENTITY-OPTIONS...] : register USER (code pw-USER) and ir on `cmp`
enroll() {
    local user=$1 cert=$2 key=$3
    shift 3
    ra addendentity "$user" --dn "CN=$user" --password "pw-$user" "$@" >/dev/null &&
        cmp -cmd ir -path $P -srvcert "$CA" -ref "$user" -secret "pass:pw-$user" -newkey "$key" \
            -certout "$cert" -subject "/CN=$user" >"$TMP/enroll.out" 2>&1
}
for k in k1 k2 k3; do openssl genrsa -out $k.pem 2048 2>/dev/null; done

# --- "key update request without the end entity authentication module configured" ---------
# opensslclient has only HMAC: a kur signed with alice's certificate and one protected with a
# (fresh) enrollment code are both refused BAD_REQUEST.
check enroll_alice enroll alice alice.pem k1.pem
refused kur_hmac_only_alias_badRequest badRequest -cmd kur -path $P/opensslclient -srvcert "$CA" \
    -cert alice.pem -key k1.pem -newkey k2.pem -certout x.pem
ra setclearpwd alice pw2-alice >/dev/null && ra setendentitystatus alice NEW >/dev/null
refused kur_hmac_only_alias_pbm_badRequest badRequest -cmd kur -path $P/opensslclient -srvcert "$CA" \
    -ref alice -secret pass:pw2-alice -oldcert alice.pem -newkey k2.pem -certout x.pem
[ "$(ncerts alice)" = 1 ] && pass kur_hmac_only_issues_nothing || fail kur_hmac_only_issues_nothing "$(ncerts alice)"

# --- a revoked signer certificate: BAD_REQUEST ---------------------------------------------
check enroll_bob enroll bob bob.pem k1.pem
check revoke_bob "$CMPGATE" cert revoke "$(serial_of bob.pem)" --config "$cfg"
refused kur_revoked_signer_badRequest badRequest -cmd kur -path $P -srvcert "$CA" -cert bob.pem -key k1.pem \
    -newkey k2.pem -certout x.pem
[ "$(ncerts bob)" = 1 ] && pass kur_revoked_issues_nothing || fail kur_revoked_issues_nothing "$(ncerts bob)"

# --- an expired signer certificate: BAD_REQUEST (a 3 s certificate, 4 s later) -------------
check enroll_carol_short enroll carol carol.pem k1.pem --certprofile SHORT
na=$(date -d "$(openssl x509 -in carol.pem -noout -enddate 2>/dev/null | cut -d= -f2)" +%s 2>/dev/null || echo 0)
[ $((na - $(date +%s))) -le 4 ] && pass short_cert_validity_3s || fail short_cert_validity_3s "notAfter $(openssl x509 -in carol.pem -noout -enddate 2>&1)"

# --- an end entity that was deleted: BAD_MESSAGE_CHECK (done while carol's cert expires) ----
check enroll_dave enroll dave dave.pem k1.pem
check delendentity_dave ra delendentity dave
refused kur_deleted_entity_badMessageCheck badMessageCheck -cmd kur -path $P -srvcert "$CA" -cert dave.pem \
    -key k1.pem -newkey k2.pem -certout x.pem

# --- another end entity's certificate naming this entity's subject: NOT_AUTHORIZED ---------
check enroll_erin enroll erin erin.pem k1.pem
check enroll_frank enroll frank frank.pem k3.pem
refused kur_other_users_cert_notAuthorized notAuthorized -cmd kur -path $P -srvcert "$CA" -cert frank.pem \
    -key k3.pem -newkey k2.pem -subject "/CN=erin" -certout x.pem
[ "$(ncerts erin)" = 1 ] && [ "$(ncerts frank)" = 1 ] && pass kur_other_issues_nothing ||
    fail kur_other_issues_nothing "erin $(ncerts erin) frank $(ncerts frank)"

sleep 4
refused kur_expired_signer_badRequest badRequest -cmd kur -path $P -srvcert "$CA" -cert carol.pem -key k1.pem \
    -newkey k2.pem -certout x.pem
[ "$(ncerts carol)" = 1 ] && pass kur_expired_issues_nothing || fail kur_expired_issues_nothing "$(ncerts carol)"

# --- an alias without allow_automatic_key_update: the entity must be NEW --------------------
# openssleec: client mode, EndEntityCertificate ManagementCA, automatic key update off.
refused kur_generated_no_auto_badMessageCheck badMessageCheck -cmd kur -path $P/openssleec -srvcert "$CA" \
    -cert erin.pem -key k1.pem -newkey k2.pem -certout x.pem
check setendentitystatus_new ra setendentitystatus erin NEW
check kur_new_no_auto_ok cmp -cmd kur -path $P/openssleec -srvcert "$CA" -cert erin.pem -key k1.pem \
    -newkey k2.pem -certout erin2.pem
check_out kur_new_no_auto_subject '^subject=CN = erin$' openssl x509 -in erin2.pem -noout -subject
if ra show erin >show.json 2>&1 && jq -e '.status == "GENERATED" and (.certificates | length) == 2' show.json >/dev/null; then
    pass kur_entity_generated_again
else fail kur_entity_generated_again "$(tr -d '\n' <show.json | head -c 400)"; fi
refused kur_again_no_auto_badMessageCheck badMessageCheck -cmd kur -path $P/openssleec -srvcert "$CA" \
    -cert erin2.pem -key k2.pem -newkey k3.pem -certout x.pem

# --- RA mode: an administrator renews an end entity's certificate --------------------------
check ra_admin_cert cmp -cmd ir -path $P/opensslra -srvcert "$CA" -ref admin -secret pass:password \
    -newkey k3.pem -certout admin.pem -subject "/CN=RA Admin/O=EJBCA Sample/C=SE"
check ra_user_cert cmp -cmd ir -path $P/opensslra -srvcert "$CA" -ref ra -secret pass:password \
    -newkey k1.pem -certout rauser.pem -subject "/CN=rauser/O=My Organization/C=SE"
# OpenSSL 3.0 puts the -subject and the -oldcert's issuer in the template and the -oldcert's
# issuer/serial in the oldCertID control; the gateway renews the newest valid certificate of
# the entity matching the template subject (and issuer).
# Without automatic key update the RA-created entity (GENERATED) is refused as in client mode.
refused ra_kur_generated_no_auto_badMessageCheck badMessageCheck -cmd kur -path $P/eecra -srvcert "$CA" \
    -cert admin.pem -key k3.pem -newkey k2.pem -subject "/CN=rauser/O=My Organization/C=SE" \
    -oldcert rauser.pem -certout x.pem
check ra_kur_by_admin cmp -cmd kur -path $P/eecraauto -srvcert "$CA" -cert admin.pem -key k3.pem \
    -newkey k2.pem -subject "/CN=rauser/O=My Organization/C=SE" -oldcert rauser.pem \
    -certout rauser2.pem -reqout ra_kur.der,ra_conf.der
check_out ra_kur_request_signed 'body=kur .*protection=signature' "$CMPDUMP" ra_kur.der
check_out ra_kur_subject '^subject=CN = rauser, O = My Organization, C = SE$' openssl x509 -in rauser2.pem -noout -subject
[ -s rauser2.pem ] && [ "$(openssl x509 -in rauser2.pem -noout -pubkey)" = "$(openssl pkey -in k2.pem -pubout)" ] &&
    pass ra_kur_new_key || fail ra_kur_new_key "public key is not k2's"
check ra_kur_cert_verifies openssl verify -CAfile "$CA" rauser2.pem
"$CMPGATE" cert list --user rauser --config "$cfg" >list.out 2>&1
[ "$(grep -c '"serial"' list.out)" = 2 ] && grep -q "\"serial\":\"$(serial_of rauser2.pem 2>/dev/null)\"" list.out &&
    pass ra_kur_new_cert_listed || fail ra_kur_new_cert_listed "$(tr '\n' ' ' <list.out | head -c 400)"
[ "$(ncerts "RA Admin")" = 1 ] && pass ra_kur_admin_unchanged || fail ra_kur_admin_unchanged "$(ncerts "RA Admin")"
# a template naming a subject with no certificate: BAD_MESSAGE_CHECK
refused ra_kur_unknown_subject_badMessageCheck badMessageCheck -cmd kur -path $P/eecraauto -srvcert "$CA" \
    -cert admin.pem -key k3.pem -newkey k2.pem -subject "/CN=nobody/O=My Organization/C=SE" \
    -oldcert rauser.pem -certout x.pem
# a non-administrator's certificate on the RA alias: NOT_AUTHORIZED
refused ra_kur_not_admin_notAuthorized notAuthorized -cmd kur -path $P/eecraauto -srvcert "$CA" \
    -cert rauser2.pem -key k2.pem -newkey k1.pem -subject "/CN=rauser/O=My Organization/C=SE" \
    -oldcert rauser2.pem -certout x.pem
# an administrator without the kur operation: NOT_AUTHORIZED
check ra_limited_admin_cert cmp -cmd ir -path $P/opensslra -srvcert "$CA" -ref admin -secret pass:password \
    -newkey k3.pem -certout limited.pem -subject "/CN=RA Limited/O=EJBCA Sample/C=SE"
refused ra_kur_admin_without_kur_notAuthorized notAuthorized -cmd kur -path $P/eecraauto -srvcert "$CA" \
    -cert limited.pem -key k3.pem -newkey k1.pem -subject "/CN=rauser/O=My Organization/C=SE" \
    -oldcert rauser2.pem -certout x.pem
[ "$(ncerts rauser)" = 2 ] && pass ra_kur_refusals_issue_nothing || fail ra_kur_refusals_issue_nothing "$(ncerts rauser)"
kill -0 "$DAEMON_PID" 2>/dev/null && pass daemon_alive || fail daemon_alive "the daemon exited: $(tail -n 3 "$D/serve.err" | tr '\n' ' ')"
stop_daemon && pass daemon_exit_0 || fail daemon_exit_0 "exit status $?"
