"""The Python side of `make demo`: run the demo DiffLlama on the demo prompt, read the query
row's attention from the cache, ablate the head that reads the answer, and read the dump
`make demo` wrote. Run from the repository root:

    PYTHONPATH=python /usr/bin/python3 python/examples/demo.py PROMPT DUMP.h5
"""
import sys

import numpy as np

import diffscope as ds

prompt, dump_path = sys.argv[1], sys.argv[2]
with ds.load("notebooks-data/models/diffllama") as m:
    ids = m.tokenize(prompt)
    logits, cache = m.run_with_cache(ids, names=["blocks.3.attn.hook_diff"])
    answer = int(np.argmax(logits[-1]))
    print("DiffLlama's next token: %r (logit %.2f)" % (m.detokenize([answer]), logits[-1, answer]))
    row = cache["blocks.3.attn.hook_diff"][:, -1]          # [head, key] at the query row
    head = int(np.argmax(row.max(axis=1)))
    key = int(np.argmax(row[head]))
    print("layer 3 head %d puts %.3f of its diff attention on token %d %r"
          % (head, row[head, key], key, m.to_str_tokens(ids)[key]))
    ablated = m.run(ids, interventions=[ds.ablate_head(3, head)], last_only=True)
    print("with that head ablated: logit of %r %.2f, top token %r"
          % (m.detokenize([answer]), ablated[answer], m.detokenize([int(np.argmax(ablated))])))
with ds.read_dump(dump_path) as d:
    lam = d.lambdas().sel(param="lambda_full")
    print("the dump's lambda per layer:", " ".join("%.3f" % v for v in lam))
