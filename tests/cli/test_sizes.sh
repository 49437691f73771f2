#!/bin/sh
# Sizes validated before work (docs/reliability.md, "Sizes before work"):
#  - needle --context-tokens 100000000 is refused before any prompt is built (it built 7.8 GB
#    of prompts in 26 s, then failed);
#  - a dump or logits file larger than the free space of its folder is refused before the
#    forward pass, unless --force; on a 1 MiB tmpfs (needs the right to mount: skipped
#    otherwise), a dump of 300 tokens (about 4 MB of maps) is refused with one line; with
#    --force it runs into the full disk and fails cleanly, leaving nothing; `logits` and
#    `init` too.
# `ulimit -v` (not under AddressSanitizer, which reserves terabytes of address space) and
# `timeout` only keep a regression from taking the machine down.
. tests/lib.sh
MODEL=$GOLDEN/diff-gqa-tied-bf16
DEMO=notebooks-data/models/diffllama
if [ ! -x "$DS" ]; then
    echo "FAIL sizes: $DS not built"
    exit 0
fi
work=$(mktemp -d)
cleanup() {
    umount "$work/small" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# one_line NAME RC EXPECT: the last command exited RC with one stderr line ($work/err) holding EXPECT.
one_line() {
    if [ "$2" -ne 2 ] || [ "$(wc -l <"$work/err")" -ne 1 ] || ! grep -qF -- "$3" "$work/err"; then
        fail "$1" "exit $2, expected 2 and one line with '$3'; got: $(head -c 300 "$work/err" | tr '\n' '|')"
    else
        ok "$1"
    fi
}

case $BUILD in *asan*) limit=unlimited ;; *) limit=4000000 ;; esac
if [ -d "$DEMO" ]; then
    (ulimit -v $limit; exec timeout 120 "$DS" needle "$DEMO" --task kv --context-tokens 100000000) \
        >/dev/null 2>"$work/err"
    one_line needle_context_tokens_huge $? "--context-tokens 100000000: the prompts would have at least 100000002 tokens"
else
    skip needle_context_tokens_huge "no $DEMO"
fi

mkdir "$work/small"
if ! mount -t tmpfs -o size=1m tmpfs "$work/small" 2>/dev/null; then
    skip sizes_free_space "cannot mount a small tmpfs here (not root)"
    exit 0
fi
ids=$(seq -s, 1 300 | sed 's/[0-9][0-9]*/5/g')
"$DS" dump "$MODEL" --ids "$ids" --allow-long -o "$work/small/out.h5" >/dev/null 2>"$work/err.all"
rc=$?
grep -v 'warning: ' "$work/err.all" >"$work/err"
# 2 layers x (softmax1, softmax2, diff) x 2 differential heads x 300^2 floats = 4.32 MB, plus
# 19 KB of GroupNorm statistics.
one_line dump_over_free_space $rc "out.h5: the output would take about 4.3 MB, more than the 1.0 MB free"
[ -z "$(ls -A "$work/small")" ] || fail dump_over_free_space_nothing_left "left: $(ls -A "$work/small")"
"$DS" dump "$MODEL" --ids "$ids" --allow-long --force -o "$work/small/out.h5" >/dev/null 2>"$work/err.all"
rc=$?
grep -v 'warning: ' "$work/err.all" >"$work/err"
# forced, the first layer's maps find no room when they are reserved, before they are made
one_line dump_over_free_space_forced $rc "out.h5: cannot reserve 0.7 MB for the output: No space left on device"
[ -z "$(ls -A "$work/small")" ] && ok dump_forced_nothing_left || fail dump_forced_nothing_left "left: $(ls -A "$work/small")"
# logits: [T, V] + [L+1, T, D] floats; 3000 tokens of the golden model are about 2 MB.
ids=$(seq -s, 1 3000 | sed 's/[0-9][0-9]*/5/g')
"$DS" logits "$MODEL" --ids "$ids" --allow-long -o "$work/small/out.h5" >/dev/null 2>"$work/err.all"
rc=$?
grep -v 'warning: ' "$work/err.all" >"$work/err"
one_line logits_over_free_space $rc "more than the 1.0 MB free"
# init --like small: its parameter count in BF16 is far more than 1 MiB.
"$DS" init "$work/small/m" --like small >/dev/null 2>"$work/err"
one_line init_over_free_space $? "m: the output would take about"
exit 0
