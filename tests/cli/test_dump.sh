#!/bin/sh
# Dump files checked with h5py + NumPy (Debian's python3): see tests/numerics/test_dump.py.
. tests/lib.sh
if ! $PY -c "import h5py, numpy" 2>/dev/null; then
    echo "skip dump_python_checks: /usr/bin/python3 lacks h5py or numpy"
    exit 0
fi
exec $PY tests/numerics/test_dump.py
