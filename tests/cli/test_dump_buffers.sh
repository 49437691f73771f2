#!/bin/sh
# The dump's maps are the same bytes whatever room the raw writer has (src/dump/dump.c sizes
# its buffers for one layer's maps; DIFFSCOPE_DUMP_BUFFER_MB=1 leaves it the minimum of two, so
# the forward pass waits for the writers and more writer threads start): every dataset of both
# files compared with h5py, for DiffLlama and Llama, float32 and float16, at 300, 1000 and 1024
# tokens.
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
exit 0
