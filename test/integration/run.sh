#!/usr/bin/env bash
# test/integration/run.sh BUILD [CASE...] - run the integration cases (test/integration/cases)
# against BUILD/cmpgate, print "ok ..." / "FAIL ..." per check and "N passed, N failed".
set -u
BUILD=$(cd "${1:?usage: run.sh BUILD [CASE...]}" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=($(ls "$here/cases" | sed 's/\.sh$//'))
out=$(mktemp)
for c in "${cases[@]}"; do
    start=$(date +%s)
    BUILD="$BUILD" CASE="$c" timeout 600 bash -c ". '$here/lib.sh'; . '$here/cases/$c.sh'" 2>&1 | tee -a "$out"
    rc=${PIPESTATUS[0]}
    [ "$rc" -ne 0 ] && echo "FAIL $c: case script exited with $rc" | tee -a "$out"
    echo "# $c: $(( $(date +%s) - start ))s"
done
p=$(grep -c '^ok ' "$out")
f=$(grep -c '^FAIL ' "$out")
rm -f "$out"
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
