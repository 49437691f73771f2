#!/bin/bash
# Prompts per second of `diffscope sweep` over ranks x threads (docs/sweep.md, Benchmarks).
#
#   tools/bench_sweep.sh NAME OUT_DIR "1x1 2x8 16x1" SWEEP-ARGS...
#
# Each RxT runs R processes `diffscope sweep SWEEP-ARGS --shard i/R --threads T`, process i
# pinned with taskset to cores i*T .. i*T+T-1 (when taskset exists), then `--merge`: the same
# work as R MPI ranks, without needing Open MPI. One JSON line per configuration on stdout:
# the wall time of the ranks (start of the first to end of the last), of the merge, prompts/s
# over both, and each rank's own report (prompts checked, models loaded, prompts run, shard).
# DS is how to start diffscope (default build/diffscope; "ld.so --library-path L diffscope"
# works). DEADLINE (seconds since the epoch): configurations that would start later are skipped.
set -u
name=$1 dir=$2 configs=$3
shift 3
DS=${DS:-build/diffscope}
pin=""
command -v taskset >/dev/null && pin=taskset
now() { date +%s.%N; }
mkdir -p "$dir"
for cfg in $configs; do
    R=${cfg%x*} T=${cfg#*x}
    if [ -n "${DEADLINE:-}" ] && [ "$(date +%s)" -ge "$DEADLINE" ]; then
        echo "{\"name\": \"$name\", \"config\": \"$cfg\", \"skipped\": \"deadline\"}"
        continue
    fi
    out=$dir/$name-$cfg.h5
    rm -rf "$out" "$out.shards"
    t0=$(now)
    for ((i = 0; i < R; i++)); do
        cpu=""
        [ -n "$pin" ] && cpu="taskset -c $((i * T))-$((i * T + T - 1))"
        $cpu $DS sweep "$@" -o "$out" --shard "$i/$R" --threads "$T" 2>"$dir/$name-$cfg.rank$i.log" >/dev/null &
    done
    fail=0
    for ((i = 0; i < R; i++)); do wait -n || fail=1; done
    t1=$(now)
    $DS sweep "$@" -o "$out" --merge >/dev/null 2>"$dir/$name-$cfg.merge.log" || fail=1
    t2=$(now)
    ranks=$(for ((i = 0; i < R; i++)); do
        sed -n 's/.*done (prompts \([0-9]*\)\.\.\([0-9]*\); \([0-9.]*\) s: prompts checked in \([0-9.]*\) s, models loaded in \([0-9.]*\) s, \([0-9]*\) prompts run in \([0-9.]*\) s, shard written in \([0-9.]*\) s).*/[\1,\2,\3,\4,\5,\6,\7,\8]/p' \
            "$dir/$name-$cfg.rank$i.log"
    done | paste -sd, -)
    prompts=$(for ((i = 0; i < R; i++)); do
        sed -n 's/.*, \([0-9]*\) prompts run in.*/\1/p' "$dir/$name-$cfg.rank$i.log"; done | awk '{s += $1} END {print s + 0}')
    awk -v n="$name" -v c="$cfg" -v R="$R" -v T="$T" -v p="${prompts:-0}" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
        -v f="$fail" -v r="$ranks" 'BEGIN {
        printf "{\"name\": \"%s\", \"config\": \"%s\", \"ranks\": %d, \"threads\": %d, \"prompts\": %d, ", n, c, R, T, p
        printf "\"ranks_s\": %.3f, \"merge_s\": %.3f, \"prompts_per_s\": %.2f, \"failed\": %d, ", t1 - t0, t2 - t1, p / (t2 - t0), f
        printf "\"rank_reports\": \"first,last,total_s,check_s,load_s,prompts,run_s,shard_s\", \"per_rank\": [%s]}\n", r }'
    [ "$fail" = 0 ] || cat "$dir/$name-$cfg".*.log >&2
done
