#!/bin/sh
# diffscope verify on small HDF5 files made with h5py, each a reference and a damaged copy:
# infinities must match exactly, NaN pairs are counted, everything the reference holds must be
# in the dump (a missing layer or dataset, a dataset turned into a string or a group, a changed
# shape are failures, never "0 failed"), and non-finite tolerances are refused.
. tests/lib.sh
if ! has_python_modules h5py numpy; then
    skip verify_cases "h5py or numpy missing"
    exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# make NAME EDIT: writes $T/NAME.h5 from the reference layout after the Python statement EDIT
# (on `f`, the open file).
make() {
    $PY - "$T/$1.h5" "$2" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f["logits"] = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    f["layers/0/attn/lambda"] = np.array([0.5, -0.25], dtype=np.float32)
    f["layers/1/attn/lambda"] = np.array([0.75, 0.125], dtype=np.float32)
    f["layers/1/attn/lambda"].attrs["scale"] = 2.0
    f.attrs["tokens"] = 2
    exec(sys.argv[2])
PY
}
make ref "pass"

# expect NAME STATUS FRAGMENT DUMP [OPTIONS]: verify DUMP against ref exits STATUS and its
# stdout+stderr contain FRAGMENT.
expect() {
    name=$1 want=$2 frag=$3 dump=$4
    shift 4
    $DS verify "$T/$dump.h5" "$T/ref.h5" "$@" >"$T/out" 2>&1
    rc=$?
    if [ $rc -ne "$want" ]; then
        fail "$name" "exit $rc, expected $want: $(tr '\n' '|' <"$T/out" | tail -c 600)"
    elif ! grep -q -- "$frag" "$T/out"; then
        fail "$name" "no '$frag' in: $(tr '\n' '|' <"$T/out" | tail -c 600)"
    else
        ok "$name"
    fi
}

expect verify_identical 0 "0 failed" ref
make finite_vs_inf 'f["logits"][0, 1] = np.inf'
make inf_ref 'f["logits"][0, 1] = np.inf'
expect verify_finite_vs_inf 1 "1 failed" inf_ref
cp "$T/inf_ref.h5" "$T/ref_keep.h5"
make neg_inf 'f["logits"][0, 1] = -np.inf'
# +inf in the reference, -inf in the dump (and the other way).
cp "$T/ref.h5" "$T/ref_orig.h5"
cp "$T/inf_ref.h5" "$T/ref.h5"
expect verify_plus_inf_vs_minus_inf 1 "1 failed" neg_inf
expect verify_same_inf_matches 0 "0 failed" inf_ref
expect verify_finite_vs_inf_in_reference 1 "1 failed" ref_orig
cp "$T/ref_orig.h5" "$T/ref.h5"

make nan_pair 'f["layers/0/attn/lambda"][1] = np.nan'
cp "$T/nan_pair.h5" "$T/ref.h5"
expect verify_nan_pairs_counted 0 "1 NaN in both files" nan_pair
expect verify_nan_vs_finite 1 "1 failed" ref_orig
cp "$T/ref_orig.h5" "$T/ref.h5"

make no_layer 'del f["layers/1"]'
expect verify_missing_layer 1 "missing in DUMP" no_layer
make no_dataset 'del f["layers/0/attn/lambda"]'
expect verify_missing_dataset 1 "missing in DUMP" no_dataset
make as_string 'del f["logits"]; f["logits"] = "not numbers"'
expect verify_dataset_became_string 1 "not numeric in DUMP" as_string
make as_group 'del f["logits"]; f.create_group("logits")'
expect verify_dataset_became_group 1 "not a dataset in DUMP" as_group
make transposed 'del f["logits"]; f["logits"] = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)'
expect verify_shape_transposed 1 "shapes differ" transposed
make no_attr 'del f["layers/1/attn/lambda"].attrs["scale"]'
expect verify_missing_attribute 1 "missing in DUMP" no_attr
make extra 'f["more"] = np.zeros(3)'
expect verify_extra_in_dump_is_not_a_failure 0 "1 objects only in" extra

for opt in "--rtol nan" "--atol inf" "--rtol -inf" "--atol -nan"; do
    # shellcheck disable=SC2086
    $DS verify "$T/ref.h5" "$T/ref.h5" $opt >/dev/null 2>"$T/err"
    rc=$?
    name=verify_rejects_$(echo "$opt" | tr -c 'a-z\n' _)
    if [ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ]; then ok "$name"; else fail "$name" "exit $rc: $(cat "$T/err")"; fi
done
exit $failed
