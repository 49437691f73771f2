#!/bin/sh
# make bench-bf16: the bf16 compute mode (docs/numerics.md, "bf16 compute") next to f32 on this
# machine, and its memory on a large checkpoint.
#   - bf16 checkpoints of the "small" (125 M) and "kajuma" (1.24 B) shapes, DiffLlama, written once
#     by `diffscope init --dtype bf16` under $BENCH_DIR (default /tmp/diffscope-bench);
#   - prefill (BF16_TOKENS, default 128) and 16 decode steps, --compute f32 and --compute bf16,
#     the same checkpoint and threads, one after the other: the speed-up of bf16 over f32 and
#     each one's peak RSS next to the weights' bf16 size;
#   - with BENCH_8B=1, an 8 B-parameter bf16 DiffLlama (Llama 3 8B's shape; about 16 GB on disk,
#     written under $BENCH_DIR and deleted afterwards unless BENCH_KEEP=1): a short prompt through
#     `diffscope logits --compute bf16`, its wall time and peak RSS (GNU time) against the weights.
# Set BENCH_QUICK=1 to skip the kajuma shape.
BUILD=${BUILD:-build}
DS=$BUILD/diffscope
DIR=${BENCH_DIR:-/tmp/diffscope-bench}
THREADS=${BENCH_THREADS:-$(nproc)}
T=${BF16_TOKENS:-128}
mkdir -p "$DIR"
shapes="small"
[ -z "$BENCH_QUICK" ] && shapes="small kajuma"
printf "%-22s %7s %6s %9s %9s %9s %9s %11s\n" model compute tokens prefill_s GFLOP/s decode/s RSS_GiB RSS/weights
for shape in $shapes; do
    m="$DIR/$shape-diffllama-bf16"
    [ -f "$m/config.json" ] || $DS init "$m" --like $shape --dtype bf16 >/dev/null || exit 1
    for compute in f32 bf16; do
        $DS bench "$m" --tokens "$T" --decode 16 --rounds 2 --threads "$THREADS" --compute $compute --json |
            /usr/bin/python3 -c "
import json, sys
r = json.load(sys.stdin)
weights = r['params'] * 2 / 2**30
print('%-22s %7s %6d %9.3f %9.1f %9.2f %9.2f %10.2fx' % ('$shape-diffllama-bf16', r['compute'], r['tokens'], r['prefill_s'],
      r['prefill_gflops'], r['decode_tok_s'], r['peak_rss_gb'], r['peak_rss_gb'] / weights))
if r['compute'] == 'bf16':
    print('%-22s bf16 products on %s (implementation: %s)' % ('', r['bf16_kernel'], r['bf16_impl']))
" || exit 1
    done
done
[ -z "$BENCH_8B" ] && exit 0
m="$DIR/8b-diffllama-bf16"
cfg="$DIR/8b.json"
cat >"$cfg" <<'JSON'
{"architectures": ["DiffLlamaForCausalLM"], "model_type": "diffllama", "hidden_size": 4096, "intermediate_size": 14336,
 "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
 "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": false}
JSON
[ -f "$m/config.json" ] || $DS init "$m" --like "$cfg" --dtype bf16 >/dev/null || exit 1
weights=$(du -sbL "$m" | cut -f1)
/usr/bin/time -f "%e %M" -o "$DIR/time.txt" $DS logits "$m" --ids 1,2,3,4,5,6,7,8 -o "$DIR/8b-logits.h5" --force \
    --compute bf16 --threads "$THREADS" || exit 1
read secs kib <"$DIR/time.txt"
echo "8b-diffllama-bf16: $(awk "BEGIN {printf \"%.2f\", $weights / 2^30}") GiB of weights; 8-token logits --compute bf16 in $secs s, peak RSS $(awk "BEGIN {printf \"%.2f GiB = %.3fx the weights\", $kib / 2^20, $kib * 1024 / $weights}")"
rm -f "$DIR/8b-logits.h5"
[ -z "$BENCH_KEEP" ] && rm -rf "$m"
exit 0
