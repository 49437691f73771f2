#!/usr/bin/env python3
"""Trains the small tokenizers under tests/data/tokenizers/ and records HF tokenizers' ids.

usage: python3 tools/gen_tokenizer_fixtures.py OUTDIR

Needs the `tokenizers` Python package, nothing else, and no network. The corpus is built here:
the Python standard library's own source files found on the machine, plus generated
multilingual text, so the fixtures are reproducible in kind though not byte for byte.

Writes OUTDIR/<name>/tokenizer.json and OUTDIR/<name>/vectors.json for four tokenizers:

  llama2-bpe        Llama 2's exact structure: BPE with byte_fallback and fuse_unk, normalizer
                    Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, TemplateProcessing <s>,
                    decoder Replace + ByteFallback + Fuse + Strip; merges in the "a b" form.
  llama2-metaspace  the same model behind NFKC + a Metaspace pre-tokenizer (prepend_scheme
                    "first"), plus added tokens exercising lstrip/rstrip/single_word/normalized.
  llama3-bytebpe    Llama 3's structure: Split with the Llama 3 regex + ByteLevel(use_regex=false),
                    ignore_merges, special tokens after the model vocabulary, post-processor
                    ByteLevel + TemplateProcessing <|begin_of_text|>; merges in the pair form.
  gpt2-bytelevel    the same byte-level model behind ByteLevel(add_prefix_space, use_regex).

vectors.json holds, for every string of the battery: ids (add_special_tokens=True),
ids_no_special, tokens (the token strings of ids), decoded (decode(ids, skip_special_tokens=True))
and decoded_keep (skip_special_tokens=False), the same keys as ../shared's vectors.json, plus
decoded_skip_by_id: decode of the ids with every special token's id removed. HF's own skip looks
the decoded string up, so it keeps special tokens declared "normalized" (Llama 2's "<s>"
decodes to "▁<s>"); diffscope's --skip-special removes them by id, and this is its reference.
`gen_tokenizer_fixtures.py --update DIR` adds that key to the vectors.json files under DIR
without retraining anything.
"""
import glob
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
import tokenizers

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

PHRASES = [
    "The quick brown fox jumps over the lazy dog.", "Differential attention cancels noise.",
    "café résumé naïve façade crème brûlée", "Hügel über Brücke, Mañana voy a la peña.",
    "Привет, мир! Это тест токенизатора.", "Καλημέρα κόσμε, η γλώσσα είναι ωραία.",
    "你好，世界！这是分词器测试。", "中文是世界上使用人口最多的语言之一。",
    "こんにちは、世界。トークナイザーのテストです。", "안녕하세요, 세계! 토크나이저 테스트입니다.",
    "مرحبا بالعالم! هذا اختبار للمحلل.", "שלום עולם! זה מבחן.", "नमस्ते दुनिया! यह परीक्षण है।",
    "สวัสดีชาวโลก", "👋 Hello! 🌍 World 🚀 launch 🎉 party 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵",
    "numbers 1234567890 3.14159 -42 1e-9 1,000,000.00", "x = (a >> 2) | (b << 4) & 0xFF;",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "don't won't I'm you're they've we'll he'd", "\tTabs\tand  double  spaces\n\nand newlines\r\n",
]


def corpus(rng):
    """Yields up to ~2.5 MB of text: stdlib Python sources, then generated sentences."""
    total = 0
    for fn in sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True)):
        try:
            with open(fn, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            continue
        total += len(text)
        yield text
        if total > 2_000_000:
            break
    for _ in range(6000):
        yield " ".join(rng.choice(PHRASES) for _ in range(rng.randint(1, 4)))


def prose(rng, nbytes):
    words = ("the of and to in is was for on that with as by at from his her they this which "
             "model attention layer token head weight value query key differential noise signal "
             "river mountain city winter morning letter garden window silence music").split()
    out = []
    while len(" ".join(out)) < nbytes:
        sent = [rng.choice(words) for _ in range(rng.randint(5, 16))]
        sent[0] = sent[0].capitalize()
        out.append(" ".join(sent) + rng.choice([".", ".", ",", "!", "?", ".\n\n", ";"]))
    return " ".join(out)[:nbytes]


def battery(rng):
    b = ["", " ", "  ", "   ", "\t", "\n", "\n\n\n", " \t\n", "\t\t  \n\n \r\n\r\n", "a", "Hello world",
         " Hello world", "  Hello  world  ", "trailing spaces   ", "line1\nline2\r\nline3\n\n\n",
         "    def f(x):\n        return x  # comment\n",
         "你好，世界！日本語のテキストと漢字。한국어 문장입니다", "مرحبا بالعالم! العربية نص",
         "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 🧑🏽‍💻 coder, 1️⃣ keycap, 🇩🇪🇯🇵 flags",
         "🦙🦙🦙 unseen: 𓀀 𒀭 🀄 ⿰ \U0001F9FF", "e\u0301 cafe\u0301 n\u0303 a\u0300\u0301\u0302 stacked",
         "café ﬁne ﬀ ① Ｆｕｌｌｗｉｄｔｈ ｶﾀｶﾅ ㍻",
         "1 12 123 1234 12345 123456 1234567890 3.14159 -42 1e-9 1,000,000.00",
         "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }\nreturn sum >> 1;",
         "if (x !== null && y >= 0) { return x ?? y; } // résumé",
         "url=https://example.com/path?q=1&r=2#frag sha=e3b0c44298fc1c149afbf4c8996fb924",
         "don't won't I'm you're they've we'll he'd DON'T I'LL",
         "<s> literal special </s> text", "<s>", "</s></s>", "a<s>b", "<unk> unknown",
         "<|begin_of_text|> inside", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
         "call <tool>  search <tool>\tnow", "<tool>", "[MASK] word a[MASK]b [MASK]. x [MASK]",
         "fine ﬁne refine fine-tune", "<tool_call>{\"a\": 1}</tool_call>",
         "\u200b zero width \u00a0nbsp \u2028line sep\u2029para", "\x7f\x01\x02 control chars",
         "x" * 300, "ok" * 257, "!!!!!! ??? ... ---- ====", "Σ x_i ≠ 北京 → München · Tōkyō",
         prose(rng, 5000)]
    return b


def decoded_skip_by_id(tk, ids):
    special = {i for i, t in tk.get_added_tokens_decoder().items() if t.special}
    return tk.decode([i for i in ids if i not in special], skip_special_tokens=True)


def vectors(tk, strings):
    cases = []
    for s in strings:
        e1 = tk.encode(s, add_special_tokens=True)
        e0 = tk.encode(s, add_special_tokens=False)
        cases.append({"text": s, "ids": e1.ids, "ids_no_special": e0.ids, "tokens": e1.tokens,
                      "decoded": tk.decode(e1.ids, skip_special_tokens=True),
                      "decoded_keep": tk.decode(e1.ids, skip_special_tokens=False),
                      "decoded_skip_by_id": decoded_skip_by_id(tk, e1.ids)})
    return cases


def update(root):
    """Adds decoded_skip_by_id to every ROOT/*/vectors.json, from the tokenizer.json beside it."""
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isfile(os.path.join(d, "vectors.json")):
            continue
        tk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "vectors.json"), encoding="utf-8") as f:
            v = json.load(f)
        for c in v["cases"]:
            c["decoded_skip_by_id"] = decoded_skip_by_id(tk, c["ids"])
        with open(os.path.join(d, "vectors.json"), "w", encoding="utf-8") as f:
            json.dump(v, f, ensure_ascii=False, indent=0)
        print(name, "updated", len(v["cases"]), "cases")


def save(out, name, tk, strings):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    # Re-read the serialized form, the file the C side loads, before recording ids.
    tk = Tokenizer.from_str(tk.to_str())
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tk.to_str(pretty=False))
    with open(os.path.join(d, "vectors.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer": name, "tokenizers_version": tokenizers.__version__,
                   "cases": vectors(tk, strings)}, f, ensure_ascii=False, indent=0)
    print(name, "vocab", tk.get_vocab_size(), "bytes", os.path.getsize(os.path.join(d, "tokenizer.json")))


def train_llama2(rng):
    """Trains a SentencePiece-like BPE, then lays it out exactly as Llama 2's tokenizer.json."""
    tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tk.train_from_iterator(corpus(rng), trainers.BpeTrainer(
        vocab_size=1300, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=150,
        show_progress=False))
    trained = json.loads(tk.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for tok, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if tok not in vocab:
            vocab[tok] = len(vocab)
    merges = [" ".join(m) if isinstance(m, list) else m for m in trained["merges"]]
    specials = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": True, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
                  "byte_fallback": True, "vocab": vocab, "merges": merges},
    }


def llama2_metaspace(llama2):
    d = json.loads(json.dumps(llama2))
    for t in d["added_tokens"]:
        t["normalized"] = False
    d["normalizer"] = {"type": "NFKC"}
    d["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                          "split": False}
    tk = Tokenizer.from_str(json.dumps(d))
    tk.add_tokens([AddedToken("<tool>", lstrip=True, rstrip=True, normalized=False, special=False),
                   AddedToken("ﬁne", normalized=True, special=False)])
    tk.add_special_tokens([AddedToken("[MASK]", single_word=True, lstrip=True, normalized=False,
                                      special=True)])
    return tk


def train_llama3(rng):
    tk = Tokenizer(models.BPE(ignore_merges=True))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(corpus(rng), trainers.BpeTrainer(
        vocab_size=1800, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    # As in Llama 3, the special tokens come after the model's vocabulary.
    tk.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in
                           ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                            "<|end_header_id|>", "<|eot_id|>"]])
    tk.add_tokens([AddedToken("<tool_call>", normalized=False, special=False)])
    d = json.loads(tk.to_str())
    bos = tk.token_to_id("<|begin_of_text|>")
    d["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                  {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos],
                                                  "tokens": ["<|begin_of_text|>"]}}}]}
    return d


def gpt2_style(llama3):
    d = json.loads(json.dumps(llama3))
    d["model"]["ignore_merges"] = False
    d["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                          "use_regex": True}
    d["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True}
    return d


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--update":
        update(sys.argv[2])
        return
    if len(sys.argv) != 2:
        sys.exit("usage: gen_tokenizer_fixtures.py OUTDIR | --update DIR")
    out = sys.argv[1]
    strings = battery(random.Random(3))
    l2 = train_llama2(random.Random(1))
    save(out, "llama2-bpe", Tokenizer.from_str(json.dumps(l2)), strings)
    save(out, "llama2-metaspace", llama2_metaspace(l2), strings)
    l3 = train_llama3(random.Random(2))
    save(out, "llama3-bytebpe", Tokenizer.from_str(json.dumps(l3)), strings)
    save(out, "gpt2-bytelevel", Tokenizer.from_str(json.dumps(gpt2_style(l3))), strings)


if __name__ == "__main__":
    main()
