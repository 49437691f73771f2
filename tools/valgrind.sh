#!/bin/sh
# Runs a short `diffscope logits`, `diffscope dump` and `diffscope generate` under valgrind's
# memcheck (invalid reads/writes, uninitialised values, leaks of definitely lost memory) and
# fails on any error. `make valgrind` runs it; see docs/reliability.md.
#   BUILD: the build dir holding diffscope (default build); MODEL: a model folder.
BUILD=${BUILD:-build}
BIN=$BUILD/diffscope
MODEL=${MODEL:-tests/data/golden/models/diff-gqa-tied-bf16}
if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed (apt-get install valgrind)" >&2
    exit 1
fi
# memcheck does not decode AVX-512: keep OpenBLAS on its AVX2 kernels (and diffscope from
# re-executing itself to switch to the AVX-512 ones, src/cli/blas_kernel.c).
export OPENBLAS_CORETYPE=Haswell
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One thread: OpenMP worker threads are fine under memcheck but slow and noisy.
VG="valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q"
status=0
run() {
    if $VG "$@" >"$work/out" 2>"$work/err"; then
        echo "valgrind clean: $*"
    else
        echo "valgrind FAILED: $*"
        cat "$work/err"
        status=1
    fi
}
run "$BIN" logits "$MODEL" --ids 1,5,9,13,2 --threads 1 -o "$work/logits.h5"
run "$BIN" dump "$MODEL" --ids 1,5,9,13,2 --threads 1 -o "$work/dump.h5"
run "$BIN" generate "$MODEL" --ids 1,5,9 -n 4 --threads 1
# A failing load: error paths must free what they allocated too (exit 2 is expected).
run_fail() {
    $VG "$@" >"$work/out" 2>"$work/err"
    rc=$?
    if [ $rc -eq 2 ]; then echo "valgrind clean: $* (exit 2 as expected)"; else echo "valgrind FAILED (exit $rc): $*"; cat "$work/err"; status=1; fi
}
run_fail "$BIN" logits tests/bad/st-overlap/model --ids 1,2 -o "$work/never.h5"
run_fail "$BIN" logits tests/bad/missing-tensor/model --ids 1,2 -o "$work/never.h5"
exit $status
