#!/bin/sh
# make bench: the standard benchmark set, printed as one table.
#   eff%:  prefill GFLOP/s over sgemm's sustained GFLOP/s, measured right after each prefill
#          for as long as it took (median of 3 rounds; see diffscope bench --help);
#   peak%: the same prefill over sgemm's fastest single call of those rounds.
#   - random checkpoints of the "small" (125 M) and "kajuma" (1.24 B) shapes, DiffLlama and
#     Llama, written once by `diffscope init` under $BENCH_DIR (default /tmp/diffscope-bench);
#   - prefill at 128 and 512 tokens, 32 decode steps, a full dump at 512 tokens;
#   - a 4096-token dump of one layer of the kajuma shape (float16 maps), with its peak RSS;
#   - scaling: the 512-token prefill on 1, 2, 4, 8, 16 ... threads (up to nproc);
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
    print('%-18s full dump at %d tokens: %.1f MB at %.2f GB/s (plain writes of as many bytes there: %.2f GB/s)' % (
          '', r['tokens'], r['dump_mb'], r['dump_gbs'], r['disk_write_gbs']))
    print('%-18s dump time split: %s' % ('', ', '.join('%s %.3f s' % kv for kv in r['dump_split_s'].items())))
"
        done
    done
done
# Scaling: the same prefill on 1, 2, 4, 8, 16 ... threads (as many as the machine has), each
# run pinned to that many cores; eff% against sgemm's sustained rate on the same threads, and
# the speed-up over one thread, so that a loss of scaling shows at once.
scale_model="$DIR/small-diffllama"
[ -z "$BENCH_QUICK" ] && scale_model="$DIR/kajuma-diffllama"
echo
echo "scaling: $(basename "$scale_model"), 512 tokens"
ncores=$(nproc)
scale_json="$DIR/scaling.jsonl"
: >"$scale_json"
for t in 1 2 4 8 16 32 64 128 "$ncores"; do
    [ "$t" -gt "$ncores" ] && continue
    grep -q "\"threads\":$t," "$scale_json" && continue
    pin=""
    command -v taskset >/dev/null && pin="taskset -c 0-$((t - 1))"
    $pin $DS bench "$scale_model" --tokens 512 --threads "$t" --rounds 1 --json >>"$scale_json" || exit 1
done
/usr/bin/python3 -c "
import json
rows = [json.loads(l) for l in open('$scale_json')]
print('%8s %9s %9s %9s %7s %8s %9s' % ('threads', 'prefill_s', 'GFLOP/s', 'sgemm', 'eff%', 'speedup', 'per_core'))
for r in rows:
    print('%8d %9.3f %9.1f %9.1f %7.0f %7.2fx %9.1f' % (r['threads'], r['prefill_s'], r['prefill_gflops'],
          r['sgemm_gflops'], 100 * r['efficiency'], r['prefill_gflops'] / rows[0]['prefill_gflops'],
          r['prefill_gflops'] / r['threads']))
"
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
