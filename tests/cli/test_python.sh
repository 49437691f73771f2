#!/bin/sh
# The Python package (python/diffscope over $BUILD/libdiffscope.so) with Debian's python3:
# see tests/numerics/test_python.py.
. tests/lib.sh
if ! has_python_modules h5py numpy; then
    skip python_package "$PY lacks h5py or numpy"
    exit 0
fi
# In the sanitizer pass the library is built with ASan + UBSan: their runtimes must be loaded
# first, and Python's own allocations are not leak-checked.
if nm -D "$BUILD/libdiffscope.so" 2>/dev/null | grep -q __asan_init; then
    LD_PRELOAD="$(${CC:-cc} -print-file-name=libasan.so) $(${CC:-cc} -print-file-name=libubsan.so)"
    ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}
    export LD_PRELOAD ASAN_OPTIONS
fi
DIFFSCOPE_LIB=$BUILD/libdiffscope.so PYTHONPATH=python:tests/numerics MPLBACKEND=Agg \
    MPLCONFIGDIR=$(mktemp -d) exec $PY tests/numerics/test_python.py
