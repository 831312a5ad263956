# Interoperability with a second, independent CMP implementation: Bouncy Castle's
# org.bouncycastle.cert.cmp / cert.crmf classes (test/interop/bc/CmpClient.java), over HTTP.
# RA mode (ir with PBM on opensslra, rr with PBM on cmpra and a repeated rr -> certRevoked),
# client mode (ir with PBM on opensslclient answered with signatures, a certificate-signed cr on
# openssleec, kur on the default alias `cmp`) and a wrong secret -> unprotected badMessageCheck.
# Installs the JDK and Bouncy Castle (Debian packages) when missing; FAILS when it cannot.
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
JARDIR=/usr/share/java
BC_PKGS="libbcprov-java libbcpkix-java libbcutil-java"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=""
for p in $BC_PKGS; do installed "$p" || missing="$missing $p"; done
command -v javac >/dev/null 2>&1 && command -v java >/dev/null 2>&1 || installed default-jdk-headless ||
    missing="$missing default-jdk-headless"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO="none"; fi
    if [ "$SUDO" = none ]; then
        fail setup "need$missing but not root and no sudo"; exit 1
    fi
    if ! { $SUDO timeout 300 apt-get update -qq &&
        $SUDO env DEBIAN_FRONTEND=noninteractive timeout 480 apt-get install -y -qq --no-install-recommends $missing; } \
        >"$TMP/apt.log" 2>&1; then
        fail setup "cannot install$missing (no network or no Debian repository?): $(tail -n 3 "$TMP/apt.log" | tr '\n' ' ')"
        exit 1
    fi
fi
CP=""
for j in bcprov bcpkix bcutil; do
    [ -f "$JARDIR/$j.jar" ] || { fail setup "$JARDIR/$j.jar missing after installing$missing"; exit 1; }
    CP="$CP${CP:+:}$JARDIR/$j.jar"
done
command -v javac >/dev/null 2>&1 || { fail setup "javac not found after installing$missing"; exit 1; }
mkdir -p "$TMP/classes" "$TMP/dump"
if javac -nowarn -cp "$CP" -d "$TMP/classes" "$SRC"/test/interop/bc/*.java >"$TMP/javac.out" 2>&1; then
    pass compile
else
    fail compile "$(grep -v 'bad path element' "$TMP/javac.out" | head -n 5 | tr '\n' ' ')"
    exit 1
fi
# bc MODE ARGS... : run the BC client (DER of every message in $TMP/dump/MODE-N-{req,rsp}.der)
bc() { BC_DUMP="$TMP/dump" java -XX:TieredStopAtLevel=1 -cp "$CP:$TMP/classes" CmpClient "$@"; }

D=$TMP/demo
new_instance "$D" || { fail setup "init --demo"; exit 1; }
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
CA=$D/ManagementCA.cacert.pem
cfg=$D/cmpgate.json
U=http://$SERVER/ejbca/publicweb/cmp
cd "$TMP" || exit 1
dump() { "$CMPDUMP" "$TMP/dump/$1"; }
# certok NAME FILE SUBJECT : FILE verifies with the CA and has SUBJECT (openssl's one-line form)
certok() {
    check "${1}_verifies" openssl verify -CAfile "$CA" "$2"
    check_out "${1}_subject" "^subject=$3\$" openssl x509 -in "$2" -noout -subject
}
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr A-F a-f | sed 's/^0*//'; }
listed() { "$CMPGATE" cert list --user "$1" --config "$cfg"; }

# --- RA mode: ir with PBM on opensslra, certConf, pkiConf ---------------------------------
check_out ra_ir_pbm '^OK ir-pbm: ip accepted protection=pbm .*pkiconf protection=pbm' \
    bc ir-pbm "$U/opensslra" password bcref "CN=bcra1,O=BC Interop,C=SE" "$CA" ra1.pem
check_out ra_ir_request_pbm 'body=ir protection=pbm' dump ir-pbm-1-req.der
check_out ra_certconf_pkiconf 'body=pkiconf protection=pbm' dump ir-pbm-2-rsp.der
certok ra_ir_cert ra1.pem 'CN = bcra1, O = BC Interop, C = SE'
s=$(serial_of ra1.pem)
check_out ra_ir_listed "\"serial\":\"0*$s\".*\"status\":\"active\".*\"user\":\"bcra1\"" listed bcra1

# --- RA mode: rr with PBM on cmpra, then again -> certRevoked ----------------------------
check_out ra_rr_pbm '^OK rr-pbm: rp status=accepted .*protection=pbm' \
    bc rr-pbm "$U/cmpra" password bcref ra1.pem "$CA"
check_out ra_rr_revoked_in_store "\"serial\":\"0*$s\".*\"status\":\"revoked\"" listed bcra1
check_out ra_rr_twice_certRevoked '^OK rr-pbm-expect-revoked: .*status=rejection failInfo=certRevoked' \
    bc rr-pbm-expect-revoked "$U/cmpra" password bcref ra1.pem "$CA"
check_out ra_rr_twice_dump 'body=rp status=rejection failInfo=certRevoked' dump rr-pbm-expect-revoked-1-rsp.der

# --- client mode: registered entity, ir with PBM (its enrollment code), signed responses --
check ra_addendentity "$CMPGATE" ra addendentity bcuser --dn "CN=bcuser,O=BC" --password code1 --config "$cfg"
rm -f dump/ir-pbm-*
check_out client_ir_pbm '^OK ir-pbm: ip accepted protection=signature .*pkiconf protection=signature' \
    bc ir-pbm "$U/opensslclient" code1 bcuser "CN=bcuser,O=BC" "$CA" u1.pem u1.key
check_out client_ip_signed 'body=ip status=accepted.*protection=signature' dump ir-pbm-1-rsp.der
certok client_ir_cert u1.pem 'CN = bcuser, O = BC'
check_out client_ir_listed "\"serial\":\"0*$(serial_of u1.pem)\".*\"status\":\"active\".*\"user\":\"bcuser\"" listed bcuser
check_out client_code_used_up '^OK ir-pbm-expect-error: .*failInfo=notAuthorized' \
    bc ir-pbm-expect-error "$U/opensslclient" code1 bcuser "CN=bcuser,O=BC" "$CA" notAuthorized

# --- client mode: cr signed with the first certificate on openssleec ----------------------
check ra_setendentitystatus "$CMPGATE" ra setendentitystatus bcuser NEW --config "$cfg"
check_out eec_cr_sig '^OK cr-sig: cp accepted protection=signature' \
    bc cr-sig "$U/openssleec" u1.pem u1.key "CN=bcuser,O=BC" "$CA" u2.pem u2.key
check_out eec_cr_request_signed 'body=cr protection=signature extraCerts=1' dump cr-sig-1-req.der
check_out eec_certconf_pkiconf 'body=pkiconf' dump cr-sig-2-rsp.der
certok eec_cr_cert u2.pem 'CN = bcuser, O = BC'
check_out eec_cr_listed "\"serial\":\"0*$(serial_of u2.pem)\".*\"status\":\"active\"" listed bcuser

# --- automatic key update on the default alias `cmp` with the newest certificate ----------
check_out cmp_kur_sig '^OK kur-sig: kup accepted protection=signature' \
    bc kur-sig "$U" u2.pem u2.key "$CA" u3.pem u3.key
check_out cmp_kur_request_signed 'body=kur protection=signature' dump kur-sig-1-req.der
certok cmp_kur_cert u3.pem 'CN = bcuser, O = BC'
[ "$(openssl x509 -in u3.pem -noout -pubkey)" = "$(openssl pkey -in u3.key -pubout)" ] &&
    [ "$(openssl x509 -in u3.pem -noout -pubkey)" != "$(openssl x509 -in u2.pem -noout -pubkey)" ] &&
    pass cmp_kur_new_key || fail cmp_kur_new_key "the renewed certificate does not carry the new key"
check_out cmp_kur_listed "\"serial\":\"0*$(serial_of u3.pem)\".*\"status\":\"active\"" listed bcuser
n=$(listed bcuser | grep -c '"serial"')
[ "$n" = 3 ] && pass client_three_certs || fail client_three_certs "$n certificates for bcuser"

# --- wrong secret -> unprotected error with badMessageCheck -------------------------------
check_out wrong_secret_badMessageCheck '^OK ir-pbm-expect-error: error status=rejection failInfo=badMessageCheck.* protection=none' \
    bc ir-pbm-expect-error "$U/opensslra" wrong bcref "CN=bcwrong" "$CA" badMessageCheck
check_out wrong_secret_logged 'alias=opensslra .*body=ir .*outcome=badMessageCheck' cat "$D/serve.err"

stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0 "exit $?"
