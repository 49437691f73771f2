#!/bin/sh
# The command-line contract: --help everywhere, exit codes, generate's sampling options and
# JSON, logits' file, verify's exit status.
. tests/lib.sh
M=tests/data/golden/models/diff-mha-f32
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

$DS --help >"$T/out" 2>"$T/err"
check cli_help $? "diffscope --help failed"
for cmd in $(awk '/^commands:/{f=1;next} f&&/^  [a-z]/{print $1}' "$T/out"); do
    $DS "$cmd" --help >"$T/h" 2>&1 && grep -q "^usage: diffscope" "$T/h"
    check "cli_help_$cmd" $? "'$cmd --help' does not print a usage line"
done

$DS frobnicate 2>"$T/err"; rc=$?
[ $rc = 2 ] && [ "$(wc -l <"$T/err")" = 1 ]
check cli_unknown_command $? "exit $rc"

$DS generate $M --ids 5,17,3 -n 8 --temperature 0.9 --seed 7 --ignore-eos >"$T/a"
$DS generate $M --ids 5,17,3 -n 8 --temperature 0.9 --seed 7 --ignore-eos >"$T/b"
cmp -s "$T/a" "$T/b" && [ -s "$T/a" ]
check generate_seeded_sampling_repeats $? "same seed, different tokens"

# A nucleus this small keeps only the most likely token: sampling becomes greedy.
$DS generate $M --ids 5,17,3 -n 8 --ignore-eos >"$T/greedy"
$DS generate $M --ids 5,17,3 -n 8 --temperature 1.5 --top-p 0.000001 --seed 3 --ignore-eos >"$T/nucleus"
cmp -s "$T/greedy" "$T/nucleus"
check generate_tiny_top_p_is_greedy $? "$(cat "$T/greedy") vs $(cat "$T/nucleus")"

$DS generate $M --ids 5,17,3 -n 4 --ignore-eos --json >"$T/j"
$PY -c "
import json, sys
j = json.load(open('$T/j'))
assert j['input_ids'] == [5, 17, 3], j
assert len(j['output_ids']) == 4 and all(isinstance(i, int) for i in j['output_ids']), j
assert j['timing']['seconds'] >= 0
"
check generate_json_fields $? "$(cat "$T/j")"

$DS generate $M --ids 5,17,3 -n 0 >/dev/null
check generate_zero_new_tokens $? "-n 0 failed"

$DS generate $M --ids 5,17 --temperature -1 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "temperature" "$T/err"
check generate_bad_temperature $? "exit $rc"

$DS logits $M --ids 5,17,3,9 -o "$T/l.h5" && $PY -c "
import h5py
f = h5py.File('$T/l.h5')
assert f['logits'].shape == (4, 96) and f['hidden_states'].shape == (3, 4, 32), (f['logits'].shape, f['hidden_states'].shape)
assert list(f['input_ids'][:]) == [5, 17, 3, 9]
"
check logits_file_layout $? "wrong /logits or /hidden_states"

$DS logits $M --ids 5,17,3,9 -o "$T/l2.h5" --ablate-head 1.0
$DS verify "$T/l.h5" "$T/l.h5" >/dev/null 2>&1
a=$?
$DS verify "$T/l2.h5" "$T/l.h5" >/dev/null 2>&1
b=$?
[ $a = 0 ] && [ $b = 1 ]
check verify_exit_status $? "identical: $a (want 0), ablated head: $b (want 1)"

$DS verify "$T/l.h5" "$T/nope.h5" 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "nope.h5" "$T/err"
check verify_missing_reference $? "exit $rc"

$DS info $M --json | $PY -c "
import json, sys
j = json.load(sys.stdin)
assert j['arch'] == 'diffllama' and len(j['lambda']) == j['num_layers'] == 2, j
"
check info_json $? "info --json is not the expected JSON"

# Stopping at EOS: a copy of the model whose eos_token_id is the first greedy token.
first=$($DS generate $M --ids 5,17,3 -n 1 --ignore-eos)
mkdir -p "$T/eos" && cp $M/model.safetensors "$T/eos/"
sed "s/\"eos_token_id\": [0-9]*/\"eos_token_id\": $first/" $M/config.json >"$T/eos/config.json"
n_stop=$($DS generate "$T/eos" --ids 5,17,3 -n 8 --json | $PY -c "import json,sys; print(len(json.load(sys.stdin)['output_ids']))")
n_all=$($DS generate "$T/eos" --ids 5,17,3 -n 8 --ignore-eos --json | $PY -c "import json,sys; print(len(json.load(sys.stdin)['output_ids']))")
[ "$n_stop" = 1 ] && [ "$n_all" = 8 ]
check generate_stops_at_eos $? "stopped after $n_stop (want 1), with --ignore-eos $n_all (want 8)"

# OpenBLAS's kernel (src/cli/blas_kernel.c): a kernel set in OPENBLAS_CORETYPE is kept; left
# unset, the kernel in use is one of those for the best instruction set the CPU has (this
# reads the CPU's flags from /proc/cpuinfo, independently of diffscope's __builtin_cpu_supports).
core() { "$@" bench $M --tokens 4 --json 2>/dev/null | $PY -c "import json, sys; print(json.load(sys.stdin)['blas_core'])" 2>/dev/null; }
got=$(core env OPENBLAS_CORETYPE=Haswell $DS)
[ "$got" = Haswell ]
check blas_kernel_user_choice_kept $? "OPENBLAS_CORETYPE=Haswell gave kernel '$got'"
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has() { for f in "$@"; do echo " $flags " | grep -q " $f " || return 1; done; }
got=$(core env -u OPENBLAS_CORETYPE $DS)
if has avx512f avx512bw avx512vl avx512dq; then want="SkylakeX Cooperlake SapphireRapids"
elif has avx2 fma; then want="Haswell Zen SkylakeX Cooperlake SapphireRapids"
else want=""; fi
if [ -z "$want" ]; then
    echo "skip blas_kernel_best_for_cpu: neither AVX2 nor AVX-512 on this CPU"
else
    echo " $want " | grep -q " $got "
    check blas_kernel_best_for_cpu $? "kernel '$got' with OPENBLAS_CORETYPE unset, expected one of: $want"
fi

# bench warns, on stderr and in its JSON, when the kernel in use is not the CPU's best: here
# a generic kernel (Prescott) forced through OPENBLAS_CORETYPE on a CPU with AVX2 or AVX-512.
if [ -n "$want" ]; then
    env OPENBLAS_CORETYPE=Prescott $DS bench $M --tokens 4 --rounds 1 --json >"$T/bench" 2>"$T/err" && $PY -c "
import json
r = json.load(open('$T/bench'))
assert r['blas_core'] == 'Prescott' and r['blas_core_best'] is False, r
assert r['blas_core_wanted'] in '$want'.split(), r
" && grep -q "Prescott kernel, but this CPU's best is" "$T/err"
    check bench_warns_slow_kernel $? "$(cat "$T/bench" "$T/err")"
fi

# bench's figures: the FLOP count against one made here from config.json (every product of
# the forward pass, attention over causal entries, lm_head for the last token only), the
# rounds asked for, a dump that was written, weights that were mapped. The time relations are
# ones that hold on a machine of any speed: the best round is no slower than the median, and
# sgemm's best call is no slower than its calls on average.
$DS bench $M --tokens 7 --decode 2 --dump --rounds 2 --threads 1 --json >"$T/bench" 2>"$T/err" && $PY -c "
import json
r = json.load(open('$T/bench'))
c = json.load(open('$M/config.json'))
T, D, I, V = 7, c['hidden_size'], c['intermediate_size'], c['vocab_size']
H, KV = c['num_attention_heads'], c['num_key_value_heads']
hd = c.get('head_dim') or D // H
per_layer = 2*T*D*H*hd + 2*2*T*D*KV*hd + 2*T*H*hd*D + 3*2*T*D*I
per_layer += sum(2*H*hd*t + 2*H*hd*t for t in range(1, T + 1))
want = c['num_hidden_layers'] * per_layer + 2*D*V
assert r['prefill_flops'] == want, (r['prefill_flops'], want)
assert r['rounds'] == 2 and r['tokens'] == 7 and r['decode_tokens'] == 2, r
assert r['dump_mb'] > 0 and r['dump_ratio'] > 0 and r['rss_file_gb'] > 0, r
assert 0 < r['prefill_best_s'] <= r['prefill_s'] and r['sgemm_peak_gflops'] >= r['sgemm_gflops'], r
assert sum(s['flops'] for s in r['stages'].values()) == want, r['stages']
assert all(s['s'] >= 0 for s in r['stages'].values()), r['stages']
# the dump's time split: every part, each one's mean over the 2 rounds adding up to their mean
split = r['dump_split_s']
assert sorted(split) == sorted(['forward', 'mlp_stats', 'layer_end', 'groupnorm', 'other', 'open', 'finish']), split
assert all(v >= 0 for v in split.values()) and abs(sum(split.values()) - r['dump_s']) < 1e-9, split
# the dump's forward pass stage by stage: the prefill's stages and FLOPs, adding up to it
fs = r['dump_forward_stages']
assert sorted(fs) == sorted(r['stages']) and all(fs[k]['flops'] == r['stages'][k]['flops'] for k in fs), fs
assert all(s['s'] >= 0 for s in fs.values()) and abs(sum(s['s'] for s in fs.values()) - split['forward']) < 1e-9, fs
# the dump's writes: every byte of the maps (softmax1, softmax2 and diff of H/2 differential
# heads, [T, T] float32 each), one pwrite per head's row block, by at least one writer
io = r['dump_io']
maps = c['num_hidden_layers'] * 3 * (H // 2)
assert round(io['gb'] * 1e9) == maps * T * T * 4 and io['writes'] == maps, (io, maps)
assert io['writer_threads'] >= 1 and io['writing_s'] > 0 and io['writer_gbs'] > 0, io
assert io['waits'] >= 0 and io['waiting_s'] >= 0 and io['draining_s'] >= 0, io
"
check bench_json_figures $? "$(cat "$T/bench" "$T/err")"
$DS bench $M --rounds 0 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q -- "--rounds" "$T/err"
check bench_rejects_zero_rounds $? "exit $rc: $(cat "$T/err")"

# bench's peak RSS is diffscope's own: started by a process holding 1.5 GB (as a Python
# process holding a transformers model does), a tiny model's peak stays far below that.
# (getrusage's ru_maxrss keeps the size of the image exec replaced, and reported 1.5 GB here.)
peak=$($PY -c "
import json, subprocess, sys
held = bytearray(1500 * 1000 * 1000)
for i in range(0, len(held), 4096): held[i] = 1
out = subprocess.run(sys.argv[1:], capture_output=True, text=True).stdout
print(json.loads(out)['peak_rss_gb'])
" $DS bench $M --tokens 4 --rounds 1 --json)
$PY -c "import sys; sys.exit(not (0 < float('$peak') < 1.0))"
check bench_peak_rss_is_its_own $? "peak_rss_gb $peak with a 1.5 GB parent"
