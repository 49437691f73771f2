#!/bin/sh
# Dump files checked with h5py + NumPy (Debian's python3): see tests/test_dump.py.
PY=/usr/bin/python3
if ! $PY -c "import h5py, numpy" 2>/dev/null; then
    echo "skip dump_python_checks: /usr/bin/python3 lacks h5py or numpy"
    exit 0
fi
exec $PY tests/test_dump.py
