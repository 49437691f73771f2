#!/bin/sh
# The output contract of docs/reliability.md at its edges: what -o may replace (never a device,
# FIFO, symbolic link, read-only file or one of the run's inputs), temporary files that no planted link can redirect,
# commits that never replace a file created meanwhile without --force, every fatal signal
# removing the temporary file, stale temporary files of dead processes removed by the next run,
# stdout write errors, bench's $TMPDIR, and the viewer's screenshot. Runs that must be caught
# half-way stop themselves at a known point (DIFFSCOPE_TEST_STOP), so nothing here depends on
# the machine's speed.
. tests/lib.sh
MODEL=$GOLDEN/diff-gqa-tied-bf16
IDS=1,2,3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# Background jobs of a script start with SIGINT and SIGQUIT ignored, which diffscope keeps.
BG="env --default-signal"

# one_line NAME STATUS WANT ERRFILE: ok when STATUS is WANT and ERRFILE is one "diffscope:" line.
one_line() {
    if [ "$2" -ne "$3" ]; then fail "$1" "exit $2, expected $3: $(tr '\n' '|' <"$4")"
    elif [ "$(wc -l <"$4")" -ne 1 ] || ! grep -q '^diffscope: ' "$4"; then fail "$1" "not one line: $(tr '\n' '|' <"$4")"
    else ok "$1"; fi
}
# leftovers DIR: the temporary files in DIR.
leftovers() { ls -A "$1" | grep '\.tmp' | tr '\n' ' '; }

# -o a FIFO (and a device node when we may make one) with --force: refused, left as it is.
mkfifo "$T/fifo"
$DS logits $MODEL --ids $IDS -o "$T/fifo" --force 2>"$T/err"
rc=$?
one_line output_fifo_refused $rc 2 "$T/err"
[ -p "$T/fifo" ] && [ -z "$(leftovers "$T")" ]
check output_fifo_kept $? "the FIFO was replaced or a temporary file is left: $(ls -la "$T")"
if mknod "$T/null" c 1 3 2>/dev/null; then
    $DS logits $MODEL --ids $IDS -o "$T/null" --force 2>"$T/err"
    rc=$?
    [ $rc -eq 2 ] && [ -c "$T/null" ]
    check output_device_refused $? "exit $rc, $(ls -l "$T/null")"
    rm -f "$T/null"
else
    skip output_device_refused "mknod needs privileges"
fi
rm -f "$T/fifo"

# -o a symbolic link with --force: refused; the link and its target stay.
echo precious >"$T/victim"
ln -s victim "$T/link.h5"
$DS logits $MODEL --ids $IDS -o "$T/link.h5" --force 2>"$T/err"
rc=$?
[ $rc -eq 2 ] && [ -L "$T/link.h5" ] && [ "$(cat "$T/victim")" = precious ]
check output_symlink_refused $? "exit $rc: $(cat "$T/err")"
rm -f "$T/link.h5"

# A read-only file is not replaced even with --force.
echo precious >"$T/ro.h5"
chmod a-w "$T/ro.h5"
$DS logits $MODEL --ids $IDS -o "$T/ro.h5" --force 2>"$T/err"
rc=$?
[ $rc -eq 2 ] && [ "$(cat "$T/ro.h5")" = precious ]
check output_readonly_refused $? "exit $rc: $(cat "$T/err")"
rm -f "$T/ro.h5"

# -o naming one of the run's own inputs (the model's weights) is not replaced even with --force.
cp -r $MODEL "$T/m"
cp "$T/m/model.safetensors" "$T/weights"
$DS logits "$T/m" --ids $IDS -o "$T/m/model.safetensors" --force 2>"$T/err"
rc=$?
[ $rc -eq 2 ] && cmp -s "$T/m/model.safetensors" "$T/weights" && [ -z "$(leftovers "$T/m")" ]
check output_own_input_refused $? "exit $rc: $(cat "$T/err")"
rm -rf "$T/m" "$T/weights"

# A link planted at the temporary name the old writer used (OUT.tmp<PID>) is not followed.
mkdir "$T/o"
sh -c 'ln -s ../victim "$1/out.h5.tmp$$"; exec "$2" logits "$3" --ids 1,2,3 -o "$1/out.h5"' sh "$T/o" "$DS" $MODEL 2>"$T/err"
rc=$?
[ $rc -eq 0 ] && [ "$(cat "$T/victim")" = precious ] && [ -f "$T/o/out.h5" ]
check output_planted_tmp_link_not_followed $? "exit $rc, victim now $(head -c 20 "$T/victim" | tr -cd '[:print:]')"
rm -rf "$T/o"
mkdir "$T/o"

# A file created at OUT while the run writes it is not replaced without --force.
DIFFSCOPE_TEST_STOP=before-commit $DS logits $MODEL --ids $IDS -o "$T/o/out.h5" 2>"$T/err" &
pid=$!
if wait_stopped $pid; then
    echo "someone else's result" >"$T/o/out.h5"
    kill -CONT $pid
fi
wait $pid
rc=$?
if [ $rc -ne 2 ] || [ "$(cat "$T/o/out.h5")" != "someone else's result" ] || [ -n "$(leftovers "$T/o")" ]; then
    fail output_created_meanwhile_kept "exit $rc, out.h5: $(head -c 30 "$T/o/out.h5" | tr -cd '[:print:]'), left: $(leftovers "$T/o")"
else
    one_line output_created_meanwhile_kept $rc 2 "$T/err"
fi
rm -f "$T/o/out.h5"

# Two runs to the same new OUT: the second to finish fails instead of replacing the first.
DIFFSCOPE_TEST_STOP=before-commit $DS logits $MODEL --ids $IDS -o "$T/o/out.h5" 2>"$T/err" &
pid=$!
wait_stopped $pid
$DS logits $MODEL --ids 4,5,6 -o "$T/o/out.h5" 2>/dev/null
first=$?
cp "$T/o/out.h5" "$T/first.h5" 2>/dev/null
kill -CONT $pid
wait $pid
rc=$?
[ $first -eq 0 ] && [ $rc -eq 2 ] && cmp -s "$T/o/out.h5" "$T/first.h5" && [ -z "$(leftovers "$T/o")" ]
check output_two_runs_one_target $? "first exit $first, second exit $rc: $(cat "$T/err")"
rm -f "$T/o/out.h5" "$T/first.h5"

# Every signal whose default action ends the process removes the temporary file and still ends
# it (status 128 + N). Under AddressSanitizer its own handler takes the faults.
sigs="HUP INT QUIT USR1 USR2 PIPE ALRM TERM XCPU VTALRM PROF IO PWR STKFLT ABRT TRAP SYS RTMIN RTMAX"
case $BUILD in *asan*) ;; *) sigs="$sigs SEGV BUS FPE ILL" ;; esac
for sig in $sigs; do
    num=$($PY -c 'import signal, sys; print(int(getattr(signal, "SIG" + sys.argv[1])))' $sig)
    DIFFSCOPE_TEST_STOP=tmpfile-created $BG $DS logits $MODEL --ids $IDS -o "$T/o/out.h5" 2>/dev/null &
    pid=$!
    if ! wait_stopped $pid; then
        { wait $pid; } 2>/dev/null
        fail "output_signal_$sig" "the run did not stop at the test hook"
        rm -f "$T/o/"*
        continue
    fi
    left=$(leftovers "$T/o")
    kill -"$num" $pid
    kill -CONT $pid
    { wait $pid; } 2>/dev/null
    rc=$?
    if [ -z "$left" ]; then fail "output_signal_$sig" "no temporary file while stopped"
    elif [ $rc -ne $((128 + num)) ]; then fail "output_signal_$sig" "exit $rc, expected $((128 + num))"
    elif [ -n "$(ls -A "$T/o")" ]; then fail "output_signal_$sig" "left behind: $(ls -A "$T/o")"
    else ok "output_signal_$sig"; fi
    rm -f "$T/o/"*
done

# SIGKILL leaves the temporary file; the next run into the folder removes it, but not one whose
# process is alive (here this shell, under a copied name).
DIFFSCOPE_TEST_STOP=tmpfile-created $DS logits $MODEL --ids $IDS -o "$T/o/out.h5" 2>/dev/null &
pid=$!
wait_stopped $pid
kill -KILL $pid
{ wait $pid; } 2>/dev/null
stale=$(ls "$T/o")
alive=$(echo "$stale" | sed "s/\.tmp-[0-9]*-/.tmp-$$-/; s/^out/other/")
[ -n "$stale" ] && cp "$T/o/$stale" "$T/o/$alive"
$DS logits $MODEL --ids $IDS -o "$T/o/new.h5" 2>/dev/null
rc=$?
[ -n "$stale" ] && [ $rc -eq 0 ] && [ ! -e "$T/o/$stale" ] && [ -e "$T/o/$alive" ]
check output_stale_tmp_removed $? "exit $rc, stale '$stale', folder now: $(ls -A "$T/o" | tr '\n' ' ')"
rm -rf "$T/o"

# Results on stdout that cannot be written: status 2 and one line, for every kind of command.
$DS tokenize tests/data/tokenizers/llama2-bpe/tokenizer.json hello >/dev/full 2>"$T/err"
one_line stdout_full_tokenize $? 2 "$T/err"
$DS info $MODEL >/dev/full 2>"$T/err"
one_line stdout_full_info $? 2 "$T/err"
$DS --help >/dev/full 2>"$T/err"
one_line stdout_full_help $? 2 "$T/err"

# bench --dump writes into $TMPDIR, in a private folder it removes afterwards.
mkdir "$T/tmpdir"
DIFFSCOPE_TEST_STOP=tmpfile-created TMPDIR="$T/tmpdir" $DS bench $MODEL --tokens 4 --rounds 1 --dump >/dev/null 2>"$T/err" &
pid=$!
if wait_stopped $pid; then
    during=$(find "$T/tmpdir" -name 'dump.h5.tmp-*' | wc -l)
    kill -CONT $pid
else
    during=0
fi
wait $pid
rc=$?
[ $rc -eq 0 ] && [ "$during" -eq 1 ] && [ -z "$(ls -A "$T/tmpdir")" ]
check bench_uses_tmpdir $? "exit $rc, $during temporary dumps in TMPDIR while running: $(cat "$T/err")"

# The viewer's screenshot: a link planted at the old temporary name (OUT.tmp<PID>) is not
# followed, a FIFO target is refused, and stdout (--print-layout) to /dev/full is status 2.
if [ -x "$VIEW" ] && $DS dump $MODEL --ids $IDS -o "$T/d.h5" 2>/dev/null; then
    mkdir "$T/v"
    sh -c 'ln -s ../victim "$1/shot.bmp.tmp$$"; exec "$2" "$3" --size 640x480 --screenshot "$1/shot.bmp"' sh "$T/v" "$VIEW" "$T/d.h5" >/dev/null 2>"$T/err"
    rc=$?
    [ $rc -eq 0 ] && [ "$(cat "$T/victim")" = precious ] && [ -s "$T/v/shot.bmp" ]
    check view_planted_tmp_link_not_followed $? "exit $rc, victim now $(head -c 20 "$T/victim" | tr -cd '[:print:]'): $(cat "$T/err")"
    mkfifo "$T/v/fifo.bmp"
    "$VIEW" "$T/d.h5" --size 640x480 --screenshot "$T/v/fifo.bmp" >/dev/null 2>"$T/err"
    rc=$?
    [ $rc -eq 2 ] && [ -p "$T/v/fifo.bmp" ]
    check view_fifo_target_refused $? "exit $rc: $(cat "$T/err")"
    "$VIEW" "$T/d.h5" --size 640x480 --screenshot "$T/v/l.bmp" --print-layout >/dev/full 2>"$T/err"
    rc=$?
    [ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ]
    check view_stdout_full $? "exit $rc: $(cat "$T/err")"
else
    skip view_output_safety "no viewer built or no dump"
fi
exit $failed
