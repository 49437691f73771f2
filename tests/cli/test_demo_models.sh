#!/bin/sh
# The trained demo pair in notebooks-data/models (made by tools/train_pair.py on a GPU):
# files present and small, the shapes the docs promise, float32 storage, the tokenizer still
# what the script generates, and our C tokenizer and forward pass agreeing with HF on them.
# References: the token ids are HF tokenizers 0.23's (train_pair.py checks on the device that
# every task word encodes to its own id and that training rows round-trip); the retrieval
# answer is transformers 5.17's prediction on the same prompt (docs/demo-models.md).
. tests/lib.sh
M=notebooks-data/models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT


missing=""
for a in diffllama llama; do
    for f in config.json model.safetensors tokenizer.json; do
        [ -f "$M/$a/$f" ] || missing="$missing $M/$a/$f"
    done
done
if [ -n "$missing" ]; then
    fail demo_model_files "missing:$missing"
    exit 0
fi
big=""
for a in diffllama llama; do
    [ "$(wc -c <"$M/$a/model.safetensors")" -lt 8388608 ] || big="$big $a"
done
if [ -z "$big" ]; then ok demo_model_files; else fail demo_model_files "over 8 MB:$big"; fi

if ! command -v python3 >/dev/null; then
    echo "skip demo_models: python3 is needed to read config.json and the safetensors header"
    exit 0
fi

# The committed tokenizer.json is exactly what the training script writes (standard library only).
if python3 tools/train_pair.py --write-tokenizer "$tmp" >/dev/null &&
    cmp -s "$tmp/tokenizer.json" "$M/diffllama/tokenizer.json" &&
    cmp -s "$tmp/tokenizer.json" "$M/llama/tokenizer.json"; then
    ok demo_tokenizer_regenerates
else
    fail demo_tokenizer_regenerates "tools/train_pair.py --write-tokenizer differs from the committed files"
fi

# Same shape for both, as documented; float32 tensors; the DiffLlama has its lambda vectors.
if msg=$(python3 - "$M" <<'EOF'
import json, struct, sys
root = sys.argv[1]
want = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 8,
        "num_key_value_heads": 4, "intermediate_size": 384, "vocab_size": 563,
        "tie_word_embeddings": False}
names = {}
for arch in ("diffllama", "llama"):
    cfg = json.load(open("%s/%s/config.json" % (root, arch)))
    if cfg["model_type"] != arch:
        sys.exit("%s: model_type %s" % (arch, cfg["model_type"]))
    for k, v in want.items():
        if cfg.get(k) != v:
            sys.exit("%s: %s is %r, want %r" % (arch, k, cfg.get(k), v))
    with open("%s/%s/model.safetensors" % (root, arch), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    bad = [k for k, t in header.items() if t["dtype"] != "F32"]
    if bad:
        sys.exit("%s: not F32: %s" % (arch, bad[:3]))
    if header["model.embed_tokens.weight"]["shape"] != [563, 128]:
        sys.exit("%s: embed_tokens shape %s" % (arch, header["model.embed_tokens.weight"]["shape"]))
    names[arch] = set(header)
extra = names["diffllama"] - names["llama"]
if names["llama"] - names["diffllama"] or len(extra) != 16 or not all(".lambda_" in k for k in extra):
    sys.exit("tensor names differ beyond the 4 lambda vectors per layer: %s" % sorted(extra)[:5])
EOF
); then
    ok demo_model_shapes
else
    fail demo_model_shapes "$msg"
fi

if [ ! -x "$DS" ]; then
    echo "skip demo_models_c: $DS is not built"
    exit 0
fi

# Every task word is one token; BOS comes from the post-processor.
got=$("$DS" tokenize "$M/diffllama" --json "k_apple v_42 the ? k_apple" 2>&1 |
    $PY -c 'import json,sys; print(json.load(sys.stdin)["ids"])' 2>&1)
if [ "$got" = "[1, 4, 110, 132, 3, 4]" ]; then
    ok demo_c_tokenizer
else
    fail demo_c_tokenizer "ids $got, want [1, 4, 110, 132, 3, 4]"
fi

# answers NAME PROMPT ID WORD: both models' greedy next token after PROMPT is ID, as transformers'.
answers() {
    for a in diffllama llama; do
        got=$("$DS" generate "$M/$a" --prompt "$2" -n 1 --threads 1 --json 2>&1 |
            $PY -c 'import json,sys; print(json.load(sys.stdin)["output_ids"][-1])' 2>&1)
        if [ "$got" = "$3" ]; then
            ok "$1_$a"
        else
            fail "$1_$a" "answered $got, want $3 ($4)"
        fi
    done
}

# A 128-token retrieval prompt (train_pair.py's first evaluation row, cut after the first
# query key): transformers answers v_3 (id 71) with both models, and so must we.
answers demo_c_retrieval "some than what two it and at k_cloud v_25 he than where who on who that who here from on he her at are many his at how there but has k_ribbon v_59 where be than which k_falcon v_3 than only they k_tunnel v_44 now be you are our that to just in very has her has many then his to here that you and each just a his most be are from at of any just its a by their most their just on their when their as it so what that of on k_nectar v_18 will then our at k_kitten v_47 be each you has our with ? k_falcon" 71 v_3

# The make-demo prompt (tools/demo.sh; "way" is not a task word and falls back to characters):
# transformers answers v_58 (id 126) with both models (train_pair.py --eval-only).
answers demo_c_demo_prompt "the k_apple v_42 of so it was that k_river v_7 which a they had k_cloud v_13 and then some of k_tiger v_58 for all you here k_piano v_21 but not when k_candle v_33 is on its way to the most so many ? k_tiger" 126 v_58
