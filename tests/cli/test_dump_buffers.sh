#!/bin/sh
# The dump's maps are the same bytes whatever room the raw writer has (src/dump/dump.c sizes
# its buffers for one layer's maps; DIFFSCOPE_DUMP_BUFFER_MB=1 leaves it the minimum of two, so
# the forward pass waits for the writers and more writer threads start): every dataset of both
# files compared with h5py, for DiffLlama and Llama, float32 and float16, at 300, 1000 and 1024
# tokens. And the room it is given counts the bytes a layer writes: with room for exactly one
# layer's chunked maps, whose row blocks fill their buffers only up to the causal diagonal,
# there is a buffer for every (map, head, row block) of the layer.
. tests/lib.sh
if ! has_python_modules h5py numpy; then
    echo "skip dump_buffers: $PY lacks h5py or numpy"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# same_datasets NAME A B: every dataset of A equals B's, byte for byte; the softmax maps are
# real ones (rows summing to 1), so that two empty files cannot agree.
same_datasets() {
    why=$($PY - "$2" "$3" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
maps = [n for n in names if n.endswith("softmax") or n.endswith("softmax1")]
def same(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind == "O":  # variable-length strings: the values, not the pointers
        return x.shape == y.shape and list(x.ravel()) == list(y.ravel())
    return x.tobytes() == y.tobytes()
bad = [n for n in names if n not in b or a[n].dtype != b[n].dtype or a[n].shape != b[n].shape
       or not same(a[n][()], b[n][()])]
if not maps:
    print("no softmax maps in", sys.argv[1])
elif bad:
    print(len(bad), "of", len(names), "datasets differ, e.g.", bad[0])
else:
    sums = [np.abs(a[n][()].astype(np.float64).sum(axis=-1) - 1).max() for n in maps]
    if max(sums) > 1e-2:
        print("softmax rows do not sum to 1:", max(sums))
PY
)
    check "$1" "$([ -z "$why" ] && echo 0 || echo 1)" "$why"
}

ids() { $PY -c "print(','.join(str((i * 37 + 11) % 96) for i in range($1)))"; }
for model in diff-mha-f32 llama-mha-bias-f32; do
    for case in "300 f32" "1024 f32" "1000 f16"; do
        set -- $case
        name=dump_buffers_${model%%-*}_$1_$2
        for mb in 1 0; do
            DIFFSCOPE_DUMP_BUFFER_MB=$mb "$DS" dump "$GOLDEN/$model" --ids "$(ids $1)" --allow-long --what all \
                --dtype $2 -o "$work/$mb.h5" >/dev/null 2>"$work/err" ||
                fail "$name" "dump with DIFFSCOPE_DUMP_BUFFER_MB=$mb failed: $(head -c 300 "$work/err")"
        done
        same_datasets "$name" "$work/1.h5" "$work/0.h5"
        rm -f "$work/0.h5" "$work/1.h5"
    done
done

# layer_blocks FILE: "BLOCKS BYTES" of layer 0's maps in FILE: the (map, head, row block) buffers
# they fill and the bytes written, the chunks right of the causal diagonal left out
# (docs/dump-format.md, "Storage").
layer_blocks() {
    $PY - "$1" <<'PY'
import sys, h5py
blocks = written = 0
for name, ds in h5py.File(sys.argv[1], "r")["layers/0/attn"].items():
    heads, T, _ = ds.shape
    R, C = ds.chunks[1:] if ds.chunks else (128, T)
    nblocks = -(-T // R)
    chunks = sum((min((b + 1) * R, T) - 1) // C + 1 for b in range(nblocks))
    blocks += heads * nblocks
    written += heads * chunks * R * C * ds.dtype.itemsize
print(blocks, written)
PY
}
for case in "diff-mha-f32 softmax,diff" "llama-mha-bias-f32 softmax"; do
    set -- $case
    model=$1 what=$2 name=dump_buffers_room_${1%%-*}
    "$DS" dump "$GOLDEN/$model" --ids "$(ids 1024)" --allow-long --what $what --layers 0 \
        -o "$work/layout.h5" >/dev/null 2>"$work/err" || fail "$name" "dump failed: $(head -c 300 "$work/err")"
    set -- $(layer_blocks "$work/layout.h5")
    mb=$(( ($2 + 1048575) / 1048576 ))
    buffers=$(TMPDIR=$work DIFFSCOPE_DUMP_BUFFER_MB=$mb "$DS" bench "$GOLDEN/$model" --tokens 1024 --rounds 1 \
        --dump-what $what --threads 1 --json 2>"$work/err" | $PY -c "import json, sys; print(json.load(sys.stdin)['dump_io']['buffers'])")
    check "$name" "$([ "${buffers:-0}" -ge "$1" ] && echo 0 || echo 1)" \
        "$buffers buffers in $mb MiB for a layer of $1 blocks, $2 bytes $(head -c 300 "$work/err")"
    rm -f "$work/layout.h5"
done
exit 0
