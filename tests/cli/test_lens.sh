#!/bin/sh
# diffscope lens: the table and the output contract here; the numbers against NumPy and
# transformers in tests/numerics/test_lens.py.
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
M=$GOLDEN/diff-gqa-tied-bf16

"$DS" lens --help >"$T/help" 2>&1
check lens_help $? "--help failed"
grep -q -- "--vs-token" "$T/help" && grep -q -- "--top-k" "$T/help"
check lens_help_options $? "--help lacks --vs-token or --top-k"

"$DS" lens "$M" --ids 1,5,7,9 --token 3 >"$T/table" 2>"$T/err"
rc=$?
grep -q "^logit lens at P" "$T/table" && grep -q "^softmax1 path" "$T/table" && grep -q "^lambda·softmax2 path" "$T/table" &&
    grep -q "target \[3\] (id 3)" "$T/table" && [ ! -s "$T/err" ]
check lens_table_diffllama $rc "exit $rc or missing sections: $(head -c 300 "$T/table" "$T/err")"

"$DS" lens $GOLDEN/llama-mha-bias-f32 --ids 1,5,7,9 >"$T/table" 2>&1
rc=$?
grep -q "^logit lens at P" "$T/table" && ! grep -q "softmax1 path" "$T/table"
check lens_table_llama $rc "a Llama table has no paths: $(head -c 300 "$T/table")"

"$DS" lens "$M" --ids 1,5,7 -o "$T/a.h5" >/dev/null 2>&1
"$DS" lens "$M" --ids 1,5,8 -o "$T/a.h5" >/dev/null 2>"$T/err"
rc=$?
[ $rc = 2 ] && [ "$(wc -l <"$T/err")" = 1 ] && $PY -c "import h5py,sys; sys.exit(list(h5py.File('$T/a.h5')['input_ids'][:]) != [1,5,7])"
check lens_output_no_clobber $? "an existing -o file was replaced or the error was not one line (exit $rc)"
"$DS" lens "$M" --ids 1,5,8 -o "$T/a.h5" --force >/dev/null 2>&1 &&
    $PY -c "import h5py,sys; sys.exit(list(h5py.File('$T/a.h5')['input_ids'][:]) != [1,5,8])"
check lens_output_force $? "--force did not replace the file"

ids=1,5,7,9,11,13,2,4,60,33
"$DS" lens $GOLDEN/diff-sharded-deep-f32 --ids $ids --json --threads 1 >"$T/t1" 2>&1 &&
    "$DS" lens $GOLDEN/diff-sharded-deep-f32 --ids $ids --json --threads 3 >"$T/t3" 2>&1 &&
    $PY -c "import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); a.pop('provenance'); b.pop('provenance'); sys.exit(a != b)" "$T/t1" "$T/t3"
check lens_threads_identical $? "--threads 1 and 3 give different results (provenance aside)"

if ! $PY -c "import h5py, numpy" 2>/dev/null; then
    echo "skip lens_python_checks: /usr/bin/python3 lacks h5py or numpy"
    exit $failed
fi
$PY tests/numerics/test_lens.py || failed=1
# diffscope.lens over $BUILD/libdiffscope.so; in the sanitizer pass with their runtimes loaded
# first (as tests/cli/test_python.sh)
if nm -D "$BUILD/libdiffscope.so" 2>/dev/null | grep -q __asan_init; then
    LD_PRELOAD="$(${CC:-cc} -print-file-name=libasan.so) $(${CC:-cc} -print-file-name=libubsan.so)"
    ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}
    export LD_PRELOAD ASAN_OPTIONS
fi
DIFFSCOPE_LIB=$BUILD/libdiffscope.so $PY tests/numerics/test_lens.py --python || failed=1
exit $failed
