#!/bin/sh
# Usage errors: one line on stderr that starts with "diffscope: " and names the option, exit
# status 2, nothing written. Numbers are checked whole: past 2^32 they are refused rather than
# taken modulo 2^32, and nan or inf is refused wherever a number is expected.
. tests/lib.sh
M=tests/data/golden/models/diff-gqa-tied-bf16
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# usage_error NAME EXPECTED-TEXT ARGS...: exit 2, exactly one line holding the text, no output.
usage_error() {
    name=$1 want=$2
    shift 2
    rm -f "$T/out.h5"
    "$DS" "$@" >"$T/stdout" 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/err")
    if [ $rc -ne 2 ]; then fail "$name" "exit status $rc, expected 2 ($(head -c 300 "$T/err"))"
    elif [ "$lines" -ne 1 ]; then fail "$name" "$lines lines on stderr, expected 1"
    elif ! grep -q '^diffscope: ' "$T/err"; then fail "$name" "message does not start with 'diffscope: ': $(cat "$T/err")"
    elif ! grep -qF -- "$want" "$T/err"; then fail "$name" "message lacks '$want': $(cat "$T/err")"
    elif [ -e "$T/out.h5" ]; then fail "$name" "wrote $T/out.h5 anyway"
    else ok "$name"; fi
}

# Every command: an unknown option is one line naming the command, the option and --help.
for cmd in $("$DS" --help | awk '/^commands:/{f=1;next} f&&/^  [a-z]/{print $1}'); do
    [ "$cmd" = view ] && continue # the viewer's own messages: tests/cli/test_viewer.sh
    usage_error "usage_unknown_option_$cmd" \
        "diffscope: $cmd: unrecognized option '--frobnicate' (see diffscope $cmd --help)" "$cmd" --frobnicate
done
usage_error usage_missing_value "dump: option '--layers' needs a value" dump $M --ids 1,2 -o "$T/out.h5" --layers
usage_error usage_missing_short_value "dump: option '-o' needs a value" dump $M --ids 1,2 -o
usage_error usage_ambiguous_option "ambiguous option '--l'" dump $M --ids 1,2 -o "$T/out.h5" --l 0

# Integers past 2^32 (4294967297 is 1 modulo 2^32).
D="dump $M --ids 1,2,3 -o $T/out.h5"
usage_error usage_layers_wrap "--layers: 4294967297" $D --layers 4294967297
usage_error usage_heads_wrap "--heads: 4294967296" $D --heads 4294967296
usage_error usage_layers_range_wrap "--layers" $D --layers 0-4294967297
usage_error usage_ablate_head_wrap "--ablate-head: '4294967296.0'" $D --ablate-head 4294967296.0
usage_error usage_ablate_layer_wrap "--ablate-head: '4294967297.0'" $D --ablate-head 4294967297.0
usage_error usage_lambda_override_wrap "--lambda-override: '4294967297=0.5'" $D --lambda-override 4294967297=0.5
usage_error usage_span_tokens_wrap "--span-tokens: '4294967297:4294967298'" \
    compare $M --ids 1,2,3,4 --span-tokens 4294967297:4294967298
usage_error usage_depths_wrap "--depths: 4294967296" needle $M --task kv --depths 4294967296
usage_error usage_seed_wrap "--seed: '4294967297'" generate $M --ids 1,2 --temperature 1 --seed 4294967297

# Non-finite values of double options.
usage_error usage_temperature_nan "--temperature: 'nan'" generate $M --ids 1,2 --temperature nan
usage_error usage_temperature_inf "--temperature: 'inf'" generate $M --ids 1,2 --temperature inf
usage_error usage_top_p_nan "--top-p: 'nan'" generate $M --ids 1,2 --temperature 1 --top-p nan
usage_error usage_lambda_override_nan "--lambda-override: '1=nan'" $D --lambda-override 1=nan
usage_error usage_lambda_override_inf "--lambda-override: '1=-inf'" $D --lambda-override 1=-inf
$DS logits $M --ids 1,2,3 -o "$T/a.h5" 2>/dev/null
usage_error usage_rtol_nan "--rtol: 'nan'" verify "$T/a.h5" "$T/a.h5" --rtol nan
usage_error usage_atol_inf "--atol: 'inf'" verify "$T/a.h5" "$T/a.h5" --atol inf

exit $failed
