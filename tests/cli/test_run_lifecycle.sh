#!/bin/sh
# The run of a model-running command: the prompt is tokenized and checked against config.json
# before the weights are read, so a bad prompt is reported as such even when the weights are
# broken too; and JSON output is JSON (strings escaped, no bare inf or nan).
. tests/lib.sh
M=tests/data/golden/models/diff-mha-f32
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# A copy of the model whose weights are cut short: loading them fails.
mkdir "$T/broken"
cp $M/config.json "$T/broken/"
head -c 1000 $M/model.safetensors >"$T/broken/model.safetensors"
$DS logits "$T/broken" --ids 1,2 -o "$T/out.h5" 2>"$T/err"
rc=$?
[ $rc = 2 ] && grep -q "model.safetensors" "$T/err"
check lifecycle_broken_weights_fail $? "exit $rc: $(cat "$T/err")"

# prompt_first NAME EXPECTED-TEXT ARGS...: exit 2, one line about the prompt, not the weights.
prompt_first() {
    name=$1 want=$2
    shift 2
    "$DS" "$@" >"$T/stdout" 2>"$T/err"
    rc=$?
    if [ $rc -ne 2 ]; then fail "$name" "exit status $rc, expected 2"
    elif [ "$(wc -l <"$T/err")" -ne 1 ]; then fail "$name" "$(wc -l <"$T/err") lines on stderr"
    elif ! grep -qF -- "$want" "$T/err"; then fail "$name" "message lacks '$want': $(cat "$T/err")"
    else ok "$name"; fi
}
prompt_first lifecycle_id_checked_before_weights "outside the vocabulary" logits "$T/broken" --ids 1,96 -o "$T/out.h5"
prompt_first lifecycle_length_checked_before_weights "--allow-long runs them anyway" \
    dump "$T/broken" --ids "$(seq -s, 1 65)" -o "$T/out.h5"
seq -s, 10 40 >"$T/hay.txt"
prompt_first lifecycle_needle_prompts_checked_before_weights "outside the vocabulary" needle "$T/broken" \
    --haystack-ids "$T/hay.txt" --needle-ids 5,6 --question-ids 7 --answer-id 96
prompt_first lifecycle_tokenizer_read_before_weights "tokenizer.json" generate "$T/broken" --prompt "hello"
cp tests/data/tokenizers/llama2-bpe/tokenizer.json "$T/broken/"
prompt_first lifecycle_prompt_tokens_checked_before_weights "outside the vocabulary" generate "$T/broken" --prompt "zebra"

# dump --json: the output path is a JSON string, whatever it holds.
out="$T/quote\"back\\slash.h5"
$DS dump $M --ids 1,2,3 -o "$out" --json >"$T/j" 2>"$T/err" && $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["output"] == sys.argv[2] and j["tokens"] == 3 and j["bytes"] > 0, j
' "$T/j" "$out"
check dump_json_escapes_the_path $? "$(cat "$T/j" "$T/err")"

# verify --json: an infinite error is null in JSON, not a bare inf.
$PY -c '
import sys, h5py, numpy as np
h5py.File(sys.argv[1], "w")["x"] = np.array([1.0, np.inf], np.float32)
h5py.File(sys.argv[2], "w")["x"] = np.array([1.0, 2.0], np.float32)
' "$T/a.h5" "$T/b.h5"
$DS verify "$T/a.h5" "$T/b.h5" --json >"$T/j" 2>/dev/null
rc=$?
[ $rc = 1 ] && $PY -c '
import json, sys
rows = json.load(open(sys.argv[1]))
x = [r for r in rows if r["name"] == "/x"][0]
assert x["ok"] is False and x["max_abs"] is None, x
' "$T/j"
check verify_json_infinity_is_null $? "exit $rc: $(cat "$T/j")"
