#!/usr/bin/env python3
"""Regenerates tests/bad/: the malformed-input corpus that tests/cli/test_bad_inputs.sh runs.

Everything is derived from one golden checkpoint (tests/data/golden/models/diff-gqa-tied-bf16,
a tiny DiffLlama in BF16 made by tools/gen_reference.py). Its safetensors file is read and
rewritten by hand (struct + json, standard library only), so every corruption is exact.

Each case is a folder tests/bad/NAME/ holding the (broken) input and a file `case`:

    # one line saying what is wrong
    args: logits @CASE@/model --ids 1,2,3 -o @OUT@   diffscope's arguments
    expect: not valid JSON                           a fragment of the one-line message
    file: config.json                                the offending file, named in the message
    exit: 2                                          expected exit status (default 2)
    existing: yes                                    @OUT@ exists beforehand and must survive
    output: yes                                      the command must write @OUT@

@CASE@ is the case folder, @BAD@ is tests/bad, @OUT@ an output path in a fresh temporary folder.

Usage: python3 tools/make_bad_inputs.py [--golden MODEL_DIR] [--out tests/bad]
"""
import argparse
import json
import os
import shutil
import struct

GOLDEN = "tests/data/golden/models/diff-gqa-tied-bf16"

# The valid base model: the golden one cut to its first layer, with a short context so that the
# too-long case needs only a few ids. Shared by the cases that need a model that loads.
BASE_MAX_POS = 8


def read_safetensors(path):
    """Returns (header dict without __metadata__, metadata, data bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + hlen])
    meta = header.pop("__metadata__", None)
    return header, meta, blob[8 + hlen :]


def tensor_bytes(header, data, name):
    b, e = header[name]["data_offsets"]
    return data[b:e]


def pack(tensors, meta={"format": "pt"}):
    """tensors: list of (name, dtype, shape, bytes) -> safetensors bytes, laid out in order."""
    header, chunks, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    return header_bytes(header) + b"".join(chunks)


def header_bytes(header):
    """The 8-byte length and the JSON header, padded with spaces to 8 bytes as the format does."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def raw_header(text, data=b""):
    """A file whose header is the given text verbatim (for headers that are not valid JSON)."""
    text = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(text)) + text + data


class Corpus:
    def __init__(self, golden, out):
        self.out = out
        with open(os.path.join(golden, "config.json")) as f:
            self.golden_config = json.load(f)
        header, _, data = read_safetensors(os.path.join(golden, "model.safetensors"))
        # The first layer's tensors plus the embedding and final norm, in file order.
        keep = [n for n in sorted(header, key=lambda n: header[n]["data_offsets"][0])
                if not n.startswith("model.layers.") or n.startswith("model.layers.0.")]
        self.tensors = [(n, header[n]["dtype"], header[n]["shape"], tensor_bytes(header, data, n)) for n in keep]
        self.config = dict(self.golden_config, num_hidden_layers=1, max_position_embeddings=BASE_MAX_POS)
        # A small table of the same file (the norms and lambdas, a few hundred bytes) for the
        # cases whose error comes before any tensor is looked up: keeps the corpus small.
        self.small = [t for t in self.tensors if len(t[3]) <= 64]
        self.names = []

    # ---- writing ----

    def case(self, name, why, args, expect, file, exit=2, existing=False, output=False):
        d = os.path.join(self.out, name)
        os.makedirs(d, exist_ok=True)
        lines = [f"# {why}", f"args: {args}", f"expect: {expect}", f"file: {file}"]
        if exit != 2:
            lines.append(f"exit: {exit}")
        if existing:
            lines.append("existing: yes")
        if output:
            lines.append("output: yes")
        with open(os.path.join(d, "case"), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.names.append(name)
        return d

    def model(self, name, config=None, weights=None, config_text=None, extra=None):
        """Writes NAME/model/: config.json (the CONFIG dict, the base config when None, none
        when False; CONFIG_TEXT verbatim instead when given), model.safetensors (WEIGHTS
        bytes, none when None), and EXTRA, a map of more file names to bytes."""
        d = os.path.join(self.out, name, "model")
        os.makedirs(d, exist_ok=True)
        if config_text is not None:
            write(os.path.join(d, "config.json"), config_text.encode())
        elif config is not False:
            write(os.path.join(d, "config.json"), json.dumps(config or self.config, indent=2).encode())
        if weights is not None:
            write(os.path.join(d, "model.safetensors"), weights)
        for fname, raw in (extra or {}).items():
            write(os.path.join(d, fname), raw)

    def logits(self, name, why, expect, file, ids="1,2,3", extra_args=""):
        args = f"logits @CASE@/model --ids {ids} -o @OUT@"
        if extra_args:
            args += " " + extra_args
        return self.case(name, why, args, expect, file)

    def base_weights(self):
        return pack(self.tensors)

    def small_weights(self):
        return pack(self.small)

    def with_header_edit(self, edit):
        """The small table with EDIT(header) applied to its parsed header (data unchanged)."""
        header, meta, data = read_safetensors_bytes(self.small_weights())
        edit(header)
        if meta is not None:
            header = {"__metadata__": meta, **header}
        return header_bytes(header) + data


def read_safetensors_bytes(blob):
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + hlen])
    meta = header.pop("__metadata__", None)
    return header, meta, blob[8 + hlen :]


def write(path, raw):
    with open(path, "wb") as f:
        f.write(raw)


def build(c):
    st = "model.safetensors"
    cfg = "config.json"
    norm = "model.norm.weight"
    kproj = "model.layers.0.self_attn.k_proj.weight"

    # ---- the valid base, and the cases that run it ----
    c.model("valid", weights=c.base_weights())
    c.case("valid", "control: the base model itself runs (every other case breaks one thing of it)",
           "logits @CASE@/model --ids 1,2,3 -o @OUT@", "", "", exit=0, output=True)
    long_ids = ",".join(["5"] * (BASE_MAX_POS + 1))
    c.case("too-long", f"{BASE_MAX_POS + 1} ids, max_position_embeddings is {BASE_MAX_POS}",
           f"logits @BAD@/valid/model --ids {long_ids} -o @OUT@", "exceed max_position_embeddings", "valid/model")
    c.case("too-long-allowed", "the same prompt with --allow-long runs, with one warning line",
           f"logits @BAD@/valid/model --ids {long_ids} --allow-long -o @OUT@", "warning: ", "valid/model",
           exit=0, output=True)
    vocab = c.config["vocab_size"]
    c.case("id-outside-vocab", f"token id {vocab} in a vocabulary of {vocab}",
           f"logits @BAD@/valid/model --ids 1,{vocab},2 -o @OUT@", "outside the vocabulary", "valid/model")
    c.case("id-huge", "a token id past 2^31",
           "logits @BAD@/valid/model --ids 1,99999999999 -o @OUT@", "--ids", "99999999999")
    c.case("missing-folder", "the model folder does not exist",
           "logits @CASE@/no-such-model --ids 1 -o @OUT@", "not found", "no-such-model")
    c.case("output-unwritable", "the output path is inside a regular file",
           "logits @BAD@/valid/model --ids 1,2 -o @BAD@/valid/model/config.json/out.h5", "cannot create output file",
           "config.json/out.h5")
    c.case("output-exists", "the output file exists and --force is not given: it must stay intact",
           "logits @BAD@/valid/model --ids 1,2 -o @OUT@", "already exists", "out.h5", existing=True)
    c.case("info-missing-folder", "info on a folder that does not exist",
           "info @CASE@/nothing-here", "", "nothing-here")

    # ---- safetensors: framing and header ----
    base = c.small_weights()
    c.model("st-truncated-5-bytes", weights=base[:5])
    c.logits("st-truncated-5-bytes", "the file ends inside the 8-byte header length", "truncated", st)
    hlen = struct.unpack("<Q", base[:8])[0]
    c.model("st-truncated-data", weights=base[: 8 + hlen + 100])
    c.logits("st-truncated-data", "the file is cut 100 bytes into the data section", "past the end of the data", st)
    c.model("st-header-past-eof", weights=struct.pack("<Q", len(base)) + base[8:])
    c.logits("st-header-past-eof", "the header length is the file size", "runs past the end of the file", st)
    c.model("st-header-len-2p63", weights=struct.pack("<Q", 1 << 63) + base[8:])
    c.logits("st-header-len-2p63", "a hostile header length of 2^63", "runs past the end of the file", st)
    c.model("st-header-len-max", weights=struct.pack("<Q", (1 << 64) - 1) + base[8:])
    c.logits("st-header-len-max", "a header length of 2^64-1 (wraps if added to 8)", "runs past the end of the file",
             st)
    c.model("st-header-not-json", weights=raw_header('{"model.norm.weight": {"dtype": "F32", '))
    c.logits("st-header-not-json", "the header is cut JSON", "not valid JSON", st)
    c.model("st-header-binary", weights=raw_header(bytes(range(256))))
    c.logits("st-header-binary", "the header is binary garbage", "not valid JSON", st)
    c.model("st-header-not-object", weights=raw_header("[1, 2, 3]"))
    c.logits("st-header-not-object", "the header is a JSON array", "not a JSON object", st)
    c.model("st-header-empty", weights=raw_header(""))
    c.logits("st-header-empty", "a zero-length header", "not valid JSON", st)
    c.model("st-dir-not-file", weights=None)
    os.makedirs(os.path.join(c.out, "st-dir-not-file", "model", st), exist_ok=True)
    write(os.path.join(c.out, "st-dir-not-file", "model", st, ".keep"), b"")
    c.logits("st-dir-not-file", "model.safetensors is a folder", "not a regular file", st)

    # ---- safetensors: the tensor table ----
    def edit_case(name, why, expect, edit):
        c.model(name, weights=c.with_header_edit(edit))
        c.logits(name, why, expect, st)

    def set_entry(tname, **kv):
        def edit(h):
            h[tname].update(kv)
        return edit

    data_size = sum(len(t[3]) for t in c.small)
    edit_case("st-offsets-out-of-range", "model.norm.weight ends past the data section", "past the end of the data",
              set_entry(norm, data_offsets=[data_size - 64 + 8, data_size + 8]))
    edit_case("st-offsets-huge", "data_offsets near 2^53 (begin + size would overflow a 32-bit size)",
              "past the end of the data", set_entry(norm, data_offsets=[2**53 - 64, 2**53]))
    edit_case("st-offsets-reversed", "data_offsets [end, begin]", "bad data_offsets",
              set_entry(norm, data_offsets=[data_size, data_size - 64]))
    edit_case("st-offsets-negative", "a negative data offset", "bad data_offsets",
              set_entry(norm, data_offsets=[-64, 0]))
    edit_case("st-offsets-fraction", "a fractional data offset", "bad data_offsets",
              set_entry(norm, data_offsets=[0.5, 64.5]))
    edit_case("st-offsets-one-entry", "data_offsets with one entry", "data_offsets must be [begin, end]",
              set_entry(norm, data_offsets=[0]))
    edit_case("st-offsets-strings", "data_offsets as strings", "bad data_offsets",
              set_entry(norm, data_offsets=["0", "64"]))

    def overlap(h):
        h[norm]["data_offsets"] = [0, 64]  # the bytes of model.layers.0.input_layernorm.weight
    edit_case("st-overlap", "model.norm.weight overlaps another tensor", "overlap", overlap)
    edit_case("st-unknown-dtype", "dtype Q4_K", "unknown dtype", set_entry(norm, dtype="Q4_K"))
    edit_case("st-dtype-not-string", "dtype is a number", "missing dtype", set_entry(norm, dtype=16))
    edit_case("st-shape-overflow", "shape [2^32, 2^32, 4]: the element count overflows 64 bits",
              "shape product overflows", set_entry(norm, shape=[2**32, 2**32, 4]))
    edit_case("st-shape-bytes-overflow", "shape [2^31, 2^31, 2] BF16: 2^63 elements fit, 2^64 bytes do not",
              "byte size overflows", set_entry(norm, shape=[2**31, 2**31, 2]))
    edit_case("st-shape-bytes-mismatch", "shape [33] for 64 bytes of BF16", "need",
              set_entry(norm, shape=[33]))
    edit_case("st-shape-negative", "shape [-32]", "non-negative integers", set_entry(norm, shape=[-32]))
    edit_case("st-shape-huge-entry", "a shape entry of 1e300", "non-negative integers",
              set_entry(norm, shape=[1e300]))
    edit_case("st-shape-too-many-dims", "a 9-dimensional shape", "dimensions", set_entry(norm, shape=[1] * 8 + [32]))
    edit_case("st-shape-not-list", "shape is a string", "missing shape", set_entry(norm, shape="32"))

    def entry_not_object(h):
        h[norm] = 5
    edit_case("st-entry-not-object", "a tensor entry that is a number", "not an object", entry_not_object)

    def drop_offsets(h):
        del h[norm]["data_offsets"]
    edit_case("st-no-offsets", "a tensor without data_offsets", "data_offsets", drop_offsets)

    # A duplicated key: JSON allows it syntactically, so the file is written by hand.
    hdr, meta, data = read_safetensors_bytes(base)
    text = json.dumps({"__metadata__": meta, **hdr}, separators=(",", ":"))
    dup = '"%s":%s' % (norm, json.dumps(hdr[norm], separators=(",", ":")))
    text = text[:-1] + "," + dup + "}"
    c.model("st-duplicate-tensor", weights=raw_header(text, data))
    c.logits("st-duplicate-tensor", "model.norm.weight appears twice in the header", "appears twice", st)

    # A weight in an integer dtype: a valid file, but not something the model can use. The
    # embedding is the first tensor the loader converts.
    emb = "model.embed_tokens.weight"
    ts = [(n, "I16" if n == emb else d, s, r) for n, d, s, r in c.tensors if n == emb]
    c.model("st-integer-weight", weights=pack(ts))
    c.logits("st-integer-weight", "the embedding stored as I16", "only F32, BF16, F16 and F64", st)

    # ---- the model's tensors ----
    ts = [t for t in c.tensors if t[0] != "model.layers.0.self_attn.lambda_k2"]
    c.model("missing-tensor", weights=pack(ts))
    c.logits("missing-tensor", "the DiffLlama tensor lambda_k2 of layer 0 is absent", "missing tensor", "missing-tensor/model")
    # The loader checks the embedding, the final norm, then layer 0's norms and projections in
    # order: the tensors after k_proj are not needed to reach the error.
    qproj = "model.layers.0.self_attn.q_proj.weight"
    head = [t for t in c.tensors if t[0] in (emb, qproj, kproj) or len(t[3]) <= 64]
    ts = [(n, d, list(reversed(s)) if n == kproj else s, r) for n, d, s, r in head]
    c.model("wrong-shape", weights=pack(ts))
    c.logits("wrong-shape", "k_proj stored as [D, KV*hd] instead of [KV*hd, D]", "expected [16, 32]", st)
    c.model("missing-embedding", weights=pack(c.small))
    c.logits("missing-embedding", "no model.embed_tokens.weight", "missing tensor 'model.embed_tokens.weight'",
             "missing-embedding/model")
    c.model("no-weights")
    c.logits("no-weights", "config.json but no safetensors at all", "no model.safetensors", "no-weights/model")

    # ---- sharded checkpoints ----
    half = len(c.small) // 2
    shard1 = "model-00001-of-00002.safetensors"
    shard2 = "model-00002-of-00002.safetensors"
    wmap = {t[0]: shard1 for t in c.small[:half]}
    wmap.update({t[0]: shard2 for t in c.small[half:]})
    index = json.dumps({"metadata": {}, "weight_map": wmap}, indent=2).encode()
    c.model("shard-missing", extra={"model.safetensors.index.json": index, shard1: pack(c.small[:half])})
    c.logits("shard-missing", "the index names a second shard that is not there", "cannot open", shard2)
    c.model("shard-index-not-json", extra={"model.safetensors.index.json": b'{"weight_map": {',
                                           shard1: pack(c.small[:half])})
    c.logits("shard-index-not-json", "model.safetensors.index.json is cut JSON", "not valid JSON",
             "model.safetensors.index.json")
    bad_map = dict(wmap, **{"model.layers.0.self_attn.lambda_q3": shard2})  # no such tensor anywhere
    c.model("shard-wrong-shard", extra={
        "model.safetensors.index.json": json.dumps({"weight_map": bad_map}).encode(),
        shard1: pack(c.small[:half]), shard2: pack(c.small[half:])})
    c.logits("shard-wrong-shard", "the index names a tensor that no shard holds", "lambda_q3' is not in",
             "model.safetensors.index.json")
    c.model("shard-path-escape", extra={
        "model.safetensors.index.json": json.dumps({"weight_map": {norm: "../../valid/model/model.safetensors"}}).encode()})
    c.logits("shard-path-escape", "the index names a shard outside the folder", "is not a file name",
             "model.safetensors.index.json")
    c.model("shard-index-no-map", extra={"model.safetensors.index.json": b'{"metadata": {}}'})
    c.logits("shard-index-no-map", "an index without weight_map", "no weight_map", "model.safetensors.index.json")

    # ---- config.json ----
    # config.json is validated before the weights are opened; the small table stands in.
    w = c.small_weights()

    def config_case(name, why, expect, config=None, text=None):
        c.model(name, config=config, config_text=text, weights=w)
        c.logits(name, why, expect, cfg)

    def without(key):
        return {k: v for k, v in c.config.items() if k != key}

    config_case("config-not-json", "config.json is cut JSON", "not valid JSON", text='{"model_type": "diffllama",')
    config_case("config-not-object", "config.json is a JSON list", "not a JSON object", text="[]")
    config_case("config-empty", "config.json is empty", "empty", text="")
    c.model("config-missing", config=False, weights=w)
    c.logits("config-missing", "no config.json", "cannot open", cfg)
    config_case("config-missing-hidden-size", "no hidden_size", "missing key 'hidden_size'", without("hidden_size"))
    config_case("config-missing-vocab-size", "no vocab_size", "missing key 'vocab_size'", without("vocab_size"))
    config_case("config-missing-model-type", "no model_type", "missing key 'model_type'", without("model_type"))
    config_case("config-heads-not-multiple-of-kv", "4 heads, 3 key/value heads", "not a multiple",
                dict(c.config, num_key_value_heads=3))
    config_case("config-odd-heads-diffllama", "DiffLlama with 3 heads", "even num_attention_heads",
                dict(c.config, num_attention_heads=3, num_key_value_heads=1))
    config_case("config-unsupported-model-type", "model_type mistral", "model_type 'mistral' is not supported",
                dict(c.config, model_type="mistral"))
    config_case("config-unsupported-rope-type", "rope_type yarn", "rope_type 'yarn' is not supported",
                dict(c.config, rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0}))
    config_case("config-llama3-rope-incomplete", "llama3 RoPE without low_freq_factor", "low_freq_factor",
                dict(c.config, rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8}))
    config_case("config-rope-not-object", "rope_parameters is a number", "must be an object",
                dict(c.config, rope_parameters=3))
    config_case("config-hidden-size-string", "hidden_size is a string", "'hidden_size' must be an integer",
                dict(c.config, hidden_size="32"))
    config_case("config-hidden-size-fraction", "hidden_size is 32.5", "'hidden_size' must be an integer",
                dict(c.config, hidden_size=32.5))
    config_case("config-hidden-size-huge", "hidden_size is 1e30", "'hidden_size' must be an integer",
                dict(c.config, hidden_size=1e30))
    config_case("config-negative-layers", "num_hidden_layers is -1", "'num_hidden_layers' must be positive",
                dict(c.config, num_hidden_layers=-1))
    config_case("config-zero-heads", "num_attention_heads is 0", "'num_attention_heads' must be positive",
                dict(c.config, num_attention_heads=0))
    config_case("config-implausible-vocab", "vocab_size 2^31-1", "implausibly large",
                dict(c.config, vocab_size=2**31 - 1))
    config_case("config-implausible-heads", "2^20 heads of 2^10 dims", "implausibly large",
                dict(c.config, num_attention_heads=2**20, num_key_value_heads=2**20, head_dim=1024))
    config_case("config-odd-head-dim", "head_dim 7", "head_dim must be even", dict(c.config, head_dim=7))
    config_case("config-bad-act", "hidden_act gelu", "hidden_act", dict(c.config, hidden_act="gelu"))
    config_case("config-bool-not-bool", "tie_word_embeddings is a string", "must be true or false",
                dict(c.config, tie_word_embeddings="yes"))
    config_case("config-negative-eps", "rms_norm_eps is negative", "rms_norm_eps", dict(c.config, rms_norm_eps=-1.0))


def build_dump_and_prompt(c):
    """Cases of `diffscope dump` and of --prompt (tokenizer.json). The tokenizer cases link the
    valid base model's files instead of copying them."""
    dump = "dump @BAD@/valid/model --ids 1,2,3 -o @OUT@"
    c.case("dump-output-exists", "dump: the output file exists, no --force: it must stay intact", dump,
           "already exists", "out.h5", existing=True)
    c.case("dump-output-unwritable", "dump: the output path is inside a regular file",
           "dump @BAD@/valid/model --ids 1,2 -o @BAD@/valid/model/config.json/out.h5", "cannot create",
           "config.json/out.h5")
    c.case("dump-layers-out-of-range", "dump --layers 5 of a one-layer model", dump + " --layers 5",
           "out of range", "--layers")
    c.case("dump-heads-out-of-range", "dump --heads 9 of a model with 2 differential heads", dump + " --heads 9",
           "out of range", "--heads")
    c.case("dump-lambda-override-bad-layer", "dump --lambda-override for a layer the model lacks",
           dump + " --lambda-override 7=0.5", "out of range", "--lambda-override")
    c.case("dump-corrupt-weights", "dump of a model whose header length is 2^63",
           "dump @BAD@/st-header-len-2p63/model --ids 1,2 -o @OUT@", "runs past the end of the file",
           "model.safetensors")
    c.case("dump-id-outside-vocab", "dump with a token id outside the vocabulary",
           f"dump @BAD@/valid/model --ids 1,{c.config['vocab_size']} -o @OUT@", "outside the vocabulary",
           "valid/model")

    def tokenizer_case(name, why, text, expect, file):
        d = os.path.join(c.out, name, "model")
        os.makedirs(d, exist_ok=True)
        for f in ("config.json", "model.safetensors"):
            os.symlink(os.path.join("..", "..", "valid", "model", f), os.path.join(d, f))
        if text is not None:
            write(os.path.join(d, "tokenizer.json"), text.encode())
        c.case(name, why, "logits @CASE@/model --prompt hello -o @OUT@", expect, file)

    tokenizer_case("tokenizer-missing", "--prompt without a tokenizer.json", None, "no tokenizer.json",
                   "tokenizer-missing/model")
    tokenizer_case("tokenizer-not-json", "tokenizer.json is cut JSON", '{"model": {"type": "BPE", "vocab": {',
                   "not valid JSON", "tokenizer.json")
    tokenizer_case("tokenizer-unsupported-model", "a Unigram tokenizer", '{"model": {"type": "Unigram", "vocab": []}}',
                   "unsupported model type 'Unigram'", "tokenizer.json")
    # Ids near INT_MAX: max id + 1 overflowed an int; 1e9 made id tables of 8 GB.
    small_bpe = '{"model": {"type": "BPE", "vocab": {"a": 0, "b": %s}, "merges": []}, "added_tokens": [%s]}'
    for name, vocab_b, added, where in [
        ("tokenizer-added-id-intmax", "1", '{"id": 2147483647, "content": "<x>", "special": true}', "added_tokens[0]"),
        ("tokenizer-added-id-1e9", "1", '{"id": 1e9, "content": "<x>", "special": true}', "added_tokens[0]"),
        ("tokenizer-vocab-id-1e9", "1e9", "", "model.vocab entry 'b'"),
    ]:
        tokenizer_case(name, f"{where} has an id of {vocab_b if vocab_b != '1' else added}",
                       small_bpe % (vocab_b, added), "from 0 to 16777215", "tokenizer.json")
    tokenizer_case("tokenizer-merge-unknown-token", "a merge names a token that is not in the vocabulary",
                   '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}}',
                   "not in model.vocab", "tokenizer.json")


def build_nonfinite(c):
    """NaN and infinity: in the weights (each conversion path), in lambda, in config.json's RoPE
    and eps, in options. Weights are checked at load, so only the tensors up to the broken one
    are needed."""
    st = "model.safetensors"
    emb = "model.embed_tokens.weight"
    qproj = "model.layers.0.self_attn.q_proj.weight"
    d_model = c.config["hidden_size"]

    def replace(tensors, name, raw, dtype=None):
        return [(n, dtype or d, s, raw if n == name else r) for n, d, s, r in tensors]

    def set_bf16(raw, index, bits):
        b = bytearray(raw)
        b[2 * index : 2 * index + 2] = struct.pack("<H", bits)
        return bytes(b)

    # One NaN (BF16 0x7fc0) in q_proj at row 3, column 5: index 3 * D + 5.
    q = dict((n, r) for n, _, _, r in c.tensors)[qproj]
    nan_idx = 3 * d_model + 5
    c.model("weight-nan", weights=pack(replace(c.tensors, qproj, set_bf16(q, nan_idx, 0x7FC0))))
    c.logits("weight-nan", "one NaN in layer 0's q_proj (BF16)",
             f"'{qproj}' holds NaN at index {nan_idx} (row 3, column 5)", st)
    c.case("weight-nan-allowed", "the same model with --allow-nonfinite: loads, runs, writes the NaN logits",
           "logits @BAD@/weight-nan/model --ids 1,2,3 --allow-nonfinite -o @OUT@", "", "", exit=0, output=True)
    c.case("weight-nan-dump", "dump of the NaN model", "dump @BAD@/weight-nan/model --ids 1,2,3 -o @OUT@",
           "holds NaN", st)
    c.case("weight-nan-generate", "generate with the NaN model", "generate @BAD@/weight-nan/model --ids 1,2 -n 2",
           "holds NaN", st)
    c.case("weight-nan-info", "info of the NaN model", "info @BAD@/weight-nan/model", "holds NaN", st)
    # The zero-copy F32 path (aligned F32 data are not converted) and the F64 path, where a value
    # past float32's range becomes inf: the embedding is the first tensor loaded.
    n_emb = c.config["vocab_size"] * d_model
    f32 = struct.pack(f"<{n_emb}f", *([0.5] * 7 + [float("inf")] + [0.5] * (n_emb - 8)))
    c.model("weight-inf-f32", weights=pack([(emb, "F32", [c.config["vocab_size"], d_model], f32)]))
    c.logits("weight-inf-f32", "an F32 embedding holding +inf (the zero-copy path)", f"'{emb}' holds inf at index 7", st)
    f64 = struct.pack(f"<{n_emb}d", *([0.25] * 40 + [-1e300] + [0.25] * (n_emb - 41)))
    c.model("weight-f64-overflow", weights=pack([(emb, "F64", [c.config["vocab_size"], d_model], f64)]))
    c.logits("weight-f64-overflow", "an F64 embedding holding -1e300, beyond float32",
             f"'{emb}' holds -inf at index 40 (row 1, column 8)", st)
    # lambda_q1 = lambda_k1 = 30 in every entry: lambda_1 = exp(8 * 900) overflows.
    thirty = struct.pack("<H", 0x41F0) * c.config["head_dim"]  # BF16 30.0
    ts = replace(replace(c.tensors, "model.layers.0.self_attn.lambda_q1", thirty),
                 "model.layers.0.self_attn.lambda_k1", thirty)
    c.model("lambda-overflow", weights=pack(ts))
    c.logits("lambda-overflow", "lambda_q1 . lambda_k1 = 7200: exp overflows", "lambda_full is not finite",
             "lambda-overflow/model")

    # config.json: RoPE frequencies and eps that are not finite or make no sense.
    w = c.small_weights()
    rope = c.config["rope_parameters"]
    for name, why, expect, cfg_text in [
        ("config-rope-theta-tiny", "rope_theta 1e-300: infinite frequencies", "'rope_theta' must be a finite number above 1",
         json.dumps(dict(c.config, rope_parameters=dict(rope, rope_theta=1e-300)))),
        ("config-rope-theta-inf", "rope_theta 1e999 (parses as inf)", "'rope_theta' must be a finite number above 1",
         json.dumps(dict(c.config, rope_parameters=dict(rope, rope_theta=123.0))).replace("123.0", "1e999")),
        ("config-eps-inf", "rms_norm_eps 1e999 (parses as inf)", "'rms_norm_eps' must be",
         json.dumps(dict(c.config, rms_norm_eps=123.0)).replace("123.0", "1e999")),
        ("config-llama3-factor-below-1", "llama3 RoPE with factor 1e-300", "llama3 RoPE parameters out of range",
         json.dumps(dict(c.config, rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 1e-300,
                                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                    "original_max_position_embeddings": 8}))),
    ]:
        c.model(name, config_text=cfg_text, weights=w)
        c.logits(name, why, expect, "config.json")

    # Options whose value is not finite: refused by the option parser, and (--lambda-override
    # 0=1e39, finite as a double, inf as the float lambda) by the library.
    dump = "dump @BAD@/valid/model --ids 1,2,3 -o @OUT@"
    c.case("lambda-override-nan", "--lambda-override 0=nan", dump + " --lambda-override 0=nan",
           "a finite number", "--lambda-override")
    c.case("lambda-override-inf", "--lambda-override 0=1e39 (inf in float32)",
           "logits @BAD@/valid/model --ids 1,2,3 -o @OUT@ --lambda-override 0=1e39", "is not a finite number",
           "--lambda-override")
    d = c.case("needle-context-huge", "needle --context-tokens 100000000: refused before any prompt is built",
               "needle @BAD@/valid/model --haystack-ids @CASE@/hay.txt --needle-ids 5 --question-ids 6 --answer-id 7 "
               "--context-tokens 100000000", "the prompts would have at least 100000002 tokens", "--context-tokens")
    write(os.path.join(d, "hay.txt"), b"5 5 5 5\n")
    gen = "generate @BAD@/valid/model --ids 1,2 -n 2"
    c.case("generate-temperature-nan", "--temperature nan", gen + " --temperature nan", "'nan' is not a number",
           "--temperature")
    c.case("generate-top-p-nan", "--top-p nan", gen + " --top-p nan", "not a number in (0, 1]", "--top-p")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", default=GOLDEN)
    ap.add_argument("--out", default="tests/bad")
    a = ap.parse_args()
    if os.path.isdir(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    c = Corpus(a.golden, a.out)
    build(c)
    build_dump_and_prompt(c)
    build_nonfinite(c)
    with open(os.path.join(a.out, "README.md"), "w") as f:
        f.write("# Malformed-input corpus\n\nGenerated by `python3 tools/make_bad_inputs.py` from "
                f"`{a.golden}`; run by `tests/cli/test_bad_inputs.sh`.\nSee docs/reliability.md. "
                f"{len(c.names)} cases:\n\n" + "".join(f"- {n}\n" for n in sorted(c.names)))
    print(f"{len(c.names)} cases in {a.out}")


if __name__ == "__main__":
    main()
