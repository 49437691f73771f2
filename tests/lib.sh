# Sourced by every tests/cli/*.sh script: the binaries, the Python with h5py and NumPy, and the
# line protocol that tests/run_tests.sh counts ("ok NAME", "FAIL NAME: why", "skip NAME: why").
# Scripts run from the repository root.
BUILD=${BUILD:-build}
DS=${DIFFSCOPE:-$BUILD/diffscope}
VIEW=${VIEW:-$BUILD/diffscope-view}
# Debian's interpreter, where h5py and NumPy come from (a user's python3 may lack them).
PY=${PY:-/usr/bin/python3}
GOLDEN=tests/data/golden/models
failed=0

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
skip() { echo "skip $1: $2"; }
# check NAME STATUS WHY: ok when STATUS is 0, else FAIL with WHY.
check() { if [ "$2" = 0 ]; then ok "$1"; else fail "$1" "$3"; fi; }
# has_python_modules M...: the interpreter can import every module named.
has_python_modules() { $PY -c "import $(echo "$@" | tr ' ' ',')" 2>/dev/null; }
# wait_stopped PID: returns 0 once process PID has stopped itself (the DIFFSCOPE_TEST_STOP hook,
# docs/reliability.md), 1 if it ended first. No timing: it waits as long as the process runs.
wait_stopped() {
    while st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null); do
        case $st in T | t) return 0 ;; Z | X) return 1 ;; esac
        sleep 0.01
    done
    return 1
}
# python_with_library SCRIPT ARGS...: runs SCRIPT with the Python package over
# $BUILD/libdiffscope.so. In the sanitizer pass the library is built with ASan + UBSan: their
# runtimes must be loaded first, and Python's own allocations are not leak-checked.
python_with_library() (
    if nm -D "$BUILD/libdiffscope.so" 2>/dev/null | grep -q __asan_init; then
        LD_PRELOAD="$(${CC:-cc} -print-file-name=libasan.so) $(${CC:-cc} -print-file-name=libubsan.so)"
        ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}
        export LD_PRELOAD ASAN_OPTIONS
    fi
    DIFFSCOPE_LIB=$BUILD/libdiffscope.so PYTHONPATH=python:tests/numerics MPLBACKEND=Agg \
        MPLCONFIGDIR=$(mktemp -d) exec $PY "$@"
)
