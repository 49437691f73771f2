#!/bin/sh
# Inputs that are not regular files or are far too large (docs/reliability.md, "Special and
# oversized files"): a FIFO or /dev/zero in place of config.json, model.safetensors, the index,
# tokenizer.json, a haystack or a dump is refused with one line naming it and exit 2, instead of
# blocking forever or reading until memory runs out; an oversized config.json names the limit;
# a safetensors header of 200,000 names is checked for duplicates in linear time.
# Every run is under `timeout 60`, only to turn a hang into a failure: each finishes in well
# under a second when correct and never when not (the duplicate check was quadratic: about
# 50 s of CPU on 200,000 names here, against 0.1 s now).
. tests/lib.sh
MODEL=$GOLDEN/diff-gqa-tied-bf16
if [ ! -x "$DS" ]; then
    echo "FAIL special_files: $DS not built"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# refused NAME EXPECT FILE CMD...: CMD exits 2 with one stderr line starting "diffscope: " that
# names FILE and holds EXPECT.
refused() {
    name=$1 expect=$2 file=$3
    shift 3
    timeout 60 "$@" >/dev/null 2>"$work/err" </dev/null
    rc=$?
    if [ $rc -ne 2 ]; then
        fail "$name" "exit status $rc, expected 2 ($([ $rc = 124 ] && echo hung)); stderr: $(head -c 300 "$work/err" | tr '\n' '|')"
    elif [ "$(wc -l <"$work/err")" -ne 1 ] || ! grep -q '^diffscope: ' "$work/err" ||
        ! grep -qF -- "$file" "$work/err" || ! grep -qF -- "$expect" "$work/err"; then
        fail "$name" "expected one line naming $file with '$expect', got: $(head -c 300 "$work/err" | tr '\n' '|')"
    else
        ok "$name"
    fi
}

# model_with NAME FILE TARGET: a copy of the golden model in $work/NAME whose FILE is replaced by
# TARGET: "fifo" (a new FIFO) or a path to link to.
model_with() {
    d=$work/$1
    mkdir -p "$d"
    cp "$MODEL"/config.json "$MODEL"/model.safetensors "$d"/
    rm -f "$d/$2"
    if [ "$3" = fifo ]; then mkfifo "$d/$2"; else ln -s "$3" "$d/$2"; fi
}

for kind in fifo /dev/zero; do
    tag=$( [ $kind = fifo ] && echo fifo || echo devzero)
    model_with "cfg-$tag" config.json $kind
    refused "special_config_$tag" "not a regular file" "cfg-$tag/config.json" "$DS" info "$work/cfg-$tag"
    model_with "st-$tag" model.safetensors $kind
    refused "special_weights_$tag" "not a regular file" "st-$tag/model.safetensors" \
        "$DS" logits "$work/st-$tag" --ids 1,2 -o "$work/out.h5"
    model_with "index-$tag" model.safetensors.index.json $kind
    rm "$work/index-$tag/model.safetensors"
    refused "special_index_$tag" "not a regular file" "index-$tag/model.safetensors.index.json" \
        "$DS" logits "$work/index-$tag" --ids 1,2 -o "$work/out.h5"
    model_with "tok-$tag" tokenizer.json $kind
    refused "special_tokenizer_$tag" "not a regular file" "tok-$tag/tokenizer.json" \
        "$DS" logits "$work/tok-$tag" --prompt hello -o "$work/out.h5"
    if [ $kind = fifo ]; then mkfifo "$work/hay-fifo" "$work/dump-fifo"; else ln -s /dev/zero "$work/hay-$tag"; ln -s /dev/zero "$work/dump-$tag"; fi
    refused "special_haystack_$tag" "not a regular file" "hay-$tag" "$DS" needle "$MODEL" \
        --haystack-ids "$work/hay-$tag" --needle-ids 5 --question-ids 6 --answer-id 7
    refused "special_verify_dump_$tag" "not a regular file" "dump-$tag" "$DS" verify "$work/dump-$tag" "$work/dump-$tag"
done
[ -z "$(ls -A "$work" | grep out.h5)" ] || fail special_files_no_output "an output file was written"
# Standard input is capped like a haystack (under ulimit -v but with AddressSanitizer, so that
# a regression fails on memory instead of taking the machine's).
case $BUILD in *asan*) limit=unlimited ;; *) limit=4000000 ;; esac
(ulimit -v $limit; exec timeout 60 "$DS" tokenize tests/data/tokenizers/llama2-bpe </dev/zero) >/dev/null 2>"$work/err"
rc=$?
if [ $rc -ne 2 ] || ! grep -q "^diffscope: standard input: more than the limit of 256 MiB" "$work/err"; then
    fail special_stdin_devzero "exit $rc; stderr: $(head -c 300 "$work/err" | tr '\n' '|')"
else
    ok special_stdin_devzero
fi

# A config.json just over the 4 MiB limit (valid JSON: the golden config padded with spaces).
mkdir "$work/big-config"
cp "$MODEL"/model.safetensors "$work/big-config"/
{ cat "$MODEL"/config.json; head -c 4194304 /dev/zero | tr '\0' ' '; } >"$work/big-config/config.json"
refused special_config_over_limit "over the limit of 4 MiB" "big-config/config.json" "$DS" info "$work/big-config"

# 200,000 tensors of one element, the last name a repeat of the first: the duplicate is found
# and reported (it must be, after a pass over every name).
mkdir "$work/many"
cp "$MODEL"/config.json "$work/many"/
$PY - "$work/many/model.safetensors" <<'PYEOF'
import json, struct, sys
n = 200000
h = {f"t{i}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]} for i in range(n)}
text = json.dumps(h, separators=(",", ":"))
text = text[:-1] + ',"t0":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
text += " " * (-len(text) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text.encode() + bytes(n))
PYEOF
refused special_header_many_names "appears twice" "many/model.safetensors" \
    "$DS" logits "$work/many" --ids 1,2 -o "$work/out.h5"
exit 0
