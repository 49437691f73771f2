#!/bin/sh
# Determinism of the files diffscope writes: `diffscope dump` (maps, statistics, logits, hidden
# states) and `diffscope logits` give the same datasets and attributes, bit for bit (h5diff
# without a tolerance; the files' bytes themselves differ, since HDF5 stores object times), with
# --threads 1, 2 and 3, twice with 2, and with all the cores of `taskset -c 0` and of
# `taskset -c 0,1`: the partition of the work follows the shapes alone (docs/performance.md).
# Four threads on two cores make a dump leave a core to its writers, computing on three
# (leave_a_core_to_the_writers in src/dump/dump.c).
# Sampling with --seed repeats its ids. The library-level checks (prefill and KV-cache decode,
# residual stream) are tests/unit/test_determinism.c.
. tests/lib.sh
MODEL=tests/data/golden/models/diff-gqa-tied-bf16
DEMO=notebooks-data/models/diffllama
if [ ! -x "$DS" ]; then
    echo "FAIL determinism_cli: $DS not built"
    exit 0
fi
if ! command -v h5diff >/dev/null; then
    echo "skip determinism_cli: h5diff not installed (hdf5-tools)"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -d "$DEMO" ] && MODEL=$DEMO
ids=$(seq -s, 3 202)
[ "$MODEL" = "$DEMO" ] || ids=$(seq -s, 3 60)

# same_files A B: every dataset and attribute equal, except the provenance record (/provenance:
# the command line, thread count and time of the run differ): h5diff on all but the root
# attributes and /provenance, then each root attribute's dump.
same_files() {
    h5diff --exclude-attribute / --exclude-path /provenance "$1" "$2" || return 1
    for attr in $(h5dump -H "$1" | sed -n 's/^   ATTRIBUTE "\(.*\)" {$/\1/p'); do
        [ "$(h5dump -a "/$attr" "$1" | tail -n +2)" = "$(h5dump -a "/$attr" "$2" | tail -n +2)" ] || {
            echo "root attribute $attr differs"
            return 1
        }
    done
}

# check_threads NAME CMD...: runs CMD with -o FILE under each way of running below; compares
# every output with the first.
check_threads() {
    name=$1
    shift
    runs="t1 t2 t3 t2"
    command -v taskset >/dev/null && taskset -c 0,1 true 2>/dev/null && runs="$runs cpu0 cpu01 cpu01t4"
    i=0
    for run in $runs; do
        i=$((i + 1))
        pre="" threads=""
        case $run in
        t*) threads="--threads ${run#t}" ;;
        cpu0) pre="taskset -c 0" ;;
        cpu01) pre="taskset -c 0,1" ;;
        cpu01t4) pre="taskset -c 0,1" threads="--threads 4" ;;
        esac
        if ! $pre "$DS" "$@" $threads -o "$work/$name-$i.h5" >/dev/null 2>"$work/err"; then
            echo "FAIL $name: $pre $DS $* $threads failed: $(cat "$work/err")"
            return
        fi
    done
    i=0
    for run in $runs; do
        i=$((i + 1))
        [ $i = 1 ] && continue
        if ! same_files "$work/$name-1.h5" "$work/$name-$i.h5" >"$work/diff" 2>&1; then
            echo "FAIL $name: run '$run' differs from --threads 1: $(head -c 300 "$work/diff" | tr '\n' '|')"
            return
        fi
    done
    echo "ok $name"
}
check_threads determinism_dump dump "$MODEL" --ids "$ids" --logits --hidden
check_threads determinism_logits logits "$MODEL" --ids "$ids"

a=$("$DS" generate "$MODEL" --ids 1,5,9 -n 24 --ignore-eos --temperature 0.9 --top-p 0.95 --seed 42 --threads 2)
b=$("$DS" generate "$MODEL" --ids 1,5,9 -n 24 --ignore-eos --temperature 0.9 --top-p 0.95 --seed 42 --threads 1)
if [ -n "$a" ] && [ "$a" = "$b" ]; then
    echo "ok determinism_sampling_seed"
else
    echo "FAIL determinism_sampling_seed: '$a' vs '$b'"
fi
