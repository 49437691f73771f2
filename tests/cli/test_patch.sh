#!/bin/sh
# diffscope patch: bad inputs (one line, exit 2), text prompts on the demo model, the checks
# against transformers in tests/numerics/test_patch.py, and maps in two row blocks against the
# Python package's hooks (tests/numerics/patch_blocks.py).
. tests/lib.sh
DIFF=$GOLDEN/diff-mha-f32
LLAMA=$GOLDEN/llama-mha-bias-f32
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# bad_input NAME ARGS...: exit status 2 and exactly one line on stderr, nothing on stdout.
bad_input() {
    name=$1
    shift
    $DS patch "$@" >"$T/out" 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/err")
    if [ $rc = 2 ] && [ "$lines" = 1 ] && [ ! -s "$T/out" ]; then ok "patch_bad_$name"; else
        fail "patch_bad_$name" "exit $rc, $lines lines on stderr: $(head -c 300 "$T/err")"
    fi
}
bad_input different_lengths $DIFF --clean-ids 1,2,3,4 --corrupted-ids 1,2,3 --answer-id 5
grep -q "4 tokens and the corrupted one 3" "$T/err" || fail patch_bad_lengths_message "$(cat "$T/err")"
bad_input unknown_answer $DIFF --clean-ids 1,2,3 --corrupted-ids 1,2,4 --answer-id 96
bad_input unknown_wrong $DIFF --clean-ids 1,2,3 --corrupted-ids 1,2,4 --answer-id 5 --wrong-id 1000
bad_input answer_text_without_tokenizer $DIFF --clean-ids 1,2,3 --corrupted-ids 1,2,4 --answer x
bad_input missing_model "$T/no-such-model" --clean-ids 1,2,3 --corrupted-ids 1,2,4 --answer-id 5
bad_input no_answer $DIFF --clean-ids 1,2,3 --corrupted-ids 1,2,4
bad_input corrupted_out_of_vocab $DIFF --clean-ids 1,2,3 --corrupted-ids 1,2,400 --answer-id 5
bad_input softmax_on_llama $LLAMA --clean-ids 1,2,3 --corrupted-ids 1,2,4 --answer-id 5 --patch softmax1
bad_input corrupt_lambda_on_llama $LLAMA --clean-ids 1,2,3 --corrupted-ids 1,2,4 --answer-id 5 --corrupt-lambda 0=1
bad_input corrupt_lambda_layer $DIFF --clean-ids 1,2,3 --corrupted-ids 1,2,4 --answer-id 5 --corrupt-lambda 7=1
bad_input unknown_table $DIFF --clean-ids 1,2,3 --corrupted-ids 1,2,4 --answer-id 5 --patch resid
echo x >"$T/exists.h5"
bad_input existing_output $DIFF --clean-ids 1,2,3 --corrupted-ids 1,2,4 --answer-id 5 -o "$T/exists.h5"
[ "$(cat "$T/exists.h5")" = x ] || fail patch_existing_output_kept "the existing file was changed"

$DS patch --help >"$T/help" 2>&1 && grep -q -- "--corrupt-lambda" "$T/help" && grep -q "docs/patch.md" "$T/help"
check patch_help $? "patch --help lacks its options: $(head -c 200 "$T/help")"

# Text prompts, answer tokens as text and the table on the demo model (it has a tokenizer).
DEMO=notebooks-data/models/diffllama
if [ -f $DEMO/tokenizer.json ]; then
    $DS patch $DEMO --clean "the k_apple v_42 of so k_river v_7 which a ? k_river" \
        --corrupted "the k_apple v_42 of so k_river v_7 which a ? k_apple" --answer v_7 --wrong v_42 \
        --patch resid_pre,head_out --threads 1 >"$T/table" 2>"$T/err"
    rc=$?
    # the corruption is the last token only: patching resid_pre there restores the clean run
    # at every layer (normalized 1), any other position changes nothing (0)
    $PY - "$T/table" <<'EOF'
import sys
lines = open(sys.argv[1]).read().split("\n")
assert 'positions that differ: 11 (" k_river" -> " k_apple")' in lines, lines[:6]
i = lines.index("normalized")
assert lines[i + 1].split()[0] == "layer/pos", lines[i + 1]
for row in lines[i + 2:i + 6]:
    v = [float(x) for x in row.split()[1:]]
    assert v[:-1] == [0.0] * 11 and v[-1] == 1.0, row
assert any(l.startswith("head_out:") for l in lines)
EOF
    check patch_demo_text_prompts $(( rc || $? )) "exit $rc: $(head -c 300 "$T/err")"
    bad_input multi_token_answer $DEMO --clean "a b" --corrupted "a c" --answer "v_7 v_42"
else
    skip patch_demo_text_prompts "no $DEMO/tokenizer.json"
fi

if has_python_modules h5py numpy; then
    $PY tests/numerics/test_patch.py || failed=1
    if [ -f $DEMO/config.json ]; then python_with_library tests/numerics/patch_blocks.py || failed=1
    else skip patch_two_row_blocks_vs_python_hooks "no $DEMO"; fi
else
    skip patch_vs_transformers "/usr/bin/python3 lacks h5py or numpy"
fi
exit $failed
