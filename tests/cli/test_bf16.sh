#!/bin/sh
# The bf16 compute mode: its option on the command line, and against transformers' bf16 forward
# (tests/numerics/test_bf16.py).
. tests/lib.sh
M=$GOLDEN/diff-mha-f32
out=$($DS logits $M --ids 1,2 -o /dev/null --compute fp8 2>&1); rc=$?
check compute_rejects_unknown_mode "$([ $rc = 2 ] && echo "$out" | grep -q "fp8" && echo 0)" "exit $rc: $out"
out=$($DS info $M --compute bf16 2>&1)
check info_names_compute_and_kernel "$(echo "$out" | grep -q '^compute *bf16$' &&
    echo "$out" | grep -Eq '^bf16 kernel *(AMX|AVX512-BF16|AVX512 \(bf16 emulated\)|AVX2 \(bf16 widened)' && echo 0)" "$out"
out=$(DIFFSCOPE_BF16_KERNEL=amx2 $DS info $M --compute bf16 2>&1); rc=$?
check bf16_kernel_choice_unknown_warns "$([ $rc = 0 ] && echo "$out" | grep -q "DIFFSCOPE_BF16_KERNEL=amx2 is not" && echo 0)" "exit $rc: $out"
out=$($DS bench $M --tokens 4 --rounds 1 --compute bf16 --json 2>/dev/null)
check bench_compute_bf16 "$(echo "$out" | $PY -c "
import json, sys
r = json.load(sys.stdin)
sys.exit(0 if r['compute'] == 'bf16' and r['bf16_kernel'] and r['prefill_s'] > 0 else 1)" && echo 0)" "$out"
out=$($DS lens $M --ids 1,2,3 --compute bf16 2>&1); rc=$?
check lens_refuses_bf16 "$([ $rc = 2 ] && echo "$out" | grep -q "compute f32" && echo 0)" "exit $rc: $out"
if ! $PY -c "import h5py, numpy" 2>/dev/null; then
    echo "skip bf16_python_checks: /usr/bin/python3 lacks h5py or numpy"
    exit $failed
fi
python_with_library tests/numerics/test_bf16.py || failed=1
exit $failed
