#!/bin/sh
# libdiffscope.so through its pkg-config file, as the README tells C users to link it: a program
# built with `pkg-config --cflags --libs diffscope` runs a golden DiffLlama and its λ per layer
# and last-token logits match transformers' (tests/data/golden/refs).
. tests/lib.sh
if [ ! -f "$BUILD/libdiffscope.so" ] || [ ! -f "$BUILD/diffscope.pc" ]; then
    fail shared_lib_files "$BUILD/libdiffscope.so or $BUILD/diffscope.pc missing"
    exit 0
fi
# The .pc file's version is the library's DS_VERSION (read from the header by the Makefile).
pc_version=$(PKG_CONFIG_PATH="$BUILD" pkg-config --modversion diffscope 2>&1)
header_version=$(sed -n 's/^#define DS_VERSION "\(.*\)"/\1/p' include/diffscope/diffscope.h)
[ -n "$header_version" ] && [ "$pc_version" = "$header_version" ]
check shared_lib_pc_version $? \
    "pkg-config says '$pc_version', diffscope.h says '$header_version'"
if ! has_python_modules h5py numpy; then
    skip shared_lib_vs_transformers "$PY lacks h5py or numpy"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/p.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include "diffscope/error.h"
#include "diffscope/model.h"
/* MODEL ID...: lambda_full of each layer, then the last token's logits, one per line. */
int main(int argc, char **argv) {
    ds_model *m = ds_model_load(argv[1]);
    if (!m) return fprintf(stderr, "%s\n", ds_errmsg()), 2;
    const ds_config *c = ds_model_config(m);
    int n = argc - 2, *ids = malloc((size_t)n * sizeof *ids);
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    for (int i = 0; i < n; i++) ids[i] = atoi(argv[i + 2]);
    ds_session *s = ds_session_new(m, n, 0);
    if (!s || ds_forward(s, ids, n, logits, 1, NULL)) return fprintf(stderr, "%s\n", ds_errmsg()), 2;
    for (int l = 0; l < c->num_layers; l++) {
        double lam[4];
        ds_model_lambda(m, l, lam);
        printf("%.9g\n", lam[3]);
    }
    for (int v = 0; v < c->vocab_size; v++) printf("%.9g\n", logits[v]);
    ds_session_free(s), ds_model_free(m), free(ids), free(logits);
    return 0;
}
C
# The sanitizer pass builds the library with ASan + UBSan: a program linking it needs them too.
san=
nm -D "$BUILD/libdiffscope.so" | grep -q __asan_init && san="-fsanitize=address,undefined"
flags=$(PKG_CONFIG_PATH=$BUILD pkg-config --cflags --libs diffscope 2>&1)
if ! ${CC:-cc} -std=c11 $san "$tmp/p.c" $flags -o "$tmp/p" 2>"$tmp/cc.err"; then
    fail shared_lib_link "cc with pkg-config's flags failed: $(head -c 300 "$tmp/cc.err")"
    exit 0
fi
ok shared_lib_link
ref=$GOLDEN/../refs/diff-mha-f32.h5
ids=$($PY -c "import h5py; print(' '.join(map(str, h5py.File('$ref')['T6/input_ids'][:])))")
# Run from another folder: the library is found through the run-time path pkg-config gave.
if ! (cd "$tmp" && ./p "$OLDPWD/$GOLDEN/diff-mha-f32" $ids) >"$tmp/out" 2>"$tmp/err"; then
    fail shared_lib_vs_transformers "the program failed: $(head -c 300 "$tmp/err")"
    exit 0
fi
$PY - "$ref" "$tmp/out" <<'PY'
import sys
import h5py
import numpy as np
ref = h5py.File(sys.argv[1], "r")["T6"]
got = np.loadtxt(sys.argv[2])
L = ref["lambda"].shape[0]
e_lam = np.abs(got[:L] - ref["lambda"][:, 3]).max()
e_log = np.abs(got[L:] - ref["logits"][-1]).max()
ok = e_lam <= 1e-6 and e_log <= 1e-4
print("ok shared_lib_vs_transformers" if ok else
      "FAIL shared_lib_vs_transformers: lambda error %.3g, logits error %.3g" % (e_lam, e_log))
PY
