#!/bin/sh
# Runs every test suite: the C binaries in $BUILD/tests (from tests/unit) and the
# tests/cli/test_*.sh scripts. Each case prints "ok NAME", "FAIL NAME: ..." or "skip NAME: ...";
# the closing line counts them. A suite that exits non-zero without printing a FAIL line (a
# crash) counts as a failure.
BUILD=${BUILD:-build}
export BUILD
DIFFSCOPE=${DIFFSCOPE:-$BUILD/diffscope}
export DIFFSCOPE
log=$(mktemp)
out=$(mktemp)
run_suite() { # NAME COMMAND...
    name=$1
    shift
    echo "== $name"
    "$@" >"$out" 2>&1
    rc=$?
    cat "$out"
    cat "$out" >>"$log"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$out"; then
        echo "FAIL $name: suite exited with status $rc" | tee -a "$log"
    fi
}
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] && run_suite "${t##*/}" "$t"
done
for s in tests/cli/test_*.sh; do
    [ -f "$s" ] && run_suite "$s" sh "$s"
done
ok=$(grep -c '^ok ' "$log")
fail=$(grep -c '^FAIL ' "$log")
skip=$(grep -c '^skip ' "$log")
rm -f "$log" "$out"
echo "$ok passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
