#!/bin/sh
# Runs the malformed-input corpus tests/bad/*/case (made by tools/make_bad_inputs.py; the case
# format is described there and in docs/reliability.md). For every case:
#   - the exit status is exactly the expected one (2 unless the case says otherwise), so never
#     a signal;
#   - a failing case prints exactly one line on stderr, holding the expected fragment and the
#     name of the offending file;
#   - no output file and no temporary file appear (a pre-existing output stays byte-identical),
#     and nothing is added to the case folder.
. tests/lib.sh
BAD=tests/bad
if [ ! -x "$DS" ]; then
    echo "FAIL bad_inputs: $DS not built"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

field() { sed -n "s/^$1: *//p" "$2" | head -n 1; }

for casefile in "$BAD"/*/case; do
    dir=${casefile%/case}
    name=bad_${dir##*/}
    args=$(field args "$casefile" | sed -e "s#@CASE@#$dir#g" -e "s#@BAD@#$BAD#g" -e "s#@OUT@#$work/out/out.h5#g")
    expect=$(field expect "$casefile")
    file=$(field file "$casefile")
    want_rc=$(field exit "$casefile")
    want_rc=${want_rc:-2}
    existing=$(field existing "$casefile")
    output=$(field output "$casefile")

    rm -rf "$work/out"
    mkdir "$work/out"
    [ "$existing" = yes ] && echo "precious old output" >"$work/out/out.h5"
    find "$dir" | sort >"$work/before"
    # The arguments hold no spaces; word splitting them is intended.
    # shellcheck disable=SC2086
    "$DS" $args >"$work/stdout" 2>"$work/stderr"
    rc=$?
    find "$dir" | sort >"$work/after"
    lines=$(wc -l <"$work/stderr")
    msg=$(head -n 1 "$work/stderr")
    why=
    if [ "$rc" -ne "$want_rc" ]; then
        why="exit status $rc, expected $want_rc"
        [ "$rc" -gt 128 ] && why="$why (killed by signal $((rc - 128)))"
    elif [ "$want_rc" -ne 0 ] && [ "$lines" -ne 1 ]; then
        why="$lines lines on stderr, expected 1"
    elif [ -n "$expect" ] && ! grep -qF -- "$expect" "$work/stderr"; then
        why="message lacks '$expect'"
    elif [ -n "$file" ] && ! grep -qF -- "$file" "$work/stderr"; then
        why="message does not name '$file'"
    elif [ "$want_rc" -ne 0 ] && ! grep -q '^diffscope: ' "$work/stderr"; then
        why="message does not start with 'diffscope: '"
    elif ! cmp -s "$work/before" "$work/after"; then
        why="files appeared in $dir"
    elif [ "$output" = yes ]; then
        [ "$(ls -A "$work/out")" = out.h5 ] || why="expected exactly out.h5 in the output folder, got: $(ls -A "$work/out" | tr '\n' ' ')"
    elif [ "$existing" = yes ]; then
        if [ "$(ls -A "$work/out")" != out.h5 ] || [ "$(cat "$work/out/out.h5")" != "precious old output" ]; then
            why="the existing output file was changed or a temporary file was left"
        fi
    elif [ -n "$(ls -A "$work/out")" ]; then
        why="output or temporary files left: $(ls -A "$work/out" | tr '\n' ' ')"
    fi
    if [ -n "$why" ]; then
        echo "FAIL $name: $why; stderr: $(head -c 400 "$work/stderr" | tr '\n' '|')"
    else
        echo "ok $name"
    fi
done
