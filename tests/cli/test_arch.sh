#!/bin/sh
# The architecture table (src/model/arch.c) against what transformers saved: for every golden
# checkpoint, `init --like its config.json` declares exactly the tensors (names and shapes) of
# the checkpoint transformers wrote, and `info` counts its parameters; Qwen2/Qwen3 specifics
# (bias flags, q/k norm, sliding-window refusal) and unknown architectures.
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
if ! $PY -c '' 2>/dev/null; then
    skip arch_table "$PY is missing"
    exit 0
fi

# Tensor names and shapes of every safetensors file of a folder, one "name [shape]" per line.
tensors() {
    $PY - "$1" <<'PY'
import glob, json, struct, sys
rows = []
for f in sorted(glob.glob(sys.argv[1] + "/*.safetensors")):
    b = open(f, "rb").read(8)
    n = struct.unpack("<Q", b)[0]
    h = json.loads(open(f, "rb").read(8 + n)[8:])
    rows += [f"{k} {v['shape']}" for k, v in h.items() if k != "__metadata__"]
print("\n".join(sorted(rows)))
PY
}

for dir in $GOLDEN/*/; do
    m=$(basename "$dir")
    arch=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['model_type'])" "$dir/config.json")
    if ! $DS init "$T/$m" --like "$dir/config.json" --arch "$arch" 2>"$T/err"; then
        fail "init_declares_transformers_tensors[$m]" "init failed: $(cat "$T/err")"
        continue
    fi
    tensors "$dir" >"$T/want"
    tensors "$T/$m" >"$T/got"
    if cmp -s "$T/want" "$T/got"; then ok "init_declares_transformers_tensors[$m]"
    else fail "init_declares_transformers_tensors[$m]" "$(diff "$T/want" "$T/got" | head -5 | tr '\n' ' ')"; fi
    # Parameters: the sum of the tensor sizes transformers saved (tied lm_head not saved).
    want=$($PY -c "import json, math, sys; print(sum(math.prod(json.loads(l.split(' ', 1)[1])) for l in open(sys.argv[1])))" "$T/want")
    got=$($DS info "$dir" --json | $PY -c "import json,sys; print(json.load(sys.stdin)['parameters'])")
    check "param_count_equals_checkpoint[$m]" "$([ "$want" = "$got" ]; echo $?)" "info says $got, the checkpoint holds $want"
done

# flags MODEL: info's qkv_bias, o_bias, mlp_bias and qk_norm, as 0/1.
flags() {
    $DS info "$1" --json | $PY -c "import json,sys; j=json.load(sys.stdin); print(*(int(j[k]) for k in ('qkv_bias', 'o_bias', 'mlp_bias', 'qk_norm')))"
}
# Qwen2: q/k/v bias whatever attention_bias says, never an o_proj or MLP bias.
got=$(flags $GOLDEN/qwen2-tied-f32)
check qwen2_bias_flags "$([ "$got" = "1 0 0 0" ]; echo $?)" "qkv, o, mlp bias, qk_norm: $got"
# Qwen3: attention_bias for all four projections, and the q/k norm.
got=$(flags $GOLDEN/qwen3-gqa-bias-bf16)
check qwen3_bias_and_qk_norm_flags "$([ "$got" = "1 1 0 1" ]; echo $?)" "qkv, o, mlp bias, qk_norm: $got"

# Sliding windows: refused when some layer would use one (transformers: layer l >=
# max_window_layers, or layer_types), accepted when none would.
sliding() { # NAME JSON-KEYS-TO-ADD
    mkdir -p "$T/$1" && cp $GOLDEN/qwen2-tied-f32/model.safetensors "$T/$1/"
    $PY -c "import json,sys; c=json.load(open(sys.argv[1])); c.update(json.loads(sys.argv[2])); json.dump(c, open(sys.argv[3],'w'))" \
        $GOLDEN/qwen2-tied-f32/config.json "$2" "$T/$1/config.json"
}
sliding sw_on '{"use_sliding_window": true, "sliding_window": 4, "max_window_layers": 1, "layer_types": null}'
$DS info "$T/sw_on" 2>"$T/err"; rc=$?
[ $rc = 2 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q "sw_on/config.json: use_sliding_window is true" "$T/err"
check qwen_sliding_window_refused $? "exit $rc: $(cat "$T/err")"
sliding sw_types '{"use_sliding_window": true, "sliding_window": 4, "layer_types": ["full_attention", "sliding_attention"]}'
$DS info "$T/sw_types" 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "sliding-window attention is not supported" "$T/err"
check qwen_sliding_layer_types_refused $? "exit $rc: $(cat "$T/err")"
sliding sw_none '{"use_sliding_window": true, "sliding_window": 4, "max_window_layers": 2, "layer_types": null}'
$DS info "$T/sw_none" >/dev/null 2>"$T/err"
check qwen_sliding_window_on_no_layer_loads $? "$(cat "$T/err")"

# init and a forward pass for each architecture, with the class transformers loads it by.
for pair in llama:LlamaForCausalLM diffllama:DiffLlamaForCausalLM qwen2:Qwen2ForCausalLM qwen3:Qwen3ForCausalLM; do
    arch=${pair%%:*} cls=${pair#*:}
    $DS init "$T/i-$arch" --like tiny --arch $arch 2>"$T/err" &&
        $DS generate "$T/i-$arch" --ids 1,2,3 -n 3 >/dev/null 2>>"$T/err" &&
        $PY -c "import json,sys; c=json.load(open(sys.argv[1])); sys.exit(c['model_type'] != sys.argv[2] or c['architectures'] != [sys.argv[3]])" \
            "$T/i-$arch/config.json" $arch $cls
    check "init_and_run[$arch]" $? "$(cat "$T/err")"
done

$DS init "$T/bad" --like tiny --arch gpt2 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "not one of llama|diffllama|qwen2|qwen3" "$T/err"
check init_unknown_arch $? "exit $rc: $(cat "$T/err")"
mkdir -p "$T/gpt2" && echo '{"model_type": "gpt2"}' >"$T/gpt2/config.json"
$DS info "$T/gpt2" 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "model_type 'gpt2' is not supported (llama, diffllama, qwen2, qwen3 are)" "$T/err"
check config_unknown_arch $? "exit $rc: $(cat "$T/err")"
exit $failed
