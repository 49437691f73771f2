#!/bin/sh
# Runs each libFuzzer harness for FUZZ_SECONDS, one after the other (one process at a time).
#   usage: tools/fuzz.sh BUILD_DIR SECONDS [HARNESS...]   (make fuzz FUZZ_SECONDS=N runs it)
# New inputs go to BUILD_DIR/fuzz/corpus-NAME (the committed seeds in tests/fuzz/corpus/NAME are
# only read); crashes to BUILD_DIR/fuzz/crashes/NAME-*. Prints one summary line per harness:
#   fuzz NAME: SECONDS s, EXECS executions, N crashes
# and exits 1 when any harness crashed. A crash input belongs in tests/fuzz/regressions/NAME/
# once fixed (tests/unit/test_fuzz_regressions.c replays it in `make test`).
set -u
BUILD=$1
SECONDS_EACH=$2
shift 2
names=${*:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')}
status=0
for name in $names; do
    bin=$BUILD/fuzz/$name
    work=$BUILD/fuzz/corpus-$name
    crashes=$BUILD/fuzz/crashes
    mkdir -p "$work" "$crashes"
    log=$BUILD/fuzz/$name.log
    before=$(ls "$crashes" | grep -c "^$name-" || true)
    "$bin" -max_total_time="$SECONDS_EACH" -max_len=16384 -rss_limit_mb=2048 -timeout=20 \
        -dict=tests/fuzz/json.dict -print_final_stats=1 \
        -artifact_prefix="$crashes/$name-" "$work" "tests/fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    after=$(ls "$crashes" | grep -c "^$name-" || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "fuzz $name: $SECONDS_EACH s, ${execs:-?} executions, $((after - before)) crashes (exit $rc, log $log)"
    if [ $rc -ne 0 ] || [ "$after" -ne "$before" ]; then
        status=1
        grep -m 3 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log"
    fi
done
exit $status
