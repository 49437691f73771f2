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
