#!/bin/sh
# diffscope sweep against compare, dump and NumPy; 1/2/3 MPI ranks; kill and resume; bad input:
# tests/numerics/test_sweep.py.
. tests/lib.sh
if ! $PY -c "import h5py, numpy" 2>/dev/null; then
    echo "skip sweep_python_checks: /usr/bin/python3 lacks h5py or numpy"
    exit 0
fi
exec $PY tests/numerics/test_sweep.py
