#!/bin/sh
# An address-space limit (ulimit -v, as HPC nodes set): `--threads 64` under 8 GiB used to spin
# forever in OpenBLAS's buffer allocation (128 MiB per thread). The thread count is now cut to
# what the limit leaves room for, with the same results (bit for bit: results do not depend on
# the thread count); a limit too small for even one thread is exit 3 with one line, at start-up
# or when the session is made. `timeout 300` only turns a hang into a failure.
# Skipped under AddressSanitizer, which reserves terabytes of address space for its shadow.
. tests/lib.sh
MODEL=$GOLDEN/diff-gqa-tied-bf16
if [ ! -x "$DS" ]; then
    echo "FAIL address_limit: $DS not built"
    exit 0
fi
case $BUILD in *asan* | *valgrind*)
    skip address_limit "a sanitizer build cannot run under ulimit -v"
    exit 0 ;;
esac
if ! has_python_modules h5py numpy; then
    skip address_limit "$PY lacks h5py or numpy"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$DS" logits "$MODEL" --ids 1,2,3,4,5 -o "$work/free.h5" 2>/dev/null || fail address_limit_reference "logits failed"
for cmd in logits dump; do
    (ulimit -v 8388608 && exec timeout 300 "$DS" $cmd "$MODEL" --ids 1,2,3,4,5 --threads 64 -o "$work/$cmd.h5") \
        2>"$work/err"
    rc=$?
    check "address_limit_${cmd}_threads64" $rc "exit $rc$([ $rc = 124 ] && echo ' (hung)'): $(head -c 300 "$work/err")"
done
msg=$($PY -c "import h5py, numpy as np, sys
a, b = (h5py.File(p, 'r')['logits'][()] for p in sys.argv[1:])
if not np.array_equal(a, b): print('logits differ under the limit')" "$work/free.h5" "$work/logits.h5" 2>&1)
check address_limit_same_logits "$([ -z "$msg" ] && echo 0 || echo 1)" "$msg"

# too_small NAME KB WHERE: under `ulimit -v KB`, exit 3 and one line about the limit.
too_small() {
    (ulimit -v "$2" && exec timeout 300 "$DS" logits "$MODEL" --ids 1,2,3 -o "$work/small.h5") 2>"$work/err"
    rc=$?
    if [ $rc -ne 3 ] || [ "$(wc -l <"$work/err")" -ne 1 ] || ! grep -q "^diffscope: out of memory: the address-space limit" "$work/err"; then
        fail "$1" "exit $rc, expected 3 and one line about the limit ($3); got: $(head -c 300 "$work/err" | tr '\n' '|')"
    elif [ -e "$work/small.h5" ]; then
        fail "$1" "an output was written"
    else
        ok "$1"
    fi
}
too_small address_limit_too_small_session 400000 "when the session is made"
too_small address_limit_too_small_start 200000 "at start-up"
exit 0
