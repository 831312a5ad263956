# The command line: init, check-config errors (exit 2, FILE: PATH: REASON), cert commands.
cd "$TMP"
"$CMPGATE" init --demo d1 >/dev/null && pass init_demo || fail init_demo
[ "$(stat -c %a d1/ca/ManagementCA.key.pem)" = 600 ] && pass ca_key_0600 || fail ca_key_0600
check_out check_config_ok 'ok' "$CMPGATE" check-config --config d1/cmpgate.json
"$CMPGATE" init --demo d1 >/dev/null 2>err.txt; rc=$?
[ $rc -eq 2 ] && grep -q 'exists' err.txt && pass init_refuses_overwrite || fail init_refuses_overwrite "rc=$rc"
"$CMPGATE" init --demo --force --ca-key rsa2048 d1 >/dev/null && openssl x509 -in d1/ManagementCA.cacert.pem -noout -text | grep -q 'rsaEncryption' &&
    pass init_force_rsa || fail init_force_rsa
"$CMPGATE" init d2 >out.txt && grep -q 'HMAC secrets (shown once): opensslra=' out.txt && ! grep -q '"password"' d2/cmpgate.json &&
    pass init_random_secrets || fail init_random_secrets
grep -q '127.0.0.1' d2/cmpgate.json && ! grep -q '0.0.0.0' d2/cmpgate.json && pass init_binds_loopback || fail init_binds_loopback

cfgerr() { # NAME JQ-FILTER PATTERN
    jq "$2" d1/cmpgate.json >bad.json
    cp -r d1/ca d1/vendor d1/ManagementCA.cacert.pem . 2>/dev/null
    "$CMPGATE" check-config --config bad.json >/dev/null 2>err.txt
    local rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <err.txt)" -eq 1 ] && grep -qE -- "$3" err.txt; then pass "$1"; else fail "$1" "rc=$rc $(cat err.txt)"; fi
}
cfgerr unknown_key '.aliases.opensslra.bogus = 1' '^cmpgate: bad.json: aliases.opensslra.bogus: unknown key'
cfgerr bad_mode '.aliases.opensslra.mode = "proxy"' 'aliases.opensslra.mode: must be one of'
cfgerr vendor_mode_without_vendor_ca '.aliases.opensslra.vendor_certificate_mode = true' 'aliases.opensslra.vendor_cas: vendor certificate mode needs at least one vendor CA'
cfgerr proxy_mode_not_yet '.aliases.opensslra.proxy = {"url": "http://127.0.0.1:1/"}' 'aliases.opensslra.proxy: proxy mode .* is not available'
cfgerr proxy_must_be_object '.aliases.opensslra.proxy = "http://x"' 'aliases.opensslra.proxy: must be an object'
cfgerr regtoken_in_ra_mode '.aliases.opensslra.authentication_modules = ["RegTokenPwd"]' 'aliases.opensslra.authentication_modules: .*client mode only'
cfgerr unknown_profile '.aliases.opensslra.ra_certificate_profile = "NOPE"' 'aliases.opensslra.ra_certificate_profile: unknown'
cfgerr wrong_type '.workers = "two"' 'workers: must be an integer'
cfgerr missing_ca_file '.cas.ManagementCA.cert_file = "nope.pem"' 'cas.ManagementCA.cert_file: cannot read'
printf '{"cas": ' >syntax.json
"$CMPGATE" check-config --config syntax.json 2>err.txt; rc=$?
[ $rc -eq 2 ] && grep -q 'syntax.json: (root):' err.txt && pass json_syntax_error || fail json_syntax_error "rc=$rc"
chmod 644 ca/ManagementCA.key.pem
jq . d1/cmpgate.json >bad.json
"$CMPGATE" check-config --config bad.json 2>err.txt; rc=$?
[ $rc -eq 2 ] && grep -q 'readable by group or others' err.txt && pass world_readable_key_refused || fail world_readable_key_refused "rc=$rc $(cat err.txt)"
"$CMPGATE" serve --config bad.json 2>err.txt; rc=$?
[ $rc -eq 2 ] && pass serve_refuses_bad_config || fail serve_refuses_bad_config "rc=$rc"
"$CMPGATE" frobnicate 2>err.txt; [ $? -eq 2 ] && pass unknown_command_exit_2 || fail unknown_command_exit_2
"$CMPGATE" cert list 2>err.txt; [ $? -eq 2 ] && grep -q 'CMPGATE_CONFIG' err.txt && pass no_config_exit_2 || fail no_config_exit_2
CMPGATE_CONFIG=d1/cmpgate.json "$CMPGATE" cert list >/dev/null && pass env_config || fail env_config
"$CMPGATE" cert show zz --config d1/cmpgate.json 2>/dev/null; [ $? -eq 2 ] && pass cert_show_bad_serial_exit_2 || fail cert_show_bad_serial_exit_2

# cert revoke from the command line, on a certificate issued over CMP.
new_instance "$TMP/d3" && start_daemon "$TMP/d3" || { fail setup "daemon"; exit 1; }
openssl ecparam -name prime256v1 -genkey -noout -out k.pem
cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$TMP/d3/ManagementCA.cacert.pem" -ref x \
    -secret pass:password -certout c.pem -newkey k.pem -subject "/CN=cliuser" >/dev/null 2>&1
s=$(openssl x509 -in c.pem -noout -serial | cut -d= -f2)
check_out cert_show '"status": "active"' "$CMPGATE" cert show "$s" --config "$TMP/d3/cmpgate.json"
[ "$(stat -c %a "$TMP/d3/store")" = 700 ] && [ "$(stat -c %a "$TMP/d3/store/data.mdb")" = 600 ] &&
    [ "$(stat -c %a "$TMP/d3/ca")" = 700 ] && pass store_and_key_dirs_private ||
    fail store_and_key_dirs_private "$(stat -c '%a %n' "$TMP/d3/store" "$TMP/d3/store/data.mdb" "$TMP/d3/ca")"
check cert_revoke_while_serving "$CMPGATE" cert revoke "$s" --reason 1 --config "$TMP/d3/cmpgate.json"
check_out cert_show_revoked '"reason": 1' "$CMPGATE" cert show "$s" --config "$TMP/d3/cmpgate.json"
"$CMPGATE" cert revoke "$s" --config "$TMP/d3/cmpgate.json" 2>err.txt; rc=$?
[ $rc -eq 1 ] && grep -q 'already revoked' err.txt && pass cert_revoke_twice || fail cert_revoke_twice "rc=$rc"
check_out rr_after_cli_revoke 'certRevoked' cmp -cmd rr -path ejbca/publicweb/cmp/cmpra \
    -srvcert "$TMP/d3/ManagementCA.cacert.pem" -oldcert c.pem -secret pass:password -ref x
stop_daemon || fail sigterm_exit_0
