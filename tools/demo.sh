#!/bin/sh
# make demo: the main job on the trained demo models (notebooks-data/models), offline.
#   1. both models answer a key-retrieval prompt;
#   2. both are dumped (every map of every layer) to $DEMO_DIR;
#   3. compare: attention mass on the answer span against noise, per layer, and the
#      activation-outlier table, DiffLlama against Llama;
#   4. needle: retrieval accuracy and masses by depth of the queried pair;
#   5. sweep: the same statistics over a grid of prompts, per prompt, layer and head, with
#      aggregates, in one HDF5 file (add mpirun -np N in front for N ranks: docs/sweep.md);
#   6. the command that opens the viewer on the dumps;
#   7. the same model from Python (python/examples/demo.py).
set -e
BUILD=${BUILD:-build}
DS=$BUILD/diffscope
DIFF=notebooks-data/models/diffllama
LLAMA=notebooks-data/models/llama
OUT=${DEMO_DIR:-$BUILD/demo}
mkdir -p "$OUT"
PROMPT="the k_apple v_42 of so it was that k_river v_7 which a they had k_cloud v_13 and then some of k_tiger v_58 for all you here k_piano v_21 but not when k_candle v_33 is on its way to the most so many ? k_tiger"

echo "== prompt (the answer is v_58):"
echo "   $PROMPT"
echo "   DiffLlama answers: $($DS generate $DIFF --prompt "$PROMPT" -n 1)"
echo "   Llama answers:     $($DS generate $LLAMA --prompt "$PROMPT" -n 1)"
echo
echo "== dumps"
$DS dump $DIFF --prompt "$PROMPT" -o "$OUT/diffllama.h5" --force --what softmax,diff,scores,groupnorm,outliers
$DS dump $LLAMA --prompt "$PROMPT" -o "$OUT/llama.h5" --force --what softmax,scores,outliers
echo
echo "== compare: DiffLlama (A) against Llama (B), query '? k_tiger', span 'k_tiger v_58'"
$DS compare $DIFF --vs $LLAMA --prompt "$PROMPT" --span-text "k_tiger v_58" -o "$OUT/compare.h5" --force
echo
echo "== needle: the queried pair at each depth of a 128-token context, 20 prompts per depth"
$DS needle $DIFF --vs $LLAMA --task kv --trials 20
echo
echo "== sweep: 2 lengths x 3 depths x 4 trials of the kv task, per prompt, layer and head"
$DS sweep --model $DIFF --vs $LLAMA --task kv --lengths 64,109 --depths 0:100:50 --trials 4 \
    -o "$OUT/sweep.h5" --force | sed -n '1,4p;/^length/,$p'
echo
echo "Open the viewer on the dumps (row 45 is the query '? k_tiger'):"
echo "   $BUILD/diffscope-view $OUT/diffllama.h5 --vs $OUT/llama.h5 --layer 3 --row 45"
echo
echo "== the same from Python (python/diffscope over $BUILD/libdiffscope.so, docs/python.md):"
if /usr/bin/python3 -c "import numpy, h5py" 2>/dev/null; then
    DIFFSCOPE_LIB=$BUILD/libdiffscope.so PYTHONPATH=python /usr/bin/python3 python/examples/demo.py "$PROMPT" "$OUT/diffllama.h5"
    echo "   (the code: python/examples/demo.py; in your shell: export PYTHONPATH=$PWD/python)"
else
    echo "   skipped: /usr/bin/python3 lacks numpy or h5py (apt-get install python3-numpy python3-h5py)"
fi
