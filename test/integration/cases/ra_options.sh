# RA alias options: name generation schemes and prefix, KeyId, the CA's cmp_ra_secret,
# revocation reasons, and a second request updating an existing RA user.
D=$TMP/demo
new_instance "$D" || { fail setup "init --demo"; exit 1; }
cfg=$D/cmpgate.json
jq '.cas.ManagementCA.cmp_ra_secret = "casecret"
  | .certificate_profiles.SHORT = (.certificate_profiles.ENDUSER + {"validity": "2d"})
  | .end_entity_profiles.EMPTY.available_certificate_profiles = "*"
  | .aliases.uidra = (.aliases.opensslra + {"ra_name_generation_parameters": "UID;CN", "ra_name_generation_prefix": "cmp"})
  | .aliases.randra = (.aliases.opensslra + {"ra_name_generation_scheme": "RANDOM"})
  | .aliases.fixedra = (.aliases.opensslra + {"ra_name_generation_scheme": "FIXED", "ra_name_generation_parameters": "fixeduser"})
  | .aliases.usernamera = (.aliases.opensslra + {"ra_name_generation_scheme": "USERNAME", "extract_username_component": "O"})
  | .aliases.keyidra = (.aliases.opensslra + {"ra_certificate_profile": "KeyId"})
  | .aliases.casecret = (.aliases.opensslra + {"authentication_parameters": [""]})' "$cfg" >"$cfg.new" &&
    mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
cd "$TMP"
openssl ecparam -name prime256v1 -genkey -noout -out k.pem
enroll() { # ALIAS SUBJECT OUT [extra args]
    local a=$1 s=$2 o=$3
    shift 3
    cmp -cmd ir -path "ejbca/publicweb/cmp/$a" -srvcert "$CA" -ref x -secret pass:password \
        -certout "$o" -newkey k.pem -subject "$s" "$@" >"$o.log" 2>&1
}
users() { "$CMPGATE" cert list --config "$cfg"; }
enroll uidra "/CN=Alice/UID=alice7" u1.pem && users | grep -q '"user":"cmpalice7"' && pass dn_scheme_uid_prefix || fail dn_scheme_uid_prefix
enroll uidra "/CN=Bob" u2.pem && users | grep -q '"user":"cmpBob"' && pass dn_scheme_falls_to_cn || fail dn_scheme_falls_to_cn
enroll randra "/CN=Carol" u3.pem && users | grep -qE '"subject":"CN=Carol".*"user":"[a-z0-9]{16}"' && pass random_scheme || fail random_scheme "$(users | grep Carol)"
enroll fixedra "/CN=Dave" u4.pem && users | grep -q '"user":"fixeduser"' && pass fixed_scheme || fail fixed_scheme
enroll usernamera "/CN=Eve/O=EveOrg" u5.pem && users | grep -q '"user":"EveOrg"' && pass username_scheme || fail username_scheme
enroll fixedra "/CN=Dave2" u6.pem && [ "$(users | grep -c '"user":"fixeduser"')" = 2 ] && pass second_request_updates_user || fail second_request_updates_user
# KeyId: senderKID (-ref) names the certificate profile.
cmp -cmd ir -path ejbca/publicweb/cmp/keyidra -srvcert "$CA" -ref SHORT -secret pass:password \
    -certout short.pem -newkey k.pem -subject "/CN=short" >short.log 2>&1
end=$(date -d "$(openssl x509 -in short.pem -noout -enddate | cut -d= -f2)" +%s 2>/dev/null || echo 0)
days=$(( (end - $(date +%s)) / 86400 ))
[ "$days" -ge 1 ] && [ "$days" -le 2 ] && pass keyid_selects_profile || fail keyid_selects_profile "days=$days"
check_out keyid_unknown_profile 'badRequest.*unknown certificate profile' cmp -cmd ir -path ejbca/publicweb/cmp/keyidra \
    -srvcert "$CA" -ref NOPE -secret pass:password -certout x.pem -newkey k.pem -subject "/CN=x" -unprotected_errors
# No alias parameter: the CA's cmp_ra_secret.
check ca_secret_accepted cmp -cmd ir -path ejbca/publicweb/cmp/casecret -srvcert "$CA" -ref x -secret pass:casecret \
    -certout cs.pem -newkey k.pem -subject "/CN=cs"
check_out alias_secret_refused_there 'badMessageCheck' cmp -cmd ir -path ejbca/publicweb/cmp/casecret -srvcert "$CA" \
    -ref x -secret pass:password -certout x.pem -newkey k.pem -subject "/CN=x" -unprotected_errors
# Revocation reason is recorded.
check rr_with_reason cmp -cmd rr -path ejbca/publicweb/cmp/cmpra -srvcert "$CA" -oldcert u1.pem \
    -secret pass:password -ref x -revreason 4
s=$(openssl x509 -in u1.pem -noout -serial | cut -d= -f2)
check_out reason_recorded '"reason": 4' "$CMPGATE" cert show "$s" --config "$cfg"
# SIGTERM during a burst: the daemon exits 0 and every certificate a client got is stored.
pids=()
for i in $(seq 1 16); do
    cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$CA" -ref x -secret pass:password \
        -certout "t$i.pem" -newkey k.pem -subject "/CN=term$i" >/dev/null 2>&1 &
    pids+=($!)
done
sleep 0.3
stop_daemon && pass sigterm_during_burst_exit_0 || fail sigterm_during_burst_exit_0
for p in "${pids[@]}"; do wait "$p"; done
missing=0
for i in $(seq 1 16); do
    [ -s "t$i.pem" ] || continue
    s=$(openssl x509 -in "t$i.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
    users | grep -q "\"serial\":\"$s\"" || missing=$((missing + 1))
done
[ $missing -eq 0 ] && pass sigterm_loses_nothing || fail sigterm_loses_nothing "$missing missing"
