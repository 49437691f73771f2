#!/bin/sh
# The provenance record of every output kind, and verify's view of two records:
# tests/numerics/test_provenance.py.
. tests/lib.sh
if ! has_python_modules h5py numpy; then
    skip provenance_checks "/usr/bin/python3 lacks h5py or numpy"
    exit 0
fi
exec $PY tests/numerics/test_provenance.py
