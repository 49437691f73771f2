"""`diffscope patch` on a prompt longer than one block of attention rows (128 rows: the softmax
maps then reach the probes in two blocks), against the same patching done independently with
the Python package's hooks: run_with_cache keeps the clean maps, a hook writes head h's rows of
each block into the corrupted run. Both must give the same logit difference, to the digits
--json prints (the same library computes both; only the patching code differs).

Run by tests/cli/test_patch.sh with DIFFSCOPE_LIB and PYTHONPATH set as for test_python.sh."""
import json

import numpy as np

import diffscope as ds
from common import exit_status, report, run

MODEL = "notebooks-data/models/diffllama"
T = 140


def main():
    ds.set_threads(1)
    rng = np.random.default_rng(7)
    problems = []
    with ds.load(MODEL) as m:
        clean = rng.integers(3, m.vocab_size, T)
        corrupted = clean.copy()
        corrupted[[30, 135]] = (clean[[30, 135]] + 17) % m.vocab_size
        names = ["blocks.*.attn.hook_pattern1", "blocks.*.attn.hook_pattern2"]
        clean_logits, cache = m.run_with_cache(clean, names=names)
        answer = int(np.argmax(clean_logits[-1]))
        order = np.argsort(-m.run(corrupted, last_only=True), kind="stable")
        wrong = int(order[0] if order[0] != answer else order[1])
        r = run("patch", MODEL, "--clean-ids", ",".join(map(str, clean)), "--corrupted-ids",
                ",".join(map(str, corrupted)), "--answer-id", str(answer), "--wrong-id", str(wrong),
                "--patch", "softmax1,softmax2", "--json", "--threads", "1")
        if r.returncode:
            report("patch_two_row_blocks_vs_python_hooks", [f"exit {r.returncode}: {r.stderr.strip()}"])
            return
        out = json.loads(r.stdout)
        blocks = set()
        for table, point in (("softmax1", "hook_pattern1"), ("softmax2", "hook_pattern2")):
            got = out["tables"][table]["raw"]
            for l in range(len(got)):
                name = "blocks.%d.attn.%s" % (l, point)
                src = cache[name]
                for h in range(len(got[l])):
                    def write_head(x, hook, h=h, src=src):
                        r0 = hook.offset[1]
                        blocks.add(r0)
                        x[h] = src[h, r0:r0 + x.shape[1], :x.shape[2]]
                    lg = m.run(corrupted, hooks={name: write_head}, last_only=True)
                    want = float(lg[answer]) - float(lg[wrong])
                    if abs(got[l][h] - want) > 1e-14 * abs(want):  # cJSON's 15 printed digits
                        problems.append("%s[%d][%d] = %r, Python hooks %r" % (table, l, h, got[l][h], want))
        if len(blocks) < 2:
            problems.append("the maps came in %d block(s): the prompt does not exercise row blocks" % len(blocks))
        if np.ptp(np.array(out["tables"]["softmax2"]["raw"])) < 1e-3:
            problems.append("the softmax2 table does not vary: a weak check")
    report("patch_two_row_blocks_vs_python_hooks", problems)


main()
raise SystemExit(exit_status())
