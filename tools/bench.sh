#!/bin/sh
# make bench: the standard benchmark set, printed as one table.
#   eff%:  prefill GFLOP/s over sgemm's sustained GFLOP/s, measured right after each prefill
#          for as long as it took (median of 3 rounds; see diffscope bench --help);
#   peak%: the same prefill over sgemm's fastest single call of those rounds.
#   - random checkpoints of the "small" (125 M) and "kajuma" (1.24 B) shapes, DiffLlama and
#     Llama, written once by `diffscope init` under $BENCH_DIR (default /tmp/diffscope-bench);
#   - prefill at 128 and 512 tokens, 32 decode steps, a full dump at 512 tokens;
#   - a 4096-token dump of one layer of the kajuma shape (float16 maps), with its peak RSS;
#   - tokenizer encode speed.
# Set BENCH_QUICK=1 to skip the kajuma shape.
BUILD=${BUILD:-build}
DS=$BUILD/diffscope
DIR=${BENCH_DIR:-/tmp/diffscope-bench}
THREADS=${BENCH_THREADS:-$(nproc)}
mkdir -p "$DIR"
shapes="small"
[ -z "$BENCH_QUICK" ] && shapes="small kajuma"
for shape in $shapes; do
    for arch in diffllama llama; do
        [ -f "$DIR/$shape-$arch/config.json" ] || $DS init "$DIR/$shape-$arch" --like $shape --arch $arch || exit 1
    done
done
printf "%-18s %6s %9s %9s %9s %7s %7s %8s %9s %8s %7s\n" model tokens prefill_s tok/s GFLOP/s eff% peak% RSS_GiB decode/s dump_s dump/x
for shape in $shapes; do
    for arch in diffllama llama; do
        for T in 128 512; do
            extra=""
            [ $T = 512 ] && extra="--dump --decode 32"
            $DS bench "$DIR/$shape-$arch" --tokens $T --threads "$THREADS" $extra --json | /usr/bin/python3 -c "
import json, sys
r = json.load(sys.stdin)
print('%-18s %6d %9.3f %9.1f %9.1f %7.0f %7.0f %8.2f %9s %8s %7s' % ('$shape-$arch', r['tokens'], r['prefill_s'],
      r['prefill_tok_s'], r['prefill_gflops'], 100 * r['efficiency'],
      100 * r['prefill_gflops'] / r['sgemm_peak_gflops'], r['peak_rss_gb'],
      '%.2f' % r['decode_tok_s'] if r['decode_tokens'] else '-', '%.2f' % r['dump_s'] if r['dump_s'] else '-',
      '%.2f' % r['dump_ratio'] if r['dump_s'] else '-'))
if r['decode_tokens']:
    print('%-18s decode reads weights at %.1f GB/s; this machine reads memory at %.1f GB/s' % ('', r['decode_weight_gbs'], r['read_bandwidth_gbs']))
if r['dump_s']:
    print('%-18s full dump at %d tokens: %.1f MB' % ('', r['tokens'], r['dump_mb']))
"
        done
    done
done
if [ -z "$BENCH_QUICK" ]; then
    ids=$(/usr/bin/python3 -c "import random; random.seed(1); print(','.join(str(random.randrange(128256)) for _ in range(4096)))")
    out="$DIR/long.h5"
    /usr/bin/time -f "%e %M" -o "$DIR/time.txt" $DS dump "$DIR/kajuma-diffllama" --ids "$ids" --layers 8 --dtype f16 \
        -o "$out" --force --threads "$THREADS" 2>/dev/null
    read secs kib <"$DIR/time.txt"
    echo "kajuma-diffllama 4096-token dump of layer 8 (f16 maps): $secs s, peak RSS $(echo "$kib" | awk '{printf "%.2f", $1/1048576}') GiB, $(du -m "$out" | cut -f1) MB"
    rm -f "$out"
fi
[ -x "$BUILD/bench_tokenizer" ] && "$BUILD/bench_tokenizer"
