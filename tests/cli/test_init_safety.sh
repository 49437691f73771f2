#!/bin/sh
# diffscope init writes a checkpoint folder whole or not at all: --force replaces the old layout
# (single file <-> shards) instead of leaving parts of it, a rejected --like creates nothing, a
# signal or a full disk half-way leaves no finished shard (and no folder it created), a second
# init into the same folder is refused while one runs, and the loader refuses a folder holding
# both layouts. Runs caught half-way stop themselves (DIFFSCOPE_TEST_STOP).
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat >"$T/cfg.json" <<'JSON'
{"model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096}
JSON
# layout DIR: the checkpoint files of DIR (and anything else in it, temporary ones included).
layout() { ls -A "$1" 2>/dev/null | tr '\n' ' '; }

$DS init "$T/m" --like "$T/cfg.json" --seed 1 2>/dev/null
$DS init "$T/m" --like "$T/cfg.json" --seed 2 --force --shard-mb 1 2>/dev/null
rc=$?
[ $rc -eq 0 ] && [ ! -e "$T/m/model.safetensors" ] && [ -f "$T/m/model.safetensors.index.json" ] &&
    $DS info "$T/m" >/dev/null 2>&1
check init_force_single_to_shards $? "exit $rc, folder: $(layout "$T/m")"

$DS init "$T/m" --like "$T/cfg.json" --seed 3 --force 2>/dev/null
rc=$?
[ $rc -eq 0 ] && [ "$(layout "$T/m")" = "config.json model.safetensors " ]
check init_force_shards_to_single $? "exit $rc, folder: $(layout "$T/m")"

$DS init "$T/m" --like "$T/cfg.json" --seed 3 --force --shard-mb 1 2>/dev/null
n4=$(ls "$T/m" | grep -c 'of-00004')
$DS init "$T/m" --like "$T/cfg.json" --seed 3 --force --shard-mb 2 2>/dev/null
[ "$n4" -eq 4 ] && [ "$(ls "$T/m" | grep -c 'of-00004')" -eq 0 ] && [ "$(ls "$T/m" | grep -c 'of-00003')" -eq 3 ]
check init_force_fewer_shards $? "folder: $(layout "$T/m")"

# Both layouts in one folder: which one is meant is unknown, so loading refuses.
$DS init "$T/single" --like "$T/cfg.json" 2>/dev/null
cp "$T/single/model.safetensors" "$T/m/"
$DS info "$T/m" >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q 'both model.safetensors and model.safetensors.index.json' "$T/err"
check load_refuses_both_layouts $? "exit $rc: $(cat "$T/err")"

$DS init "$T/new/deeper/bogus" --like bogus 2>"$T/err"
rc=$?
[ $rc -eq 2 ] && [ ! -e "$T/new" ]
check init_bad_like_creates_nothing $? "exit $rc, $(ls -R "$T/new" 2>&1 | tr '\n' ' ')"

# SIGTERM after the first of four shards is finished: nothing of the new checkpoint is left,
# not even the folder init created; over an old checkpoint, the old one is intact.
DIFFSCOPE_TEST_STOP=shard-written env --default-signal $DS init "$T/fresh/sub" --like "$T/cfg.json" --shard-mb 1 2>/dev/null &
pid=$!
stopped=0
wait_stopped $pid && stopped=1 && kill -TERM $pid && kill -CONT $pid
{ wait $pid; } 2>/dev/null
rc=$?
[ $stopped -eq 1 ] && [ $rc -eq 143 ] && [ ! -e "$T/fresh/sub" ]
check init_sigterm_leaves_nothing $? "exit $rc, left: $(ls -AR "$T/fresh" 2>&1 | tr '\n' ' ')"

cp -r "$T/single" "$T/old"
DIFFSCOPE_TEST_STOP=shard-written env --default-signal $DS init "$T/old" --like "$T/cfg.json" --seed 9 --force --shard-mb 1 2>/dev/null &
pid=$!
wait_stopped $pid && kill -TERM $pid && kill -CONT $pid
{ wait $pid; } 2>/dev/null
rc=$?
[ $rc -eq 143 ] && [ "$(layout "$T/old")" = "config.json model.safetensors " ] &&
    cmp -s "$T/old/model.safetensors" "$T/single/model.safetensors"
check init_sigterm_keeps_old_checkpoint $? "exit $rc, folder: $(layout "$T/old")"

# A full disk (a file-size limit standing in for it) half-way: status 2, one line, the old
# checkpoint intact and no new file.
(ulimit -f 1000 && exec $DS init "$T/old" --like "$T/cfg.json" --seed 9 --force) >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && [ "$(layout "$T/old")" = "config.json model.safetensors " ] &&
    cmp -s "$T/old/model.safetensors" "$T/single/model.safetensors"
check init_full_disk_keeps_old_checkpoint $? "exit $rc, $(cat "$T/err"), folder: $(layout "$T/old")"
(ulimit -f 1000 && exec $DS init "$T/full/x" --like "$T/cfg.json") >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 2 ] && [ ! -e "$T/full" ]
check init_full_disk_leaves_nothing $? "exit $rc, left: $(ls -AR "$T/full" 2>&1 | tr '\n' ' ')"

# Two inits into one folder: the second is refused while the first runs; the result is all
# the first one's (the same bytes as that seed written alone).
$DS init "$T/ref5" --like "$T/cfg.json" --seed 5 --shard-mb 1 2>/dev/null
DIFFSCOPE_TEST_STOP=shard-written $DS init "$T/both" --like "$T/cfg.json" --seed 5 --force --shard-mb 1 2>/dev/null &
pid=$!
wait_stopped $pid
$DS init "$T/both" --like "$T/cfg.json" --seed 6 --force 2>"$T/err"
second=$?
kill -CONT $pid
wait $pid
first=$?
same=1
for f in "$T"/ref5/*; do cmp -s "$f" "$T/both/${f##*/}" || same=0; done
[ $second -eq 2 ] && grep -q 'another diffscope init' "$T/err" && [ $first -eq 0 ] && [ $same -eq 1 ] &&
    [ "$(layout "$T/both")" = "$(layout "$T/ref5")" ]
check init_concurrent_refused $? "second exit $second ($(cat "$T/err")), first exit $first, same $same: $(layout "$T/both")"
exit $failed
