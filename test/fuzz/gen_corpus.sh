#!/usr/bin/env bash
# test/fuzz/gen_corpus.sh BUILD - regenerate the seed corpora of test/fuzz/corpus/ with the
# real `openssl cmp` client against a demo daemon (BUILD/cmpgate) that uses the fixed test CA
# of test/fuzz/ca (the CA fuzz_core.c loads, so the seeds' signatures and MACs verify there).
# Seeds: every request body type the gateway answers (ir, cr, p10cr, kur, rr, certConf, genm,
# nested, error, ir protected by signature, ir of the client-mode alias) and the answers
# (ip, cp, rp, kup, pkiconf, genp, error); the TCP corpus wraps some of them in frames of
# both forms; the HTTP corpus wraps them in HTTP requests (first byte: fuzz_http's mode).
# Not run by the tests; run it by hand when the message formats change, then commit.
set -euo pipefail
BUILD=$(cd "${1:?usage: gen_corpus.sh BUILD}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/cg-corpus.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$T"' EXIT
D=$T/d
"$BUILD/cmpgate" init --demo "$D" >/dev/null
cp "$HERE/ca/ManagementCA.cacert.pem" "$D/ManagementCA.cacert.pem"
cp "$HERE/ca/ManagementCA.key.pem" "$D/ca/ManagementCA.key.pem"
chmod 600 "$D/ca/ManagementCA.key.pem"
cp "$HERE/ca/raroot.pem" "$D/raroot.pem"
jq '.listen.http = ["127.0.0.1:0"] | .listen.admin = ["127.0.0.1:0"] | .listen.tcp = ["127.0.0.1:0"]
    | .store.sync = false
    | .aliases.opensslra.nested_message_trusted_certs_path = "raroot.pem"
    | .aliases.openssleec.allow_automatic_key_update = true' \
    "$D/cmpgate.json" >"$D/c.json" && mv "$D/c.json" "$D/cmpgate.json" && chmod 600 "$D/cmpgate.json"
"$BUILD/cmpgate" ra addendentity fuzzuser --dn "CN=fuzzuser,O=EJBCA Sample,C=SE" --password fuzzcode \
    --config "$D/cmpgate.json" >/dev/null
"$BUILD/cmpgate" serve --config "$D/cmpgate.json" >"$T/serve.out" 2>"$T/serve.err" &
PID=$!
for _ in $(seq 100); do grep -q '^LISTEN' "$T/serve.out" && break; sleep 0.05; done
S=$(sed -nE 's/.*http=([^ ]+).*/\1/p' "$T/serve.out")
CA=$D/ManagementCA.cacert.pem
cd "$T"
openssl ecparam -name prime256v1 -genkey -noout -out ec.key
openssl ecparam -name prime256v1 -genkey -noout -out ec2.key
openssl genpkey -algorithm ed25519 -out ed.key
openssl genrsa 2048 >rsa.key 2>/dev/null
# cmpc ALIAS ARGS... : openssl cmp on ALIAS; a failure is reported, not fatal
cmpc() {
    local a=$1
    shift
    openssl cmp -server "$S" -path "ejbca/publicweb/cmp/$a" -srvcert "$CA" "$@" >cmp.log 2>&1 ||
        echo "gen_corpus: openssl cmp $a $*: $(grep -iE "error|reason|text" cmp.log | tail -n 3 | tr "\n" " ")" >&2
}
ra() { cmpc opensslra -ref x -secret pass:password "$@"; }
ra -cmd ir -newkey ec.key -subject "/CN=seed-ir/O=Fuzz" -certout ir.pem -reqout ir.der,certConf.der -rspout ip.der,pkiconf.der
ra -cmd ir -newkey ed.key -subject "/CN=seed-ed/O=Fuzz" -certout ed.pem -reqout ir_ed25519.der -implicit_confirm
ra -cmd cr -newkey ec2.key -subject "/CN=seed-cr" -certout cr.pem -reqout cr.der -rspout cp.der -implicit_confirm
openssl req -new -key rsa.key -subj "/CN=seed-p10/C=SE" -out p10.csr
ra -cmd p10cr -csr p10.csr -certout p10.pem -reqout p10cr.der -implicit_confirm
ra -cmd genm -reqout genm.der -rspout genp.der
ra -cmd rr -oldcert ed.pem -reqout rr.der -rspout rp.der
cmpc openssleec -cmd kur -cert ir.pem -key ec.key -newkey ec2.key -certout kur.pem -reqout kur.der \
    -rspout kup.der -implicit_confirm
cmpc openssleec -cmd cr -cert ir.pem -key ec.key -newkey ec.key -subject "/CN=seed-ir/O=Fuzz" \
    -certout eec_cr.pem -reqout cr_signed.der -implicit_confirm
cmpc opensslclient -ref fuzzuser -secret pass:fuzzcode -cmd ir -newkey ec.key \
    -subject "/CN=fuzzuser/O=EJBCA Sample/C=SE" -certout client.pem -reqout ir_client.der -implicit_confirm
# nested: an ir the daemon has not seen, wrapped by the RA of test/fuzz/ca
ra -cmd ir -newkey ec.key -subject "/CN=seed-nested" -certout inner.pem -reqout inner.der -implicit_confirm
"$BUILD/test/cmpnest" --in inner.der --cert "$HERE/ca/ra.pem" --key "$HERE/ca/ra.key" --out nested.der
# error: the unprotected error answer to DER that is not CMP (a certificate)
openssl x509 -in "$CA" -outform DER -out notcmp.der
curl -s -o error.der -H 'Content-Type: application/pkixcmp' --data-binary @notcmp.der \
    "http://$S/ejbca/publicweb/cmp/opensslra"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""

cp ir.pem "$HERE/ca/seed-ir.cert.pem"
cp ed.pem "$HERE/ca/seed-ed.cert.pem"
C=$HERE/corpus
rm -f "$C"/core/* "$C"/tcp_frame/* "$C"/http/*
for f in ir certConf ir_ed25519 cr cr_signed p10cr genm rr kur ir_client nested error ip cp kup rp pkiconf genp; do
    [ -s "$f.der" ] && cp "$f.der" "$C/core/$f.der" || echo "gen_corpus: no $f.der" >&2
done
python3 - "$C" <<'PY'
import os, struct, sys
C = sys.argv[1]
core = os.path.join(C, 'core')
def rd(n): return open(os.path.join(core, n + '.der'), 'rb').read()
def v10(p, t=0, fl=0): return struct.pack('>IBBB', len(p) + 3, 10, fl, t) + p
def r2510(p, t=0): return struct.pack('>IB', len(p) + 1, t) + p
def w(d, n, b): open(os.path.join(C, d, n), 'wb').write(b)
ir, cc, gm = rd('ir'), rd('certConf'), rd('genm')
w('tcp_frame', 'v10_ir', v10(ir))
w('tcp_frame', 'v10_ir_close', v10(ir, 0, 1))
w('tcp_frame', 'r2510_ir', r2510(ir))
w('tcp_frame', 'v10_two_frames', v10(ir) + v10(cc))
w('tcp_frame', 'mixed_forms', v10(gm) + r2510(cc) + v10(gm, 0, 1))
w('tcp_frame', 'v10_pollreq', v10(b'\0\0\0\1\0\0\0\x3c', 2))
w('tcp_frame', 'r2510_pollreq', r2510(b'\0\0\0\1', 2))
w('tcp_frame', 'v10_truncated', v10(ir)[:40])
w('tcp_frame', 'absurd_length', b'\x7f\xff\xff\xff\x0a\x00\x00')
def http(path, body, extra=b'', ver=b'1.1'):
    return (b'POST ' + path + b' HTTP/' + ver + b'\r\nHost: 127.0.0.1\r\nContent-Type: application/pkixcmp\r\n'
            + extra + b'Content-Length: ' + str(len(body)).encode() + b'\r\n\r\n' + body)
def chunked(path, body):
    h = (b'POST ' + path + b' HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n')
    mid = len(body) // 2
    return h + b'%x\r\n' % mid + body[:mid] + b'\r\n' + b'%x;ext=1\r\n' % (len(body) - mid) + body[mid:] + b'\r\n0\r\nTrailer: y\r\n\r\n'
for mode in (0, 2):
    m = bytes([mode])
    w('http', 'ir_ejbca_%d' % mode, m + http(b'/ejbca/publicweb/cmp/opensslra', ir))
    w('http', 'ir_wellknown_op_%d' % mode, m + http(b'/.well-known/cmp/p/opensslra/initialization', ir))
    w('http', 'chunked_%d' % mode, m + chunked(b'/.well-known/cmp', cc))
    w('http', 'pipelined_%d' % mode, m + http(b'/ejbca/publicweb/cmp/opensslra', ir) + http(b'//ejbca//publicweb/cmp/opensslra?x=1', cc, b'Connection: keep-alive\r\n'))
w('http', 'root_http10', b'\0' + http(b'/', gm, b'Connection: close\r\n', b'1.0'))
w('http', 'get_405', b'\0GET /ejbca/publicweb/cmp/opensslra HTTP/1.1\r\nHost: x\r\n\r\n')
w('http', 'no_length_411', b'\0POST /.well-known/cmp HTTP/1.1\r\nHost: x\r\n\r\n')
w('http', 'not_found', b'\0' + http(b'/nope', gm))
w('http', 'busy_503', b'\0' + http(b'/ejbca/publicweb/cmp/busy', gm))
w('http', 'admin_get', b'\1GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
w('http', 'admin_post', b'\1POST /v1/certs?user=x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}')
PY
du -sh "$C"; ls "$C"/*
