# The end entity admin commands: cmpgate ra addendentity|setclearpwd|setendentitystatus|show|
# list|delendentity, the EJBCA positional form of the reference guide, status names and
# numbers, every error class (exit 2 usage/configuration, exit 1 runtime, one stderr line),
# and the commands against the store of a running `serve`.
cd "$TMP"
D=$TMP/ra
new_instance "$D" || { fail setup "init --demo"; exit 1; }
cfg=$D/cmpgate.json
# STRICT: CN and O required, only CN/O/C allowed, only ENDUSER; OTHER: a second cert profile.
jq '.certificate_profiles.OTHER = .certificate_profiles.ENDUSER
  | .end_entity_profiles.STRICT = {"required_dn_attributes": ["CN", "O"],
        "allowed_dn_attributes": ["CN", "O", "C"], "available_cas": ["ManagementCA"],
        "available_certificate_profiles": ["ENDUSER"], "default_certificate_profile": "ENDUSER"}
  | .end_entity_profiles.OPEN = {"required_dn_attributes": ["CN"],
        "available_certificate_profiles": ["ENDUSER", "OTHER"],
        "default_certificate_profile": "OTHER"}' "$cfg" >"$cfg.new" &&
    mv "$cfg.new" "$cfg" && chmod 600 "$cfg"
"$CMPGATE" check-config --config "$cfg" >/dev/null 2>&1 || { fail setup "config: $("$CMPGATE" check-config --config "$cfg" 2>&1)"; exit 1; }

ra() { "$CMPGATE" ra "$@" --config "$cfg"; }
# ok NAME EXPECTED-STDOUT CMD... : exit 0, stdout exactly EXPECTED, stderr empty
ok() {
    local name=$1 want=$2
    shift 2
    "$@" >out.txt 2>err.txt
    local rc=$?
    if [ $rc -eq 0 ] && [ "$(cat out.txt)" = "$want" ] && [ ! -s err.txt ]; then pass "$name"; else
        fail "$name" "rc=$rc out=$(head -c 300 out.txt) err=$(cat err.txt)"; fi
}
# err NAME RC STDERR-LINE CMD... : exit RC, stdout empty, stderr exactly one line STDERR-LINE
err() {
    local name=$1 want_rc=$2 want=$3
    shift 3
    "$@" >out.txt 2>err.txt
    local rc=$?
    if [ $rc -eq "$want_rc" ] && [ "$(cat err.txt)" = "$want" ] && [ "$(wc -l <err.txt)" -eq 1 ] && [ ! -s out.txt ]; then
        pass "$name"; else fail "$name" "rc=$rc err=$(cat err.txt) out=$(head -c 200 out.txt)"; fi
}
# shows NAME USER JQ-EXPR : `ra show USER` succeeds and JQ-EXPR holds on its JSON
shows() {
    local name=$1 user=$2 expr=$3
    if ra show "$user" >show.json 2>err.txt && jq -e "$expr" show.json >/dev/null; then pass "$name"; else
        fail "$name" "$(tr -d '\n' <show.json | head -c 400) $(cat err.txt)"; fi
}

# --- the reference guide's commands, verbatim (plus --config) --------------------------
ok ejbca_addendentity 'added end entity user1' \
    ra addendentity user1 --password password "CN=user1,O=My Organization,C=SE" ManagementCA 1 USERGENERATED
shows ejbca_show user1 '.username == "user1" and .dn == "CN=user1,O=My Organization,C=SE"
    and .ca == "ManagementCA" and .eeprofile == "EMPTY" and .certprofile == "ENDUSER"
    and .status == "NEW" and .status_code == 10 and .token == "USERGENERATED"
    and .has_password == true and .version == 1 and .ra_created == false
    and .certificates == [] and (has("altname") | not) and (has("password") | not)
    and .created == .modified and (.created | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"))'
grep -q '"password"' show.json && fail show_never_prints_password || pass show_never_prints_password
ok ejbca_setclearpwd 'set password of user1' ra setclearpwd user1 password
ok ejbca_setendentitystatus 'set status of user1 to NEW (10)' ra setendentitystatus user1 10
shows updates_bump_version user1 '.version == 3 and .status_code == 10 and .has_password == true'
# EJBCA form with other token types and end entity types; a type is any positive integer.
ok ejbca_form_p12 'added end entity user2' ra addendentity user2 "CN=user2" ManagementCA 2 p12
shows ejbca_form_token_uppercased user2 '.token == "P12" and .has_password == false and .status == "NEW"'
ok ejbca_form_dn_only 'added end entity user3' ra addendentity user3 "CN=user3"
ok ejbca_form_mixed_order 'added end entity user4' ra addendentity --status 40 user4 CN=user4 --password pw ManagementCA 1 JKS
shows ejbca_form_mixed_fields user4 '.token == "JKS" and .status == "GENERATED" and .has_password == true'

# --- the option form ---------------------------------------------------------------------
ok options_form 'added end entity dev1' ra addendentity dev1 --dn ' cn = dev1 , o=Acme\, Inc. ,E=dev1@example.com,UID=42,DC=example,serialNumber=S1' \
    --password secret --ca ManagementCA --eeprofile OPEN --certprofile ENDUSER --status initialized \
    --altname 'dNSName=dev1.example.com' --token PEM
shows options_fields dev1 '.dn == "CN=dev1,O=Acme\\, Inc.,emailAddress=dev1@example.com,UID=42,DC=example,serialNumber=S1"
    and .altname == "dNSName=dev1.example.com" and .eeprofile == "OPEN" and .certprofile == "ENDUSER"
    and .status == "INITIALIZED" and .status_code == 20 and .token == "PEM" and .has_password == true'
ok option_equals_form 'added end entity dev2' ra addendentity dev2 --dn=CN=dev2 --eeprofile=OPEN --token=jks
shows eeprofile_default_certprofile dev2 '.certprofile == "OTHER" and .ca == "ManagementCA" and .token == "JKS"'
ok strict_profile_ok 'added end entity dev3' ra addendentity dev3 --dn 'CN=dev3,O=Org,C=DE' --eeprofile STRICT
ok hex_escape 'added end entity dev4' ra addendentity dev4 --dn 'CN=\41bc,O=a\+b'
shows hex_escape_dn dev4 '.dn == "CN=Abc,O=a\\+b"'
# a '+' before another ATTR= starts a multi-valued RDN (RFC 4514); any other stays in the value
ok multivalued_rdn 'added end entity dev5' ra addendentity dev5 --dn 'CN=dev5 + UID=7,O=a+b'
shows multivalued_rdn_dn dev5 '.dn == "CN=dev5+UID=7,O=a\\+b"'

# --- status names and numbers ------------------------------------------------------------
for pair in NEW:10 FAILED:11 INITIALIZED:20 INPROCESS:30 GENERATED:40 REVOKED:50 HISTORICAL:60 KEYRECOVERY:70; do
    n=${pair%%:*} c=${pair##*:} lc=$(echo "$n" | tr A-Z a-z)
    ra setendentitystatus user3 "$c" >/dev/null 2>&1 && ra show user3 | jq -e ".status == \"$n\" and .status_code == $c" >/dev/null &&
        ra setendentitystatus user3 NEW >/dev/null 2>&1 && ra setendentitystatus user3 "$lc" >/dev/null 2>&1 &&
        ra show user3 | jq -e ".status == \"$n\" and .status_code == $c" >/dev/null &&
        pass "status_$lc" || fail "status_$lc"
done
ok status_message_names 'set status of user3 to KEYRECOVERY (70)' ra setendentitystatus user3 KeyRecovery
ok add_with_numeric_status 'added end entity user5' ra addendentity user5 --dn CN=user5 --status 50
shows add_status_number user5 '.status == "REVOKED" and .status_code == 50'
ok setstatus_keeps_password 'set status of user1 to GENERATED (40)' ra setendentitystatus user1 GENERATED
shows password_kept_after_status user1 '.has_password == true and .status_code == 40'
ok setclearpwd_on_passwordless 'set password of user2' ra setclearpwd user2 newsecret
shows setclearpwd_sets_password user2 '.has_password == true and .version == 2'

# --- list --------------------------------------------------------------------------------
ra list >list.txt 2>err.txt
[ $? -eq 0 ] && [ "$(wc -l <list.txt)" -eq 10 ] && [ ! -s err.txt ] &&
    [ "$(jq -sc 'map(.username)' list.txt)" = '["dev1","dev2","dev3","dev4","dev5","user1","user2","user3","user4","user5"]' ] &&
    pass list_one_line_per_entity || fail list_one_line_per_entity "$(cat list.txt err.txt)"
[ "$(grep '"user1"' list.txt)" = '{"username":"user1","dn":"CN=user1,O=My Organization,C=SE","ca":"ManagementCA","status":"GENERATED","status_code":40}' ] &&
    pass list_line_exact || fail list_line_exact "$(grep user1 list.txt)"
CMPGATE_CONFIG=$cfg "$CMPGATE" ra list >env.txt 2>&1 && diff -q list.txt env.txt >/dev/null &&
    pass env_config || fail env_config "$(head -2 env.txt)"

# --- delendentity --------------------------------------------------------------------------
ok delendentity 'deleted user5 (0 certificates kept)' ra delendentity user5
err show_deleted 1 'cmpgate: ra show: no such end entity user5' ra show user5
ok readd_after_delete 'added end entity user5' ra addendentity user5 --dn CN=user5
shows readd_fresh_record user5 '.version == 1 and .status == "NEW"'

# --- runtime errors: exit 1 ----------------------------------------------------------------
err add_existing 1 'cmpgate: ra addendentity: user user1 already exists' ra addendentity user1 --dn CN=other
shows add_existing_unchanged user1 '.dn == "CN=user1,O=My Organization,C=SE"'
err setclearpwd_missing_user 1 'cmpgate: ra setclearpwd: no such end entity nobody' ra setclearpwd nobody pw
err setstatus_missing_user 1 'cmpgate: ra setendentitystatus: no such end entity nobody' ra setendentitystatus nobody 10
err show_missing_user 1 'cmpgate: ra show: no such end entity nobody' ra show nobody
err del_missing_user 1 'cmpgate: ra delendentity: no such end entity nobody' ra delendentity nobody

# --- usage errors: exit 2 ------------------------------------------------------------------
err no_subcommand 2 'cmpgate: ra: missing subcommand (addendentity, setclearpwd, setendentitystatus, show, list, delendentity)' ra
err unknown_subcommand 2 'cmpgate: ra frob: unknown subcommand (addendentity, setclearpwd, setendentitystatus, show, list, delendentity)' ra frob
err add_missing_username 2 'cmpgate: ra addendentity: missing USERNAME' ra addendentity --dn CN=x
err add_missing_dn 2 'cmpgate: ra addendentity: missing DN (--dn DN)' ra addendentity u9
err add_dn_twice 2 'cmpgate: ra addendentity: the DN is given both with --dn and as an argument' ra addendentity u9 CN=a --dn CN=b
err add_ca_twice 2 'cmpgate: ra addendentity: the CA is given both with --ca and as an argument' ra addendentity u9 CN=a ManagementCA --ca ManagementCA
err add_type_not_integer 2 'cmpgate: ra addendentity: end entity type one must be a positive integer (1 = end user)' ra addendentity u9 CN=a ManagementCA one USERGENERATED
err add_type_zero 2 'cmpgate: ra addendentity: end entity type 0 must be a positive integer (1 = end user)' ra addendentity u9 CN=a ManagementCA 0
err add_bad_token 2 'cmpgate: ra addendentity: unknown token type BCFKS (USERGENERATED, P12, JKS, PEM)' ra addendentity u9 CN=a ManagementCA 1 BCFKS
err add_bad_token_option 2 'cmpgate: ra addendentity: unknown token type X (USERGENERATED, P12, JKS, PEM)' ra addendentity u9 --dn CN=a --token X
err add_too_many_args 2 'cmpgate: ra addendentity: unexpected argument extra' ra addendentity u9 CN=a ManagementCA 1 P12 extra
err add_unknown_option 2 'cmpgate: ra addendentity: unknown option --bogus' ra addendentity u9 --dn CN=a --bogus 1
err add_option_no_value 2 'cmpgate: ra addendentity: option --password needs a value' ra addendentity u9 --dn CN=a --password
err add_bad_status 2 'cmpgate: ra addendentity: unknown status 12 (NEW 10, FAILED 11, INITIALIZED 20, INPROCESS 30, GENERATED 40, REVOKED 50, HISTORICAL 60, KEYRECOVERY 70)' ra addendentity u9 --dn CN=a --status 12
err add_empty_password 2 'cmpgate: ra addendentity: the password is empty' ra addendentity u9 --dn CN=a --password ''
err dn_unknown_attr 2 'cmpgate: ra addendentity: invalid DN "CN=a,FOO=b": unknown attribute FOO' ra addendentity u9 --dn CN=a,FOO=b
err dn_empty_value 2 'cmpgate: ra addendentity: invalid DN "CN=a,O=": empty value for O' ra addendentity u9 --dn CN=a,O=
err dn_no_equals 2 'cmpgate: ra addendentity: invalid DN "CN=a,junk": "junk" is not of the form ATTR=value' ra addendentity u9 --dn CN=a,junk
err dn_empty 2 'cmpgate: ra addendentity: invalid DN " ": the DN is empty' ra addendentity u9 --dn ' '
err dn_trailing_comma 2 'cmpgate: ra addendentity: invalid DN "CN=a,": trailing comma' ra addendentity u9 --dn CN=a,
err dn_control_char 2 'cmpgate: ra addendentity: invalid DN "CN=a\0Ab": value of CN contains a control character' ra addendentity u9 --dn 'CN=a\0Ab'
err dn_escaped_blank 2 'cmpgate: ra addendentity: invalid DN "CN=a\ ": value of CN begins or ends with a blank' ra addendentity u9 --dn 'CN=a\ '
err dn_bad_country 2 'cmpgate: ra addendentity: invalid DN "CN=a,C=SWE": invalid value for C (wrong length or characters)' ra addendentity u9 --dn CN=a,C=SWE
err dn_lacks_required 2 'cmpgate: ra addendentity: the DN lacks CN, required by end entity profile EMPTY' ra addendentity u9 --dn O=a
err dn_lacks_required_strict 2 'cmpgate: ra addendentity: the DN lacks O, required by end entity profile STRICT' ra addendentity u9 --dn CN=a --eeprofile STRICT
err dn_not_allowed 2 'cmpgate: ra addendentity: attribute OU is not allowed by end entity profile STRICT' ra addendentity u9 --dn CN=a,O=b,OU=c --eeprofile STRICT
err unknown_ca 2 'cmpgate: ra addendentity: unknown CA NoCA' ra addendentity u9 --dn CN=a --ca NoCA
err unknown_ca_positional 2 'cmpgate: ra addendentity: unknown CA NoCA' ra addendentity u9 CN=a NoCA 1 USERGENERATED
err unknown_eeprofile 2 'cmpgate: ra addendentity: unknown end entity profile NOPE' ra addendentity u9 --dn CN=a --eeprofile NOPE
err unknown_certprofile 2 'cmpgate: ra addendentity: unknown certificate profile NOPE' ra addendentity u9 --dn CN=a --certprofile NOPE
err certprofile_not_available 2 'cmpgate: ra addendentity: certificate profile OTHER is not available in end entity profile STRICT' ra addendentity u9 --dn CN=a,O=b --eeprofile STRICT --certprofile OTHER
err username_control_char 2 'cmpgate: ra addendentity: USERNAME must not contain control characters' ra addendentity "$(printf 'a\tb')" --dn CN=a
err username_too_long 2 'cmpgate: ra show: USERNAME must be 1 to 255 bytes long' ra show "$(printf '%0256d' 0)"
err username_empty 2 'cmpgate: ra delendentity: USERNAME must be 1 to 255 bytes long' ra delendentity ''
err setclearpwd_missing_password 2 'cmpgate: ra setclearpwd: missing PASSWORD' ra setclearpwd user1
err setclearpwd_empty_password 2 'cmpgate: ra setclearpwd: the password is empty' ra setclearpwd user1 ''
err setstatus_missing_status 2 'cmpgate: ra setendentitystatus: missing STATUS' ra setendentitystatus user1
err setstatus_bad_name 2 'cmpgate: ra setendentitystatus: unknown status DONE (NEW 10, FAILED 11, INITIALIZED 20, INPROCESS 30, GENERATED 40, REVOKED 50, HISTORICAL 60, KEYRECOVERY 70)' ra setendentitystatus user1 DONE
err setstatus_bad_number 2 'cmpgate: ra setendentitystatus: unknown status 15 (NEW 10, FAILED 11, INITIALIZED 20, INPROCESS 30, GENERATED 40, REVOKED 50, HISTORICAL 60, KEYRECOVERY 70)' ra setendentitystatus user1 15
err show_missing_username 2 'cmpgate: ra show: missing USERNAME' ra show
err show_extra_arg 2 'cmpgate: ra show: unexpected argument extra' ra show user1 extra
err list_extra_arg 2 'cmpgate: ra list: unexpected argument x' ra list x
err del_unknown_option 2 'cmpgate: ra delendentity: unknown option --force' ra delendentity user1 --force
err no_config 2 'cmpgate: no configuration: give --config FILE or set CMPGATE_CONFIG' env -u CMPGATE_CONFIG "$CMPGATE" ra list
jq '.workers = "two"' "$cfg" >"$D/bad.json"
"$CMPGATE" ra list --config "$D/bad.json" >/dev/null 2>err.txt; rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <err.txt)" -eq 1 ] && grep -q 'bad.json: workers: must be an integer' err.txt &&
    pass bad_config_exit_2 || fail bad_config_exit_2 "rc=$rc $(cat err.txt)"
shows usage_errors_changed_nothing user1 '.version == 4'
ra list | jq -e 'select(.username == "u9")' >/dev/null && fail no_u9_created || pass no_u9_created
"$CMPGATE" --help | grep -q 'cmpgate ra addendentity USERNAME' && pass usage_lists_ra || fail usage_lists_ra

# --- with serve running on the same store ----------------------------------------------------
start_daemon "$D" || { fail setup "daemon did not start"; exit 1; }
ok serving_add 'added end entity live1' ra addendentity live1 --password password "CN=live1,O=My Organization,C=SE" ManagementCA 1 USERGENERATED
ok serving_setclearpwd 'set password of live1' ra setclearpwd live1 password2
ok serving_setstatus 'set status of live1 to INPROCESS (30)' ra setendentitystatus live1 inprocess
shows serving_show live1 '.status == "INPROCESS" and .status_code == 30 and .version == 3 and .has_password == true'
# An RA-mode enrollment for CN=live1 updates the same record; ra show lists its certificate.
openssl ecparam -name prime256v1 -genkey -noout -out k.pem
cmp -cmd ir -path ejbca/publicweb/cmp/opensslra -srvcert "$D/ManagementCA.cacert.pem" -ref x \
    -secret pass:password -certout live1.pem -newkey k.pem -subject "/CN=live1/O=My Organization/C=SE" >cmp.log 2>&1 ||
    fail serving_enroll "$(tail -n 2 cmp.log | tr '\n' ' ')"
serial=$(openssl x509 -in live1.pem -noout -serial 2>/dev/null | cut -d= -f2 | tr A-F a-f | sed 's/^0*//')
shows serving_show_certificate live1 "(.certificates | length) == 1 and (.certificates[0].serial | ltrimstr(\"0\")) == \"$serial\"
    and .certificates[0].status == \"active\" and (.certificates[0].notAfter | endswith(\"Z\")) and .version > 3"
# parallel admin commands on distinct users while serving
pids=()
for i in 1 2 3 4 5 6; do
    ra addendentity "par$i" --dn "CN=par$i" >/dev/null 2>&1 &
    pids+=($!)
done
wait "${pids[@]}" # not a bare wait: the daemon is a child too
[ "$(ra list | jq -r 'select(.username | startswith("par")) | .username' | wc -l)" -eq 6 ] &&
    pass serving_parallel_adds || fail serving_parallel_adds
ok serving_delete_keeps_certs 'deleted live1 (1 certificates kept)' ra delendentity live1
"$CMPGATE" cert list --user live1 --config "$cfg" | jq -e 'select(.user == "live1")' >/dev/null &&
    pass certificate_survives_delete || fail certificate_survives_delete
err serving_show_deleted 1 'cmpgate: ra show: no such end entity live1' ra show live1
stop_daemon && pass sigterm_exit_0 || fail sigterm_exit_0
