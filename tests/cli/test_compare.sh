#!/bin/sh
# diffscope compare / needle checked against NumPy over diffscope dump files: tests/numerics/test_compare.py.
. tests/lib.sh
if ! $PY -c "import h5py, numpy" 2>/dev/null; then
    echo "skip compare_python_checks: /usr/bin/python3 lacks h5py or numpy"
    exit 0
fi
exec $PY tests/numerics/test_compare.py
