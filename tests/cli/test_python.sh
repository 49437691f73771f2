#!/bin/sh
# The Python package (python/diffscope over $BUILD/libdiffscope.so) with Debian's python3:
# see tests/numerics/test_python.py.
. tests/lib.sh
if ! has_python_modules h5py numpy; then
    skip python_package "$PY lacks h5py or numpy"
    exit 0
fi
python_with_library tests/numerics/test_python.py
