#!/usr/bin/env python3
"""Regenerates the seed corpora of the libFuzzer harnesses under tests/fuzz/corpus/<harness>/.

Seeds are small valid (or nearly valid) inputs from which libFuzzer mutates:
  fuzz_safetensors  the small safetensors files of tests/bad/ (run tools/make_bad_inputs.py first)
  fuzz_config       the golden config.json files and the config cases of tests/bad/
  fuzz_tokenizer    trimmed copies of the tokenizer.json fixtures (mode byte 0x00), and a few
                    texts to encode with each fixture (mode bytes 0x01, 0x03, ...; see the harness)
  fuzz_dump_reader  build instructions for the structure-aware harness: the empty input (a
                    valid DiffLlama dump), 0x01 (a valid Llama dump), float16 maps
Standard library only.
"""
import glob
import hashlib
import json
import os
import shutil

OUT = "tests/fuzz/corpus"
KEEP_IDS = 300  # vocabulary ids kept in a trimmed tokenizer seed


def reset(name):
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def copy_small(paths, d, limit):
    """Copies the files of at most LIMIT bytes, each content once, named after its case."""
    n, seen = 0, set()
    for p in sorted(paths):
        if os.path.isfile(p) and os.path.getsize(p) <= limit:
            with open(p, "rb") as f:
                h = hashlib.sha1(f.read()).hexdigest()
            if h in seen:
                continue
            seen.add(h)
            shutil.copyfile(p, os.path.join(d, p.split(os.sep)[2]))
            n += 1
    return n


def trim_tokenizer(j):
    """The tokenizer with vocabulary ids < KEEP_IDS and the merges among them."""
    m = j["model"]
    vocab = {t: i for t, i in m["vocab"].items() if i < KEEP_IDS}
    merges = []
    for mg in m["merges"]:
        a, b = mg if isinstance(mg, list) else mg.split(" ", 1)
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(mg)
    j = dict(j, model=dict(m, vocab=vocab, merges=merges))
    return j


def nonfinite_safetensors(d):
    """One small file per float dtype with NaN, +inf and -inf among finite values (F64 also a
    value beyond float32's range), for the harness's finite-value check. Returns the count."""
    import struct
    raws = {
        "F32": struct.pack("<8f", 1.0, float("nan"), 2.0, float("inf"), -3.0, float("-inf"), 0.5, 0.0),
        "F64": struct.pack("<8d", 1.0, 1e300, 2.0, float("nan"), -1e-300, float("-inf"), 0.5, 0.0),
        "BF16": struct.pack("<8H", 0x3F80, 0x7FC0, 0x4000, 0x7F80, 0xC040, 0xFF80, 0x3F00, 0),
        "F16": struct.pack("<8H", 0x3C00, 0x7E00, 0x4000, 0x7C00, 0xC200, 0xFC00, 0x3800, 0),
    }
    for dtype, raw in raws.items():
        header = {"finite": {"dtype": dtype, "shape": [1], "data_offsets": [0, len(raw) // 8]},
                  "nonfinite": {"dtype": dtype, "shape": [2, 4], "data_offsets": [len(raw) // 8, len(raw) + len(raw) // 8]}}
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        with open(os.path.join(d, f"nonfinite-{dtype.lower()}"), "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + raw[: len(raw) // 8] + raw)
    return len(raws)


def main():
    d = reset("fuzz_safetensors")
    n = copy_small(glob.glob("tests/bad/*/model/model.safetensors"), d, 2048)
    n += nonfinite_safetensors(d)
    print(f"fuzz_safetensors: {n} seeds")

    d = reset("fuzz_config")
    n = copy_small(glob.glob("tests/bad/config-*/model/config.json"), d, 4096)
    for p in sorted(glob.glob("tests/data/golden/models/*/config.json")):
        shutil.copyfile(p, os.path.join(d, "golden-" + p.split(os.sep)[-2]))
        n += 1
    print(f"fuzz_config: {n} seeds")

    d = reset("fuzz_tokenizer")
    fixtures = sorted(glob.glob("tests/data/tokenizers/*/tokenizer.json"))
    for p in fixtures:
        with open(p) as f:
            j = trim_tokenizer(json.load(f))
        with open(os.path.join(d, "json-" + p.split(os.sep)[-2]), "wb") as f:
            f.write(b"\x00" + json.dumps(j, ensure_ascii=False, separators=(",", ":")).encode())
    big_ids = {"intmax": '{"id": 2147483647, "content": "<x>"}', "1e9": '{"id": 1e9, "content": "<x>"}',
               "fraction": '{"id": 2.5, "content": "<x>"}'}
    for name, added in big_ids.items():
        with open(os.path.join(d, "json-added-id-" + name), "wb") as f:
            f.write(b"\x00" + ('{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}, '
                               '"added_tokens": [%s]}' % added).encode())
    texts = [b"Hello world", b" leading and  double  spaces\n\ttabs", "caf\u00e9 \u65e5\u672c \U0001F600".encode(),
             b"<s> special </s> <|eot_id|>", b"\xff\xfe invalid \xc3 utf8", b"1234567 numbers 3.14"]
    n = len(fixtures) + len(big_ids)
    for k in range(4):  # the harness picks fixture (mode >> 2) % 4
        for i, t in enumerate(texts):
            with open(os.path.join(d, f"text-{k}-{i}"), "wb") as f:
                f.write(bytes([(k << 2) | 1 | ((i & 1) << 1)]) + t)
            n += 1
    print(f"fuzz_tokenizer: {n} seeds")

    d = reset("fuzz_dump_reader")
    # Byte 0 picks the arch (1: Llama); then one byte per attribute/dataset choice, in the order
    # of dr_build in the harness: 11 root attributes, tokens/text, tokens/ids, then per layer
    # its group, heads, 4 lambda attributes, softmax1, softmax2, diff, groupnorm scale.
    # Variant 6 of a map is float16, 9 takes its values from the input.
    f16 = bytes(20) + b"\x06\x06\x06\x00" + bytes(6) + b"\x06\x06\x06"
    seeds = {"valid-diffllama": b"", "valid-llama": b"\x01", "f16-maps": f16,
             "input-values": bytes(20) + b"\x09" + bytes(range(200, 218)) + b"\x00\x00\x09" + b"\xfe\xff" * 3}
    for name, raw in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(raw)
    print(f"fuzz_dump_reader: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
