#!/usr/bin/env python3
"""Train diffscope's demo pair: a DiffLlama and a Llama of the same shape, same recipe, same data.

The task is key-information retrieval with distractors. A sequence is

    <s> the k_apple v_42 of so k_river v_7 which ... ? k_river v_7 ? k_apple v_42 ...

BOS, then a context of filler words with P key-value pairs ("k_apple v_42") scattered in it,
then P queries "? KEY VALUE" whose keys are drawn with replacement from the row's P keys
(--queries replace; --queries once asks every key once, which lets later queries be answered
by elimination: the first committed pair was trained that way). The loss and the accuracy
are measured only where the answer is determined: the logits at a query's KEY position must
predict the VALUE token that follows it. Every word is one token of the tokenizer written
next to the models (SentencePiece-style BPE: a word is "▁word", prompts are words joined by
single spaces, BOS is added by the post-processor), so the dumps have readable labels.

Usage:
    python3 tools/train_pair.py                      # train both, write notebooks-data/models/
    python3 tools/train_pair.py --eval-only          # re-measure the committed models
    python3 tools/train_pair.py --write-tokenizer D  # only the tokenizer (no torch needed)

Needs PyTorch and transformers 5.x (tokenizers for the tokenizer check); uses the GPU when there
is one. The defaults are the recipe of the committed models, except Llama's learning rate
(--lr-llama 1e-3; see below).

Why the issue's earlier attempts failed (transformers 5.17 source, and measured on an H200):
  * Label shift. HF causal-LM labels are shifted inside the model (logits[t] are scored against
    labels[t+1]): labels must be input_ids at the answer positions and -100 elsewhere, and an
    evaluation must compare logits at the KEY position with the token after it. A loss of 0.80
    next to 26 % accuracy is the signature of training and evaluation reading different
    positions. This script computes its own cross-entropy with that alignment and checks at
    start-up that it equals HF's `labels=` loss (measured: equal to 1e-6).
  * Masks are not the problem. With SDPA and no padding transformers passes no mask and SDPA
    runs with is_causal=True; eager builds a 0/-inf causal mask; both are causal (measured:
    changing the last token moves no earlier logit, 0.0; SDPA and eager logits agree, 0.0, for
    both models). But DiffLlama picks its attention class when the model is built, so
    set_attn_implementation("eager") on a built DiffLlama does nothing: reload it to switch.
  * Initialisation matters for DiffLlama. Its per-head GroupNorm rescales each head's nearly
    uniform attention output at initialisation to unit RMS, so each layer adds a context average
    of RMS 0.10-0.18 to the residual stream (Llama adds 0.012). With transformers' default token
    embeddings (RMS 0.02) that drowns the token identity. Measured on the first task (--queries
    once): DiffLlama with embeddings N(0, 0.02) was still on the 41 % plateau below after 1754
    steps; with N(0, 1) it left the plateau at step ~900 and solved the task by step 2000.
  * The plateau. A model that knows which values are in the context, but not which one the key
    asks for, scores 1/6 = 16.7 % at loss ln 6 = 1.79 (queries with replacement). With every key
    asked once it can also eliminate the values already asked: mean(1/(6-i)) = 40.8 % at loss
    mean(ln(6-i)) = 1.097, and the all-queries accuracy then overstates retrieval (the first
    Llama: 95.2 % on all queries, 90.8 % on single queries in diffscope needle). Both models sit
    on the plateau until the induction circuit forms; when that happens is the main source of
    run-to-run variance (committed Llama: steps ~700-1400; seed 77: until ~3600; lr 2e-3: not
    left after 7284 steps; first task: DiffLlama ~500 steps, Llama ~3500, a second Llama run
    not left after 6594).
  * Not measured here: bf16 autocast rounds DiffLlama's lambda = exp(.) - exp(.) + lambda_init
    to bf16 (steps of ~0.008 near 1). These models are tiny, so this script trains in float32
    (TF32 matmuls) and sidesteps the question.

Recipe of the committed models (transformers 5.17, torch 2.11, one H200):
  model: hidden 128, 4 layers, 8 heads, 4 KV heads, head_dim 16, MLP 384, untied embeddings,
    RoPE theta 10000, vocabulary 563 (193 task words + specials, characters and BPE prefixes),
    931,968 (DiffLlama) / 931,712 (Llama) parameters, float32, 3.7 MB each.
  task: 64 keys, 64 values, 64 filler words, 6 pairs, 6 queries (keys drawn with replacement),
    training length 128 tokens; loss only at the 6 answer positions.
  optimisation (the defaults, but lr 1e-3 for Llama): token embeddings N(0, 1), other weights
    transformers' N(0, 0.02); AdamW betas (0.9, 0.98), weight decay 0.1 on matrices (not
    embeddings, norms, lambdas), lr 2e-3 (DiffLlama) / 1e-3 (Llama), 100 warm-up steps, cosine to
    10 %, gradient clip 1.0, batch 512, seed 1234; length curriculum from 40 tokens to 128 over
    the first 30 % of training, then lengths drawn from [64, 128]; stop at --max-steps, at the
    wall-clock budget, or once the accuracy at 128 tokens over all queries and over first
    queries are both >= 99.5 % at two evaluations in a row after the curriculum (1024 validation
    rows, every 250 steps). The lr schedule and the curriculum follow whichever of steps and
    time is further along.
  DiffLlama: `python3 tools/train_pair.py --arch diffllama --max-steps 30000 --budget-s 480`;
  Llama: `python3 tools/train_pair.py --arch llama --lr-llama 1e-3 --max-steps 30000 --budget-s 480`.
    Three trainings shared the GPU (about 19 DiffLlama and 28 Llama steps/s), so time led the
    schedule: the curriculum ended at 144 s (DiffLlama step ~2900, Llama ~4250).
  DiffLlama stopped at step 3250 (167 s): accuracy 17 % at step 250 (the 1/6 plateau, left at
    once), 50 % at 500, 81 % at 1250, 95 % at 1750, 99.7 % at 2500, 99.92 % (first queries
    99.90 %) at 3250.
  Llama stopped at step 4500 (159 s): on the 1/6 plateau (16-18 %, loss 1.87-1.97) from step ~700
    to ~1400, then 47 % at 1500, 83 % at 1750, 96 % at 2500, 99.8 % at 3500, 100 % at 4500.
    A second seed (77, not committed) left the plateau at ~3600 and stopped at 7250 (224 s).
  Continuing the first pair on this task reached 99.9 % for DiffLlama (500 steps) but only
  94.5 % for Llama (6500 steps, lr 3e-4 decaying), so both were trained from scratch.

Measured on the committed files (--eval-only: reloaded with from_pretrained(dtype=float32),
eager attention; 2048 rows x 6 queries at 128 and 256 tokens, 1024 rows at 512; same 6 pairs,
more filler), all queries (first queries):
                 128 (1x)           256 (2x)          512 (4x)
    DiffLlama    99.94 % (99.95 %)  84.9 % (82.3 %)   51.5 % (45.3 %)
    Llama       100.0 % (100.0 %)   85.5 % (85.6 %)   55.5 % (54.9 %)
  DiffLlama's lambda per layer: 0.244 1.111 0.977 0.899. transformers answers v_3 (id 71) with
  both models on the 128-token prompt of tests/cli/test_demo_models.sh and v_58 (id 126) on the
  make-demo prompt (tools/demo.sh). diffscope's figures: docs/demo-models.md.
"""

import argparse
import copy
import functools
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time

# ---------------------------------------------------------------------------------------------
# Vocabulary and tokenizer (standard library only, so --write-tokenizer runs anywhere)

KEY_NAMES = [
    "apple", "river", "stone", "cloud", "tiger", "piano", "candle", "forest",
    "silver", "rocket", "garden", "window", "mirror", "dragon", "island", "pepper",
    "violin", "castle", "falcon", "meadow", "lemon", "anchor", "bridge", "copper",
    "desert", "engine", "feather", "glacier", "harbor", "jungle", "kettle", "ladder",
    "marble", "nutmeg", "orange", "pillow", "quartz", "ribbon", "saddle", "tunnel",
    "velvet", "walnut", "yogurt", "zebra", "basket", "cactus", "dolphin", "ember",
    "fossil", "garlic", "helmet", "igloo", "jacket", "kitten", "lantern", "magnet",
    "nectar", "oyster", "parrot", "quiver", "raven", "sponge", "turtle", "umbrella",
]
FILLER_WORDS = [
    "the", "a", "of", "and", "to", "in", "is", "was", "it", "on", "for", "with", "as", "at",
    "by", "from", "this", "that", "but", "or", "not", "are", "be", "has", "had", "have",
    "they", "we", "you", "he", "she", "his", "her", "its", "our", "their", "one", "two",
    "all", "some", "any", "each", "more", "most", "many", "much", "very", "just", "only",
    "also", "then", "than", "so", "now", "here", "there", "when", "where", "why", "how",
    "what", "who", "which", "will",
]
N_VALUES = 64
QUERY_MARK = "?"
SPECIALS = ["<unk>", "<s>", "</s>"]
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPACE = "\u2581"  # SentencePiece's word-start mark


class Vocab:
    """Task words and their token ids: specials, then ?, keys, values, fillers, contiguous."""

    def __init__(self):
        self.keys = ["k_" + k for k in KEY_NAMES]
        self.values = ["v_%d" % i for i in range(N_VALUES)]
        self.fillers = list(FILLER_WORDS)
        self.words = [QUERY_MARK] + self.keys + self.values + self.fillers
        if len(set(self.words)) != len(self.words):
            raise SystemExit("train_pair: duplicate task words")
        self.qmark_id = len(SPECIALS)
        self.key0 = self.qmark_id + 1
        self.value0 = self.key0 + len(self.keys)
        self.filler0 = self.value0 + len(self.values)
        self.tokenizer = build_tokenizer(self.words)
        self.size = len(self.tokenizer["model"]["vocab"])
        self.id_to_piece = {i: p for p, i in self.tokenizer["model"]["vocab"].items()}

    def word(self, token_id):
        return self.id_to_piece[token_id].replace(SPACE, "")

    def text(self, ids):
        """The prompt text of a training row (BOS is not part of the text)."""
        return " ".join(self.word(i) for i in ids if i != BOS_ID)


def build_tokenizer(words):
    """A tokenizer.json (HF tokenizers format) in which every task word is a single token.

    Llama-2 layout: normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, BPE with
    merges, TemplateProcessing adding <s>. The vocabulary is the specials, then the task words
    as "▁word" in `words` order (so the ids are known), then single characters and the
    prefixes that the merges build. Every merge is (prefix of "▁word", next character): the
    left side always starts with ▁ and the right side never does, so merges never cross a
    word boundary and each "▁word" is assembled left to right, whatever the merge ranks.
    """
    vocab = {}
    for s in SPECIALS:
        vocab[s] = len(vocab)
    pieces = [SPACE + w for w in words]
    for p in pieces:
        vocab[p] = len(vocab)
    for ch in sorted(set("".join(pieces))):
        if ch not in vocab:
            vocab[ch] = len(vocab)
    merges = []
    seen = set()
    for p in pieces:
        for i in range(1, len(p)):
            left, right = p[:i], p[i]
            if (left, right) in seen:
                continue
            seen.add((left, right))
            merges.append([left, right])
            if left + right not in vocab:
                vocab[left + right] = len(vocab)
    added = [{"id": vocab[s], "content": s, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for s in SPECIALS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [BOS_ID], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def bpe_encode_reference(tok, text):
    """A plain re-implementation of the tokenizer above (no added tokens): self-check only."""
    model = tok["model"]
    ranks = {tuple(m): r for r, m in enumerate(model["merges"])}
    symbols = list(SPACE + text.replace(" ", SPACE))
    while True:
        best = None
        for i in range(len(symbols) - 1):
            r = ranks.get((symbols[i], symbols[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
    return [model["vocab"].get(s, UNK_ID) for s in symbols]


def tokenizer_text(tok):
    return json.dumps(tok, ensure_ascii=False, indent=1) + "\n"


def write_file_atomic(path, data):
    tmp = path + ".tmp"
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp, mode) as f:
        f.write(data)
    os.replace(tmp, path)


def check_tokenizer_pure(vocab):
    """Every task word must encode to exactly its own id (reference BPE, no dependencies)."""
    tok = vocab.tokenizer
    for i, w in enumerate(vocab.words):
        ids = bpe_encode_reference(tok, w)
        want = len(SPECIALS) + i
        if ids != [want]:
            raise SystemExit("train_pair: word %r encodes to %r, expected [%d]" % (w, ids, want))
    sample = " ".join(vocab.words)
    if bpe_encode_reference(tok, sample) != list(range(len(SPECIALS), len(SPECIALS) + len(vocab.words))):
        raise SystemExit("train_pair: a sentence of all task words does not encode word by word")


def check_tokenizer_hf(path, vocab, rows, log):
    """The same check with HF tokenizers on the written file, plus whole training rows."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        log("tokenizers not installed: HF tokenizer check skipped")
        return
    tk = Tokenizer.from_file(path)
    for i, w in enumerate(vocab.words):
        ids = tk.encode(w, add_special_tokens=False).ids
        if ids != [len(SPECIALS) + i]:
            raise SystemExit("train_pair: HF tokenizers encodes %r as %r" % (w, ids))
    for row in rows:
        text = vocab.text(row)
        enc = tk.encode(text).ids
        if enc != list(row):
            raise SystemExit("train_pair: HF tokenizers does not reproduce a training row:\n%s" % text)
        if tk.decode(enc) != text:
            raise SystemExit("train_pair: HF tokenizers does not decode a row back to its text")
    log("tokenizer check: all %d task words are single tokens; %d training rows round-trip "
        "through HF tokenizers" % (len(vocab.words), len(rows)))


# ---------------------------------------------------------------------------------------------
# Arguments


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default="notebooks-data/models",
                    help="writes OUT/diffllama and OUT/llama (config.json, model.safetensors, tokenizer.json)")
    ap.add_argument("--arch", choices=["both", "diffllama", "llama"], default="both")
    ap.add_argument("--eval-only", action="store_true", help="measure the models in --out-dir")
    ap.add_argument("--write-tokenizer", metavar="DIR", help="write DIR/tokenizer.json and exit")
    ap.add_argument("--results", help="also write the measurements and curves to this JSON file")
    ap.add_argument("--init-from", metavar="DIR",
                    help="continue training the models in DIR/<arch> instead of starting from scratch")
    ap.add_argument("--seed", type=int, default=1234)
    # model
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=384)
    ap.add_argument("--max-pos", type=int, default=1024)
    ap.add_argument("--embed-std", type=float, default=1.0, help="token embedding init std")
    # task
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--queries", choices=["replace", "once"], default="replace",
                    help="query keys drawn with replacement, or every key once (elimination helps)")
    ap.add_argument("--seq-len", type=int, default=128, help="training length in tokens")
    ap.add_argument("--min-len", type=int, default=40, help="curriculum start length")
    ap.add_argument("--curriculum", type=float, default=0.3, help="fraction of training to reach --seq-len")
    # optimisation
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-diffllama", type=float, help="override --lr for DiffLlama")
    ap.add_argument("--lr-llama", type=float, help="override --lr for Llama")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=6000)
    ap.add_argument("--budget-s", type=float, default=1800.0, help="wall-clock budget per model")
    ap.add_argument("--stop-acc", type=float, default=0.995,
                    help="stop once the accuracy at --seq-len reaches this (after the curriculum)")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--val-rows", type=int, default=1024, help="rows of the validation set used during training")
    ap.add_argument("--prompt", action="append", default=[],
                    help="also log transformers' next token for this task prompt (repeatable)")
    ap.add_argument("--eval-rows", type=int, default=2048, help="rows per length in the final evaluation")
    args = ap.parse_args(argv)
    if args.heads % 2 or args.kv_heads % 2:
        ap.error("DiffLlama needs an even number of heads and of KV heads")
    if args.min_len - 1 - 3 * args.pairs < 2 * args.pairs:
        ap.error("--min-len too short for %d pairs" % args.pairs)
    return args


def context_len(total, pairs):
    """Context tokens in a row of `total` tokens: BOS + context + 3 tokens per query."""
    return total - 1 - 3 * pairs


# ---------------------------------------------------------------------------------------------
# Torch part


def make_batch(torch, vocab, rows, ctx, pairs, gen, device, queries="replace"):
    """Rows of BOS + context (ctx tokens, `pairs` pairs among fillers) + queries.

    Returns ids [rows, 1 + ctx + 3*pairs] and kpos [pairs]: the positions of the query keys,
    whose logits must predict the value at kpos + 1. Everything runs on `device`, no syncs.
    """
    B, P = rows, pairs
    n_fill = ctx - 2 * P
    units = n_fill + P  # a unit is one filler token or one two-token pair
    keys = torch.rand(B, len(vocab.keys), generator=gen, device=device).argsort(1)[:, :P] + vocab.key0
    vals = torch.rand(B, len(vocab.values), generator=gen, device=device).argsort(1)[:, :P] + vocab.value0
    pair_units = torch.rand(B, units, generator=gen, device=device).argsort(1)[:, :P]
    is_pair = torch.zeros(B, units, dtype=torch.bool, device=device)
    is_pair.scatter_(1, pair_units, True)
    pairs_before = is_pair.long().cumsum(1) - is_pair.long()  # pair index, for pair units
    pair_idx = pairs_before.clamp(max=P - 1)
    fill = torch.randint(vocab.filler0, vocab.filler0 + len(vocab.fillers), (B, units),
                         generator=gen, device=device)
    first = torch.where(is_pair, keys.gather(1, pair_idx), fill)
    second = vals.gather(1, pair_idx)
    pos1 = torch.arange(units, device=device) + pairs_before  # where each unit starts
    pos2 = torch.where(is_pair, pos1 + 1, torch.full_like(pos1, ctx))  # column ctx is a bin
    context = torch.empty(B, ctx + 1, dtype=torch.long, device=device)
    context.scatter_(1, pos1, first)
    context.scatter_(1, pos2, second)
    context = context[:, :ctx]
    if queries == "replace":  # each query asks any context key: no elimination to exploit
        order = torch.randint(0, P, (B, P), generator=gen, device=device)
    else:  # "once": every key once, in random order (the first committed models)
        order = torch.rand(B, P, generator=gen, device=device).argsort(1)
    queries = torch.stack([torch.full((B, P), vocab.qmark_id, dtype=torch.long, device=device),
                           keys.gather(1, order), vals.gather(1, order)], 2).view(B, 3 * P)
    bos = torch.full((B, 1), BOS_ID, dtype=torch.long, device=device)
    ids = torch.cat([bos, context, queries], 1)
    kpos = 1 + ctx + 3 * torch.arange(P, device=device) + 1
    return ids, kpos


def check_batch(torch, vocab, ids, kpos, ctx, pairs):
    """Structural check of make_batch's output (cheap, run once per length)."""
    ids = ids.cpu()
    kpos = kpos.cpu()
    for row in ids[:64].tolist():
        context = row[1:1 + ctx]
        found = {}
        assert row[1 + ctx] == vocab.qmark_id, "the queries do not start after the context"
        for i, t in enumerate(context):
            if vocab.key0 <= t < vocab.value0:
                found[t] = context[i + 1]
        assert len(found) == pairs, "context does not hold %d distinct keys" % pairs
        n_vals = sum(1 for t in context if vocab.value0 <= t < vocab.filler0)
        assert n_vals == pairs, "stray values in the context"
        for j in range(pairs):
            k = kpos[j].item()
            assert row[k - 1] == vocab.qmark_id and found[row[k]] == row[k + 1], "bad query"
    assert ids[:, 0].eq(BOS_ID).all()


def make_config(arch, args, vocab):
    from transformers import DiffLlamaConfig, LlamaConfig
    cls = DiffLlamaConfig if arch == "diffllama" else LlamaConfig
    return cls(vocab_size=vocab.size, hidden_size=args.hidden, intermediate_size=args.intermediate,
               num_hidden_layers=args.layers, num_attention_heads=args.heads,
               num_key_value_heads=args.kv_heads, max_position_embeddings=args.max_pos,
               rms_norm_eps=1e-5, initializer_range=0.02, tie_word_embeddings=False,
               bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=None)


def answer_loss(torch, logits, ids, kpos):
    """Cross-entropy of the logits at the query keys against the value that follows each."""
    sel = logits[:, kpos]
    return torch.nn.functional.cross_entropy(sel.reshape(-1, sel.shape[-1]).float(),
                                             ids[:, kpos + 1].reshape(-1))


def evaluate(torch, model, batches):
    """Top-1 accuracy and mean loss at the answer positions over (ids, kpos) batches.

    Returns (accuracy over every query, mean loss, accuracy of each row's first query). The
    first query is pure retrieval: nothing asked before it can hint at its answer.
    """
    was_training = model.training
    model.eval()
    correct, first, total, rows, loss_sum = 0, 0, 0, 0, 0.0
    with torch.no_grad():
        for ids, kpos in batches:
            logits = model(input_ids=ids, use_cache=False).logits
            target = ids[:, kpos + 1]
            hit = logits[:, kpos].argmax(-1) == target
            correct += hit.sum().item()
            first += hit[:, 0].sum().item()
            total += target.numel()
            rows += target.shape[0]
            loss_sum += answer_loss(torch, logits, ids, kpos).item() * target.numel()
    model.train(was_training)
    return correct / total, loss_sum / total, first / rows


def eval_batches(torch, vocab, args, total_len, rows, device, seed, chunk=256):
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    ctx = context_len(total_len, args.pairs)
    out = []
    for start in range(0, rows, chunk):
        out.append(make_batch(torch, vocab, min(chunk, rows - start), ctx, args.pairs, gen, device,
                              args.queries))
    return out


def init_report(torch, model, ids, log, name):
    """RMS of the token embeddings and of each layer's attention output at initialisation."""
    rms = []
    hooks = [layer.self_attn.register_forward_hook(
        lambda mod, inp, out: rms.append(out[0].float().pow(2).mean().sqrt().item()))
        for layer in model.model.layers]
    with torch.no_grad():
        emb = model.model.embed_tokens(ids).float().pow(2).mean().sqrt().item()
        model(input_ids=ids, use_cache=False)
    for h in hooks:
        h.remove()
    log("%s init RMS: token embeddings %.3f, attention output per layer %s"
        % (name, emb, " ".join("%.3f" % r for r in rms)))


def sanity_checks(torch, arch, model, config, ids, kpos, log):
    """Causality, SDPA vs eager, and our loss vs HF's labels= loss, on the fresh model.

    Failures are logged, not fatal: a device run is too scarce to lose to a threshold.
    """
    from transformers import AutoModelForCausalLM
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits
        changed = ids.clone()
        changed[:, -1] = (changed[:, -1] + 1 - BOS_ID) % (config.vocab_size - BOS_ID) + BOS_ID
        leak = (model(input_ids=changed, use_cache=False).logits[:, :-1] - logits[:, :-1]).abs().max().item()
        # A copy of the config: from_config must not switch the training model's setting.
        eager = AutoModelForCausalLM.from_config(copy.deepcopy(config),
                                                 attn_implementation="eager").to(ids.device)
        eager.load_state_dict(model.state_dict())
        diff = (eager(input_ids=ids, use_cache=False).logits - logits).abs().max().item()
        labels = torch.full_like(ids, -100)
        labels[:, kpos + 1] = ids[:, kpos + 1]
        hf_loss = model(input_ids=ids, labels=labels, use_cache=False).loss.item()
        ours = answer_loss(torch, logits, ids, kpos).item()
    torch.backends.cuda.matmul.allow_tf32 = tf32
    log("%s checks: attention %s/%s (train) vs %s/%s (eager copy); future-token leak %.2e; "
        "|sdpa - eager| logits %.2e; answer loss ours %.6f vs HF labels= %.6f" % (
            arch, type(model.model.layers[0].self_attn).__name__, model.config._attn_implementation,
            type(eager.model.layers[0].self_attn).__name__, eager.config._attn_implementation,
            leak, diff, ours, hf_loss))
    if leak > 1e-5 or diff > 1e-4 or abs(ours - hf_loss) > 1e-5 * max(1.0, ours):
        log("CHECK FAILED for %s: see the line above" % arch)


def lr_at(args, base_lr, step, progress):
    warm = min(1.0, (step + 1) / args.warmup)
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return base_lr * warm * (args.min_lr_ratio + (1.0 - args.min_lr_ratio) * cos)


def length_at(args, progress, rng):
    """Curriculum: the longest length grows from --min-len to --seq-len; draw from its top half."""
    frac = min(1.0, progress / args.curriculum) if args.curriculum > 0 else 1.0
    longest = int(args.min_len + frac * (args.seq_len - args.min_len))
    shortest = max(args.min_len, longest // 2)
    return rng.randint(shortest, longest), frac >= 1.0


def train_one(torch, arch, args, vocab, device, log, val_batches):
    from transformers import AutoModelForCausalLM
    base_lr = getattr(args, "lr_" + arch) or args.lr
    ids0, kpos0 = val_batches[0]
    torch.manual_seed(args.seed)
    if args.init_from:
        path = os.path.join(args.init_from, arch)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                     attn_implementation="sdpa").to(device)
        config = model.config
        if config.vocab_size != vocab.size:
            raise SystemExit("train_pair: %s has vocab_size %d, the task needs %d" % (path, config.vocab_size, vocab.size))
        acc, _, acc_first = evaluate(torch, model, val_batches)
        log("%s: continuing from %s (accuracy at %d tokens: %.4f, first queries %.4f)"
            % (arch, path, args.seq_len, acc, acc_first))
    else:
        config = make_config(arch, args, vocab)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").to(device)
        init_report(torch, model, ids0, log, arch + " (transformers init)")
        with torch.no_grad():
            model.model.embed_tokens.weight.normal_(0.0, args.embed_std)
        init_report(torch, model, ids0, log, arch + " (embed std %g)" % args.embed_std)
    model.train()
    sanity_checks(torch, arch, model, config, ids0[:64], kpos0, log)
    n_params = sum(p.numel() for p in model.parameters())
    log("%s: %d parameters, lr %g" % (arch, n_params, base_lr))

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim == 2 and "embed_tokens" not in name else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=base_lr, betas=(0.9, 0.98), eps=1e-8, fused=device.type == "cuda")
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed + 1)
    rng = random.Random(args.seed + 2)
    history = []
    checked_lengths = set()
    loss_acc = torch.zeros((), device=device)
    loss_n = 0
    step, good_evals = 0, 0
    t0 = time.time()
    model.train()
    while True:
        elapsed = time.time() - t0
        progress = max(step / args.max_steps, elapsed / args.budget_s)
        if progress >= 1.0:
            break
        lr = lr_at(args, base_lr, step, progress)
        for g in opt.param_groups:
            g["lr"] = lr
        total_len, curriculum_done = length_at(args, progress, rng)
        ctx = context_len(total_len, args.pairs)
        ids, kpos = make_batch(torch, vocab, args.batch, ctx, args.pairs, gen, device, args.queries)
        if total_len not in checked_lengths:
            check_batch(torch, vocab, ids, kpos, ctx, args.pairs)
            checked_lengths.add(total_len)
        logits = model(input_ids=ids, use_cache=False).logits
        loss = answer_loss(torch, logits, ids, kpos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        loss_acc += loss.detach()
        loss_n += 1
        step += 1
        if step % args.log_every == 0 or step % args.eval_every == 0:
            rec = {"step": step, "time_s": round(time.time() - t0, 1), "progress": round(progress, 3),
                   "len": total_len, "lr": lr, "loss": loss_acc.item() / loss_n}
            loss_acc.zero_()
            loss_n = 0
            msg = "%s step %5d  %6.1fs  p=%.2f  len=%3d  lr=%.2e  loss=%.4f" % (
                arch, step, rec["time_s"], progress, total_len, lr, rec["loss"])
            if step % args.eval_every == 0:
                acc, vloss, acc_first = evaluate(torch, model, val_batches)
                rec["acc"], rec["val_loss"], rec["acc_first"] = acc, vloss, acc_first
                msg += "  acc@%d=%.4f first=%.4f val_loss=%.4f" % (args.seq_len, acc, acc_first, vloss)
                # Stop on first-query accuracy: pure retrieval, what `diffscope needle` measures.
                good = curriculum_done and min(acc, acc_first) >= args.stop_acc
                good_evals = good_evals + 1 if good else 0
            history.append(rec)
            log(msg)
            if good_evals >= 2:
                log("%s: accuracy %.4f (first queries %.4f) >= %.3f twice after the curriculum: stopping"
                    % (arch, acc, acc_first, args.stop_acc))
                break
    log("%s: trained %d steps in %.1f s" % (arch, step, time.time() - t0))
    return model, {"arch": arch, "steps": step, "train_s": round(time.time() - t0, 1),
                   "params": n_params, "lr": base_lr, "init_from": args.init_from, "history": history}


def save_model(torch, model, vocab, out_dir):
    """config.json + model.safetensors via save_pretrained, plus tokenizer.json, atomically."""
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        for name in ("config.json", "model.safetensors"):
            shutil.copyfile(os.path.join(tmp, name), os.path.join(out_dir, name + ".tmp"))
            os.replace(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))
    write_file_atomic(os.path.join(out_dir, "tokenizer.json"), tokenizer_text(vocab.tokenizer))


@functools.lru_cache(maxsize=None)
def hf_tokenizer(model_dir):
    """The model's tokenizer.json in HF tokenizers, loaded once per folder."""
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))


def encode_prompt(model_dir, vocab, text):
    """Token ids of a prompt: HF tokenizers on the model's tokenizer.json, or the script's
    reference BPE (same ids for task text) where tokenizers is not installed."""
    try:
        return hf_tokenizer(model_dir).encode(text).ids
    except ImportError:
        return [BOS_ID] + bpe_encode_reference(vocab.tokenizer, text)


def measure(torch, args, vocab, device, arch_dirs, log, trained=None):
    """Reload each saved model as a user would (float32, eager) and measure 1x/2x/4x accuracy."""
    from transformers import AutoModelForCausalLM
    torch.backends.cuda.matmul.allow_tf32 = False
    lengths = [args.seq_len, 2 * args.seq_len, 4 * args.seq_len]
    sets = {L: eval_batches(torch, vocab, args, L, args.eval_rows if L <= 2 * args.seq_len
                            else args.eval_rows // 2, device, args.seed + 1000 + L)
            for L in lengths}
    results = {}
    for arch, path in arch_dirs.items():
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                     attn_implementation="eager").to(device)
        r = {"dir": path, "safetensors_bytes": os.path.getsize(os.path.join(path, "model.safetensors")),
             "attention_class": type(model.model.layers[0].self_attn).__name__}
        for L in lengths:
            acc, loss, acc_first = evaluate(torch, model, sets[L])
            r["acc_%d" % L], r["loss_%d" % L], r["acc_first_%d" % L] = acc, loss, acc_first
        if trained is not None and arch in trained:
            ids, _ = sets[args.seq_len][0]
            with torch.no_grad():
                a = model(input_ids=ids[:64], use_cache=False).logits
                b = trained[arch](input_ids=ids[:64], use_cache=False).logits
            r["reload_max_logit_diff"] = (a - b).abs().max().item()
        if arch == "diffllama":
            with torch.no_grad():
                r["lambda"] = [(torch.exp((a.lambda_q1 * a.lambda_k1).sum())
                                - torch.exp((a.lambda_q2 * a.lambda_k2).sum()) + a.lambda_init).item()
                               for a in (layer.self_attn for layer in model.model.layers)]
        ids, kpos = sets[args.seq_len][0]
        with torch.no_grad():
            pred = model(input_ids=ids[:1], use_cache=False).logits[0, kpos].argmax(-1).tolist()
        row = ids[0].tolist()
        r["example"] = {"text": vocab.text(row),
                        "queries": [vocab.word(row[k]) for k in kpos.tolist()],
                        "answers": [vocab.word(row[k + 1]) for k in kpos.tolist()],
                        "predicted": [vocab.word(p) for p in pred]}
        r["prompt_answers"] = []
        for text in args.prompt:  # transformers' answers on fixed prompts: references for tests
            ids = torch.tensor([encode_prompt(path, vocab, text)], device=device)
            with torch.no_grad():
                nxt = model(input_ids=ids, use_cache=False).logits[0, -1].argmax().item()
            r["prompt_answers"].append({"prompt": text, "next_id": nxt, "next": vocab.word(nxt)})
            log("%s answers %s (id %d) to: %s" % (arch, vocab.word(nxt), nxt, text))
        results[arch] = r
        log("%s (reloaded, float32, %s): %s  model.safetensors %.2f MB" % (
            arch, r["attention_class"],
            "  ".join("acc@%d=%.4f (first %.4f)" % (L, r["acc_%d" % L], r["acc_first_%d" % L])
                      for L in lengths),
            r["safetensors_bytes"] / 1e6)
            + ("  reload diff %.1e" % r["reload_max_logit_diff"] if "reload_max_logit_diff" in r else "")
            + ("  lambda %s" % " ".join("%.3f" % x for x in r["lambda"]) if "lambda" in r else ""))
        del model
    ex = results[next(iter(results))]["example"]
    log("example (%d tokens): %s" % (args.seq_len, ex["text"]))
    for arch, r in results.items():
        log("  %s answers %s (expected %s)" % (arch, " ".join(r["example"]["predicted"]),
                                               " ".join(r["example"]["answers"])))
    return results


def main(argv):
    args = parse_args(argv)
    vocab = Vocab()
    check_tokenizer_pure(vocab)
    if args.write_tokenizer:
        os.makedirs(args.write_tokenizer, exist_ok=True)
        path = os.path.join(args.write_tokenizer, "tokenizer.json")
        write_file_atomic(path, tokenizer_text(vocab.tokenizer))
        print("wrote %s (%d tokens, %d task words)" % (path, vocab.size, len(vocab.words)))
        return 0

    import torch
    t_start = time.time()

    def log(msg):
        print("[%6.1fs] %s" % (time.time() - t_start, msg), flush=True)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    import transformers
    log("torch %s, transformers %s, device %s%s" % (
        torch.__version__, transformers.__version__, device,
        " (%s)" % torch.cuda.get_device_name(0) if device.type == "cuda" else ""))
    tok_sha = hashlib.sha256(tokenizer_text(vocab.tokenizer).encode()).hexdigest()[:16]
    log("vocabulary: %d tokens (%d task words); tokenizer.json sha256 %s" % (vocab.size, len(vocab.words), tok_sha))
    archs = ["diffllama", "llama"] if args.arch == "both" else [args.arch]
    arch_dirs = {a: os.path.join(args.out_dir, a) for a in archs}

    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed + 7)
    sample_rows = []
    for L in (args.min_len, args.seq_len, 4 * args.seq_len):
        ids, kpos = make_batch(torch, vocab, 8, context_len(L, args.pairs), args.pairs, gen, device,
                               args.queries)
        check_batch(torch, vocab, ids, kpos, context_len(L, args.pairs), args.pairs)
        sample_rows += ids.tolist()

    summary = {"args": vars(args), "vocab_size": vocab.size, "tokenizer_sha256_16": tok_sha}
    trained = {}
    if not args.eval_only:
        val = eval_batches(torch, vocab, args, args.seq_len, args.val_rows, device, args.seed + 999)
        runs = {}
        for arch in archs:
            model, run = train_one(torch, arch, args, vocab, device, log, val)
            save_model(torch, model, vocab, arch_dirs[arch])
            model.eval()
            trained[arch], runs[arch] = model, run
            if args.results:  # keep what we have if a later step dies
                write_file_atomic(args.results, json.dumps(dict(summary, runs=runs), indent=1))
        summary["runs"] = runs
    check_tokenizer_hf(os.path.join(arch_dirs[archs[0]], "tokenizer.json"), vocab, sample_rows, log)
    summary["measured"] = measure(torch, args, vocab, device, arch_dirs, log, trained)
    for arch, r in summary["measured"].items():
        if r["safetensors_bytes"] >= 8 * 1024 * 1024:
            log("WARNING: %s model.safetensors is %d bytes, over 8 MB" % (arch, r["safetensors_bytes"]))
    if args.results:
        write_file_atomic(args.results, json.dumps(summary, indent=1))
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
