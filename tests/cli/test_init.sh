#!/bin/sh
# diffscope init: presets and config files, f32/bf16, sharding with an index, refusal to
# overwrite, and that the result loads and runs.
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

$DS init "$T/tiny" --like tiny --seed 3 2>/dev/null
$DS info "$T/tiny" --json | $PY -c "import json, sys; j = json.load(sys.stdin); sys.exit(not (j['arch'], j['vocab_size'], j['hidden_size']) == ('diffllama', 256, 64))"
check init_tiny_preset $? "info does not show the tiny DiffLlama"

$DS init "$T/tiny2" --like tiny --seed 3 2>/dev/null
cmp -s "$T/tiny/model.safetensors" "$T/tiny2/model.safetensors"
check init_is_deterministic $? "same seed gave different weights"

$DS init "$T/tiny" --like tiny 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "already holds a checkpoint" "$T/err"
check init_refuses_overwrite $? "exit $rc: $(cat "$T/err")"

cat >"$T/cfg.json" <<'JSON'
{"model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096, "attention_bias": true}
JSON
$DS init "$T/sharded" --like "$T/cfg.json" --arch llama --dtype bf16 --shard-mb 1 2>/dev/null
n=$(ls "$T/sharded"/model-*-of-*.safetensors 2>/dev/null | wc -l)
[ "$n" -ge 2 ] && [ -f "$T/sharded/model.safetensors.index.json" ]
check init_shards_with_index $? "$n shards"

$DS info "$T/sharded" --json | $PY -c "import json, sys; sys.exit(json.load(sys.stdin)['storage_dtype'] != 'BF16')"
check init_bf16_sharded_loads $? "the sharded bf16 checkpoint does not load"

$DS generate "$T/sharded" --ids 1,2,3 -n 4 >/dev/null
check init_checkpoint_runs $? "generate failed on the new checkpoint"

$DS init "$T/bad" --like nosuchpreset 2>"$T/err"; rc=$?
[ $rc = 2 ] && [ "$(wc -l <"$T/err")" = 1 ]
check init_bad_preset $? "exit $rc"

# --tokenizer: the file is copied in as tokenizer.json and --prompt works on the checkpoint.
TOK=tests/data/tokenizers/llama2-bpe/tokenizer.json # ids 0..1555
sed 's/"vocab_size": 4096/"vocab_size": 1556/' "$T/cfg.json" >"$T/cfg1556.json"
$DS init "$T/tok" --like "$T/cfg1556.json" --arch llama --tokenizer "$TOK" 2>"$T/err"; rc=$?
[ $rc = 0 ] && cmp -s "$TOK" "$T/tok/tokenizer.json"
check init_tokenizer_copied $? "exit $rc: $(cat "$T/err")"
want=$($DS tokenize "$TOK" --json "Hello world" | $PY -c "import json, sys; print(json.load(sys.stdin)['ids'])")
$DS generate "$T/tok" --prompt "Hello world" -n 2 --json 2>"$T/err" |
    $PY -c "import json, sys; sys.exit(str(json.load(sys.stdin)['input_ids']) != sys.argv[1])" "$want"
check init_tokenizer_prompt_runs $? "generate --prompt: $(cat "$T/err")"

# Refused, one line, exit 2, nothing left: ids past vocab_size (tiny: 256), not a tokenizer,
# a tokenizer.json already in the folder (without --force).
printf '{"model": ' >"$T/bad.json"
for case in "vocab:--like tiny --tokenizer $TOK:vocab_size 256" "json:--like tiny --tokenizer $T/bad.json:$T/bad.json"; do
    name=${case%%:*} rest=${case#*:} args=${rest%%:*} needle=${rest#*:}
    # shellcheck disable=SC2086
    $DS init "$T/refused-$name" $args 2>"$T/err"; rc=$?
    [ $rc = 2 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q -- "--tokenizer" "$T/err" && grep -qF "$needle" "$T/err" &&
        [ ! -e "$T/refused-$name" ]
    check "init_tokenizer_refused_$name" $? "exit $rc: $(cat "$T/err")"
done
mkdir "$T/has-tok" && cp "$TOK" "$T/has-tok/tokenizer.json"
$DS init "$T/has-tok" --like "$T/cfg1556.json" --arch llama --tokenizer "$TOK" 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "tokenizer.json: already exists" "$T/err" && [ "$(ls "$T/has-tok")" = tokenizer.json ]
check init_tokenizer_no_clobber $? "exit $rc: $(cat "$T/err"), left $(ls "$T/has-tok")"

# The progress bar (drawn when stderr is a terminal: a pseudo-terminal here) counts the
# tensors it writes: its last count is its total, the number of tensors in the file.
$PY - "$DS" "$T/bar" <<'PYEOF'
import json, os, pty, re, struct, subprocess, sys
ds, out = sys.argv[1:]
master, slave = pty.openpty()
rc = subprocess.run([ds, "init", out, "--like", "tiny"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=slave).returncode
os.close(slave)
text = b""
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:  # EIO: the terminal's other end is closed and drained
        break
    if not chunk:
        break
    text += chunk
steps = [(int(a), int(b)) for a, b in re.findall(rb"\] (\d+)/(\d+) ", text)]
with open(os.path.join(out, "model.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    tensors = len([k for k in json.loads(f.read(n)) if k != "__metadata__"])
ok = rc == 0 and steps and all(a <= b for a, b in steps) and steps[-1] == (tensors, tensors)
print("ok init_progress_counts_tensors" if ok else
      "FAIL init_progress_counts_tensors: exit %d, steps %s, %d tensors" % (rc, steps[-3:], tensors))
PYEOF
exit $failed
