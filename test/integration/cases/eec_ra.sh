# RA mode with the EndEntityCertificate module and configured administrators: requests signed
# with an administrator's certificate (issued by ManagementCA, in the store) are accepted for
# the administrator's operations only; a non-administrator, a fingerprint that does not match
# and (error table row "signing certificate which was revoked or expired") a revoked
# administrator certificate are refused.
D=$TMP/eecra
new_instance "$D" || { fail setup "init --demo"; exit 1; }
cfg=$D/cmpgate.json
ADMIN_DN="CN=RA Admin,O=EJBCA Sample,C=SE"
jq --arg dn "$ADMIN_DN" '.administrators = [{"subject": $dn, "ca": "ManagementCA",
        "end_entity_profiles": ["*"], "operations": ["ir", "cr", "p10cr"]}]
    | .aliases.eecra = (.aliases.opensslra + {"authentication_modules": ["EndEntityCertificate"],
        "authentication_parameters": ["ManagementCA"], "response_protection": "signature"})' \
    "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
"$CMPGATE" check-config --config "$cfg" >/dev/null 2>&1 || { fail setup "config: $("$CMPGATE" check-config --config "$cfg" 2>&1)"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
cd "$TMP"
ncerts() { "$CMPGATE" cert list --user "$1" --config "$cfg" | grep -c '"serial"'; }
openssl genrsa 2048 >admin_key.pem 2>/dev/null
openssl genrsa 2048 >user_key.pem 2>/dev/null
openssl genrsa 2048 >new_key.pem 2>/dev/null

# The administrator's certificate and a non-administrator's, both from ManagementCA (RA ir).
check admin_cert_ir cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x -secret pass:password \
    -certout admin.pem -newkey admin_key.pem -subject "/CN=RA Admin/O=EJBCA Sample/C=SE"
check nonadmin_cert_ir cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x -secret pass:password \
    -certout nonadmin.pem -newkey user_key.pem -subject "/CN=Not Admin/O=EJBCA Sample/C=SE"

# The administrator signs an ir, a cr and a p10cr for other subjects.
check admin_signed_ir cmp -cmd ir -path ejbca/publicweb/cmp/eecra -srvcert "$CA" -cert admin.pem -key admin_key.pem \
    -certout ra1.pem -newkey new_key.pem -subject "/CN=raissued1/O=My Organization/C=SE" -reqout admin_ir.der -rspout admin_ip.der
check_out admin_ir_subject 'subject=CN = raissued1, O = My Organization, C = SE' openssl x509 -in ra1.pem -noout -subject
check admin_ir_cert_verifies openssl verify -CAfile "$CA" ra1.pem
check_out admin_ir_signed_request 'body=ir .*protection=signature' "$CMPDUMP" admin_ir.der
check_out admin_ip_signed 'body=ip status=accepted.*protection=signature' "$CMPDUMP" admin_ip.der
[ "$(ncerts raissued1)" = 1 ] && pass admin_ir_stored || fail admin_ir_stored "$(ncerts raissued1)"
check admin_signed_cr cmp -cmd cr -path ejbca/publicweb/cmp/eecra -srvcert "$CA" -cert admin.pem -key admin_key.pem \
    -certout ra2.pem -newkey new_key.pem -subject "/CN=raissued2"
check_out admin_cr_subject 'subject=CN = raissued2$' openssl x509 -in ra2.pem -noout -subject
openssl req -new -key new_key.pem -subj "/CN=raissued3/C=SE" -out p10.csr
check admin_signed_p10cr cmp -cmd p10cr -path ejbca/publicweb/cmp/eecra -srvcert "$CA" -cert admin.pem \
    -key admin_key.pem -certout ra3.pem -csr p10.csr
check_out admin_p10cr_subject 'subject=CN = raissued3, C = SE' openssl x509 -in ra3.pem -noout -subject

# rr is not among the administrator's operations.
refused admin_rr_notAuthorized notAuthorized -cmd rr -path ejbca/publicweb/cmp/eecra -srvcert "$CA" \
    -cert admin.pem -key admin_key.pem -oldcert ra1.pem
check_out admin_rr_left_cert_active '"status":"active"' "$CMPGATE" cert list --user raissued1 --config "$cfg"

# A certificate from ManagementCA that does not belong to an administrator.
refused nonadmin_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/eecra -srvcert "$CA" \
    -cert nonadmin.pem -key user_key.pem -certout x.pem -newkey new_key.pem -subject "/CN=byNonAdmin"
# A self-signed certificate with the administrator's subject (not in the store); OpenSSL 3.0
# leaves a self-signed -cert out of extraCerts, -extracerts puts it there.
openssl req -x509 -new -key admin_key.pem -subj "/CN=RA Admin/O=EJBCA Sample/C=SE" -days 30 -out fake_admin.pem 2>/dev/null
refused fake_admin_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/eecra -srvcert "$CA" \
    -cert fake_admin.pem -extracerts fake_admin.pem -key admin_key.pem -certout x.pem -newkey new_key.pem -subject "/CN=byFake"
[ "$(ncerts byNonAdmin)$(ncerts byFake)" = 00 ] && pass refused_issue_nothing || fail refused_issue_nothing

# Fingerprint-restricted administrator entries (the daemon reads the configuration at start).
set_admin_fp() {
    stop_daemon
    jq --arg fp "$1" '.administrators[0].fingerprint_sha256 = $fp' "$cfg" >"$cfg.new" &&
        mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
    start_daemon "$D"
}
set_admin_fp "$(printf '00%.0s' $(seq 1 32))" || { fail restart "daemon did not restart"; exit 1; }
refused admin_fingerprint_mismatch_notAuthorized notAuthorized -cmd ir -path ejbca/publicweb/cmp/eecra \
    -srvcert "$CA" -cert admin.pem -key admin_key.pem -certout x.pem -newkey new_key.pem -subject "/CN=byWrongFp"
fp=$(openssl x509 -in admin.pem -noout -fingerprint -sha256 | cut -d= -f2)
set_admin_fp "$fp" || { fail restart "daemon did not restart"; exit 1; }
check admin_fingerprint_match cmp -cmd ir -path ejbca/publicweb/cmp/eecra -srvcert "$CA" -cert admin.pem \
    -key admin_key.pem -certout ra4.pem -newkey new_key.pem -subject "/CN=byRightFp"
[ "$(ncerts byWrongFp)$(ncerts byRightFp)" = 01 ] && pass fingerprint_issued_once ||
    fail fingerprint_issued_once "$(ncerts byWrongFp)$(ncerts byRightFp)"

# The administrator's certificate revoked (rr on cmpra) -> the next signed ir is BAD_REQUEST.
check revoke_admin_cert cmp -cmd rr -path ejbca/publicweb/cmp/cmpra -srvcert "$CA" -oldcert admin.pem \
    -secret pass:password -ref ffaabb
refused revoked_admin_badRequest badRequest -cmd ir -path ejbca/publicweb/cmp/eecra -srvcert "$CA" \
    -cert admin.pem -key admin_key.pem -certout x.pem -newkey new_key.pem -subject "/CN=byRevoked" -rspout revoked.der
check_out revoked_admin_error_form 'body=error status=rejection failInfo=badRequest .*protection=none' "$CMPDUMP" revoked.der
[ "$(ncerts byRevoked)" = 0 ] && pass revoked_issued_nothing || fail revoked_issued_nothing

stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0 "exit $?"
