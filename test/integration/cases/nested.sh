# Nested messages (RFC 4210 5.1.3.4) against the real daemon: an ir built by the real
# `openssl cmp` client (-reqout, against a throw-away second instance so that the real one
# has never seen its transactionID), wrapped by cmpnest into a nested message signed by an
# RA whose root is in nested_message_trusted_certs_path, POSTed, and the answer unwrapped.
CMPNEST="$BUILD/test/cmpnest"
[ -x "$CMPNEST" ] || { fail setup "no $CMPNEST"; exit 1; }
cd "$TMP"
# The RA root (trusted) and the RA certificate; a second root that is not trusted.
openssl ecparam -name prime256v1 -genkey -noout -out raroot.key
openssl req -x509 -new -key raroot.key -subj "/CN=RA root/O=Nested Test" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -out raroot.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out ra.key
openssl req -new -key ra.key -subj "/CN=Nested RA/O=Nested Test" -out ra.csr 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' >ra.ext
openssl x509 -req -in ra.csr -CA raroot.pem -CAkey raroot.key -CAcreateserial -days 1 \
    -extfile ra.ext -out ra.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out other.key
openssl req -x509 -new -key other.key -subj "/CN=Nested RA/O=Nested Test" -days 1 -out other.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out ee.key

# The throw-away instance: only produces the inner requests' DER.
G=$TMP/gen
new_instance "$G" || { fail setup "init --demo (gen)"; exit 1; }
start_daemon "$G" || { fail setup "gen daemon did not start"; exit 1; }
for u in nest1 nest2 nest3 nest4; do
    cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$G/ManagementCA.cacert.pem" -ref x \
        -secret pass:password -newkey ee.key -subject "/CN=$u/O=Nested Test" -implicit_confirm \
        -certout "gen_$u.pem" -reqout "$u.der" >/dev/null 2>&1 || fail "gen_$u" "openssl cmp -reqout"
done
stop_daemon

# The real instance: alias nestedra = opensslra + the trust path.
D=$TMP/nested
new_instance "$D" || { fail setup "init --demo"; exit 1; }
cfg=$D/cmpgate.json
cp raroot.pem "$D/nested-trust.pem"
jq '.aliases.nestedra = (.aliases.opensslra + {"nested_message_trusted_certs_path": "nested-trust.pem"})' \
    "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
"$CMPGATE" check-config --config "$cfg" >/dev/null 2>&1 || { fail setup "config: $("$CMPGATE" check-config --config "$cfg" 2>&1)"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
ncerts() { "$CMPGATE" cert list --user "$1" --config "$cfg" | grep -c '"serial"'; }

# One inner ir: a CA-signed nested answer holding a PBM-protected ip.
check wrap_one "$CMPNEST" --in nest1.der --cert ra.pem --key ra.key --out n1.der
code=$(post ejbca/publicweb/cmp/nestedra n1.der)
[ "$code" = 200 ] && pass post_one_200 || fail post_one_200 "HTTP $code"
cp "$TMP/resp" r1.der
check_out nested_answer_signed 'body=nested .*protection=signature extraCerts=1' "$CMPDUMP" r1.der
check_out unwrap_one '^1$' "$CMPNEST" --unwrap r1.der --out-prefix r1_
check_out inner_ip_accepted 'body=ip status=accepted .*protection=pbm' "$CMPDUMP" r1_1.der
[ "$(ncerts nest1)" = 1 ] && pass store_has_nest1 || fail store_has_nest1 "$(ncerts nest1) certificates"

# Two inner requests, on the RFC 9811 path: two ips in order.
check wrap_two "$CMPNEST" --in nest2.der,nest3.der --cert ra.pem --key ra.key --out n2.der
code=$(post .well-known/cmp/p/nestedra/nested n2.der)
[ "$code" = 200 ] && pass post_two_200 || fail post_two_200 "HTTP $code"
cp "$TMP/resp" r2.der
check_out unwrap_two '^2$' "$CMPNEST" --unwrap r2.der --out-prefix r2_
check_out inner_ip_1 'body=ip status=accepted' "$CMPDUMP" r2_1.der
check_out inner_ip_2 'body=ip status=accepted' "$CMPDUMP" r2_2.der
[ "$(ncerts nest2)" = 1 ] && [ "$(ncerts nest3)" = 1 ] && pass store_has_nest2_nest3 ||
    fail store_has_nest2_nest3 "$(ncerts nest2) / $(ncerts nest3)"

# An RA not in the trust path; an alias without nested_message_trusted_certs_path.
check wrap_untrusted "$CMPNEST" --in nest4.der --cert other.pem --key other.key --out n3.der
post ejbca/publicweb/cmp/nestedra n3.der >/dev/null
check_out untrusted_ra_badRequest 'body=error status=rejection failInfo=badRequest .*protection=none' \
    "$CMPDUMP" "$TMP/resp"
check wrap_four "$CMPNEST" --in nest4.der --cert ra.pem --key ra.key --out n4.der
post ejbca/publicweb/cmp/opensslra n4.der >/dev/null
check_out not_enabled_badRequest 'body=error status=rejection failInfo=badRequest' "$CMPDUMP" "$TMP/resp"
[ "$(ncerts nest4)" = 0 ] && pass nothing_issued_nest4 || fail nothing_issued_nest4 "$(ncerts nest4) certificates"
stop_daemon && pass daemon_clean_exit || fail daemon_clean_exit "exit status $?"
