#!/bin/sh
# Output safety: a write that fails (here a file-size limit, `ulimit -f`, standing in for a
# full disk) makes `diffscope logits` and `diffscope dump` exit with status 2 and a one-line
# message naming the output file; a pre-existing output given with --force stays intact and no
# temporary file is left. A successful --force run replaces the file, again without leftovers.
. tests/lib.sh
MODEL=tests/data/golden/models/diff-gqa-tied-bf16
IDS=$(seq -s, 3 50)
if [ ! -x "$DS" ]; then
    echo "FAIL output_safety: $DS not built"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$work/out.h5

# attempt NAME LIMIT CMD: runs `diffscope CMD MODEL --ids IDS -o OUT --force` under `ulimit -f
# LIMIT` (blocks of 512 or 1024 bytes, depending on the shell) over an existing OUT.
attempt() {
    name=$1 limit=$2 cmd=$3
    echo "precious old output" >"$out"
    (ulimit -f "$limit" && exec "$DS" "$cmd" "$MODEL" --ids "$IDS" -o "$out" --force) >/dev/null 2>"$work/err"
    rc=$?
    left=$(ls -A "$work" | grep -v '^err$' | tr '\n' ' ')
    if [ $rc -ne 2 ]; then
        echo "FAIL $name: exit status $rc, expected 2 $([ $rc -gt 128 ] && echo "(signal $((rc - 128)))")"
    elif [ "$(wc -l <"$work/err")" -ne 1 ] || ! grep -q "^diffscope: $out: " "$work/err"; then
        echo "FAIL $name: expected one line naming $out, got: $(tr '\n' '|' <"$work/err")"
    elif [ "$(cat "$out")" != "precious old output" ]; then
        echo "FAIL $name: the existing output file was changed"
    elif [ "$left" != "out.h5 " ]; then
        echo "FAIL $name: files left next to the output: $left"
    else
        echo "ok $name"
    fi
}

for cmd in logits dump; do
    # The full size of this output, to set limits below it.
    rm -f "$out"
    if ! "$DS" "$cmd" "$MODEL" --ids "$IDS" -o "$out" >/dev/null 2>"$work/err"; then
        echo "FAIL output_safety_$cmd: the unlimited run failed: $(cat "$work/err")"
        continue
    fi
    size=$(wc -c <"$out")
    attempt "output_safety_${cmd}_tiny_limit" 1 "$cmd"
    attempt "output_safety_${cmd}_limit_below_size" $((size / 1024 - 1)) "$cmd"

    echo "precious old output" >"$out"
    if "$DS" "$cmd" "$MODEL" --ids "$IDS" -o "$out" --force >/dev/null 2>"$work/err" &&
        [ "$(wc -c <"$out")" -eq "$size" ] && [ "$(ls -A "$work" | grep -vc '^err$')" -eq 1 ]; then
        echo "ok output_safety_${cmd}_force_replaces"
    else
        echo "FAIL output_safety_${cmd}_force_replaces: $(cat "$work/err") $(ls -A "$work" | tr '\n' ' ')"
    fi
done

# Interrupted runs (every fatal signal, at a known point) are in tests/cli/test_output_contract.sh.
