#!/bin/sh
# NaN and infinities (docs/reliability.md, "Non-finite values"), on copies of a golden model
# edited here: one NaN in layer 0's q_proj; q_proj and k_proj scaled so that the attention
# scores overflow (finite weights, non-finite maps); a final norm that makes the logits
# overflow; NaN lambda vectors.
#  - Without --allow-nonfinite every model-running command fails with one line (exit 2) that
#    names the tensor and index, the map, or the logits.
#  - With it, NaN flows through the whole forward pass (under `make test-asan` this is the
#    sanitizers' NaN model: ds_expf, softmax, GroupNorm, the outlier statistics, sampling) and
#    the outputs hold it: NaN logits, NaN maps, the dump's allow_nonfinite attribute.
#  - `info --json` stays valid JSON (null, never a bare nan).
. tests/lib.sh
MODEL=$GOLDEN/diff-gqa-tied-bf16
if [ ! -x "$DS" ]; then
    echo "FAIL nonfinite: $DS not built"
    exit 0
fi
if ! has_python_modules h5py numpy; then
    skip nonfinite "$PY lacks h5py or numpy"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# edited NAME EDIT: $work/NAME, the golden model with EDIT (Python on `t`, a dict of float32
# arrays by tensor name) applied, written back in BF16.
edited() {
    mkdir -p "$work/$1"
    cp "$MODEL/config.json" "$work/$1"/
    $PY - "$MODEL/model.safetensors" "$work/$1/model.safetensors" "$2" <<'PYEOF'
import json, struct, sys
import numpy as np
src, dst, edit = sys.argv[1:]
blob = open(src, "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
header = json.loads(blob[8:8 + n])
data = blob[8 + n:]
t = {}
for name, e in header.items():
    if name == "__metadata__":
        continue
    b, end = e["data_offsets"]
    bits = np.frombuffer(data[b:end], dtype="<u2").astype(np.uint32) << 16
    t[name] = bits.view(np.float32).reshape(e["shape"]).copy()
exec(edit)
out = bytearray()
for name, e in header.items():
    if name == "__metadata__":
        continue
    b, end = e["data_offsets"]
    # BF16 by truncation, which keeps NaN a NaN and inf an inf.
    out[b:end] = (t[name].astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
with open(dst, "wb") as f:
    f.write(blob[:8 + n] + bytes(out))
PYEOF
}

# fails NAME EXPECT CMD...: exit 2, one line holding EXPECT, no output file.
fails() {
    name=$1 expect=$2
    shift 2
    rm -f "$work/out.h5"
    "$@" >"$work/stdout" 2>"$work/err"
    rc=$?
    if [ $rc -ne 2 ] || [ "$(wc -l <"$work/err")" -ne 1 ] || ! grep -qF -- "$expect" "$work/err"; then
        fail "$name" "exit $rc, expected 2 and one line with '$expect'; got: $(head -c 300 "$work/err" | tr '\n' '|')"
    elif [ -e "$work/out.h5" ]; then
        fail "$name" "an output file was written"
    else
        ok "$name"
    fi
}

# h5check NAME PYTHON: runs PYTHON with f = h5py.File(out.h5) and np; ok when it prints nothing.
h5check() {
    msg=$($PY -c "import h5py, numpy as np, sys
f = h5py.File(sys.argv[1], 'r')
$2" "$work/out.h5" 2>&1)
    check "$1" "$([ -z "$msg" ] && echo 0 || echo 1)" "$msg"
}

Q=model.layers.0.self_attn.q_proj.weight
edited nan "t['$Q'][3, 5] = np.nan"
D=$(sed -n 's/ *"hidden_size": *\([0-9]*\).*/\1/p' "$MODEL/config.json")
for cmd in logits dump; do
    fails "nonfinite_weight_$cmd" "'$Q' holds NaN at index $((3 * D + 5)) (row 3, column 5)" \
        "$DS" $cmd "$work/nan" --ids 1,2,3 -o "$work/out.h5"
done
fails nonfinite_weight_generate "'$Q' holds NaN" "$DS" generate "$work/nan" --ids 1,2,3 -n 3
fails nonfinite_weight_compare "'$Q' holds NaN" "$DS" compare "$MODEL" --vs "$work/nan" --ids 1,2,3

# --allow-nonfinite: the NaN reaches every output.
"$DS" logits "$work/nan" --ids 1,2,3 --allow-nonfinite -o "$work/out.h5" 2>"$work/err"
check nonfinite_allowed_logits_run $? "$(cat "$work/err")"
h5check nonfinite_allowed_logits_nan "x = f['logits'][()]
if not np.isnan(x).all(): print('expected all-NaN logits, got', np.isnan(x).sum(), 'NaN of', x.size)"
rm -f "$work/out.h5"
"$DS" dump "$work/nan" --ids 1,2,3,4,5 --allow-nonfinite --what softmax,diff,scores,groupnorm,outliers \
    --logits --hidden -o "$work/out.h5" 2>"$work/err"
check nonfinite_allowed_dump_run $? "$(cat "$work/err")"
h5check nonfinite_allowed_dump_records "if f.attrs.get('allow_nonfinite') != 1: print('no allow_nonfinite attribute')
d = f['layers/0/attn/diff'][()]
if not np.isnan(d).any(): print('layer 0 diff map has no NaN')
if not np.isnan(f['logits'][()]).all(): print('logits not all NaN')"
# The viewer draws such a dump (NaN cells left blank) instead of failing on it.
if [ -x "$VIEW" ]; then
    timeout 120 "$VIEW" "$work/out.h5" --screenshot "$work/nan.png" >/dev/null 2>"$work/err"
    rc=$?
    check nonfinite_allowed_dump_viewed "$([ $rc = 0 ] && [ -s "$work/nan.png" ] && echo 0 || echo 1)" \
        "exit $rc: $(head -c 300 "$work/err")"
else
    skip nonfinite_allowed_dump_viewed "$VIEW not built"
fi
"$DS" generate "$work/nan" --ids 1,2,3 -n 3 --temperature 0.7 --allow-nonfinite >/dev/null 2>"$work/err"
check nonfinite_allowed_generate_run $? "$(cat "$work/err")"

# Finite weights, non-finite results: scores that overflow make NaN maps; a final norm of
# 3e37 and an embedding 100 times larger make the logits (not the hidden states) overflow.
edited scores "t['$Q'] *= 1e30; t['model.layers.0.self_attn.k_proj.weight'] *= 1e30"
fails nonfinite_map_dump "layer 0: attention map 'scores' holds inf" \
    "$DS" dump "$work/scores" --ids 1,2,3 --what scores,softmax -o "$work/out.h5"
fails nonfinite_forward_logits "hold NaN" "$DS" logits "$work/scores" --ids 1,2,3 -o "$work/out.h5"
edited final "t['model.norm.weight'][:] = 3e37; t['model.embed_tokens.weight'] *= 100"
fails nonfinite_logits_overflow "the logits of token position 0 hold" \
    "$DS" logits "$work/final" --ids 1,2,3 -o "$work/out.h5"
fails nonfinite_generate_overflow "the logits of token position 2 hold" "$DS" generate "$work/final" --ids 1,2,3 -n 3

# lambda_q1 . lambda_k1 so large that lambda_1 = exp(...) overflows; info --json stays strict JSON (Python's parser refuses NaN when parse_constant raises).
edited lam "t['model.layers.0.self_attn.lambda_q1'][:] = 30; t['model.layers.0.self_attn.lambda_k1'][:] = 30"
fails nonfinite_lambda_info "lambda_full is not finite" "$DS" info "$work/lam"
"$DS" info "$work/lam" --json --allow-nonfinite >"$work/info.json" 2>"$work/err"
msg=$($PY -c "import json, sys
def bad(c): raise ValueError('bare ' + c)
j = json.load(open(sys.argv[1]), parse_constant=bad)
if j['lambda'][0]['lambda_full'] is not None: print('lambda_full of layer 0 should be null')" "$work/info.json" 2>&1)
check nonfinite_info_json_null "$([ -z "$msg" ] && echo 0 || echo 1)" "$msg $(cat "$work/err")"
exit 0
