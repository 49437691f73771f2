#!/bin/sh
# notebooks-data/explore.ipynb still runs: tools/run_notebook.py executes a copy of it (with a
# copy of the dumps it reads) in a temporary folder, every code cell must run without error and
# produce its figures, and the text outputs saved in the committed notebook must be what the
# committed dumps give now. Also the runner itself: a raising cell, a last expression, bad input.
. tests/lib.sh
NB=notebooks-data/explore.ipynb
if ! $PY -c "import h5py, numpy, matplotlib" 2>/dev/null; then
    echo "skip notebook: /usr/bin/python3 lacks h5py, numpy or matplotlib"
    exit 0
fi
if [ ! -f "$NB" ] || [ ! -f notebooks-data/dumps/diffllama.h5 ] || [ ! -f notebooks-data/dumps/llama.h5 ]; then
    echo "FAIL notebook_files: $NB or notebooks-data/dumps/{diffllama,llama}.h5 missing"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/nb"
cp "$NB" "$tmp/nb/explore.ipynb"
cp -r notebooks-data/dumps "$tmp/nb/dumps"

# The notebook reads the dumps with python/diffscope (docs/python.md).
if PYTHONPATH="$PWD/python" MPLCONFIGDIR="$tmp/mpl" $PY tools/run_notebook.py "$tmp/nb/explore.ipynb" --in-place >"$tmp/run.log" 2>&1; then
    echo "ok notebook_runs"
else
    echo "FAIL notebook_runs: $(tail -1 "$tmp/run.log")"
fi

# Every code cell ran in order with no error; at least four figures; the committed notebook
# has its outputs saved and its text outputs equal those of the fresh run.
$PY - "$tmp/nb/explore.ipynb" "$NB" <<'EOF'
import json, sys
fresh, committed = (json.load(open(p)) for p in sys.argv[1:3])

def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]

def texts(cell):
    return ["".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream"]

def check(name, problems):
    print("ok " + name if not problems else "FAIL %s: %s" % (name, "; ".join(problems[:3])))

cells = code_cells(fresh)
problems = ["cell %d: execution_count %r" % (i, c.get("execution_count"))
            for i, c in enumerate(cells) if c.get("execution_count") != i + 1]
problems += ["cell %d raised %s" % (i, o.get("ename")) for i, c in enumerate(cells)
             for o in c["outputs"] if o["output_type"] == "error"]
images = sum("image/png" in o.get("data", {}) for c in cells for o in c["outputs"])
if images < 4:
    problems.append("%d figures, want >= 4" % images)
check("notebook_cells_ok", problems)

saved = code_cells(committed)
problems = ["committed cell %d has no outputs" % i for i, c in enumerate(saved) if not c.get("outputs")]
problems += ["committed cell %d has an error output" % i for i, c in enumerate(saved)
             for o in c.get("outputs", []) if o["output_type"] == "error"]
saved_images = sum("image/png" in o.get("data", {}) for c in saved for o in c.get("outputs", []))
if saved_images != images:
    problems.append("committed notebook has %d figures, the fresh run %d" % (saved_images, images))
check("notebook_outputs_saved", problems)

problems = ["cell %d: text output differs from the committed one (re-run tools/run_notebook.py %s)"
            % (i, sys.argv[2]) for i, (a, b) in enumerate(zip(cells, saved)) if texts(a) != texts(b)]
if len(cells) != len(saved):
    problems.append("%d code cells, committed %d" % (len(cells), len(saved)))
check("notebook_outputs_fresh", problems)
EOF

# The runner: outputs of each kind, a raising cell stops the run (status 1), later cells stay empty.
cat >"$tmp/t.ipynb" <<'EOF'
{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
 {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# t"]},
 {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": null, "outputs": [],
  "source": ["import matplotlib.pyplot as plt\n", "print('hello')\n", "plt.plot([1, 2])\n", "6 * 7"]},
 {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": null, "outputs": [],
  "source": "raise ValueError('boom')"},
 {"cell_type": "code", "id": "d", "metadata": {}, "execution_count": null, "outputs": [],
  "source": "print('not reached')"}]}
EOF
# Without -o or --in-place the cells run and the notebook is left as it was.
cp "$tmp/t.ipynb" "$tmp/t0.ipynb"
MPLCONFIGDIR="$tmp/mpl" $PY tools/run_notebook.py "$tmp/t.ipynb" >"$tmp/t.log" 2>&1
rc=$?
if [ $rc -eq 1 ] && cmp -s "$tmp/t.ipynb" "$tmp/t0.ipynb" && grep -q "cell 2 raised ValueError: boom" "$tmp/t.log"; then
    echo "ok run_notebook_writes_only_when_asked"
else
    echo "FAIL run_notebook_writes_only_when_asked: status $rc, notebook changed or no error line: $(cat "$tmp/t.log")"
fi
MPLCONFIGDIR="$tmp/mpl" $PY tools/run_notebook.py "$tmp/t.ipynb" -o "$tmp/t.ipynb" >"$tmp/t.log" 2>&1
rc=$?
got=$($PY - "$tmp/t.ipynb" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))["cells"]
kinds = lambda cell: ",".join(o["output_type"] for o in cell["outputs"])
print(kinds(c[1]), "".join(c[1]["outputs"][0]["text"]).strip(), "".join(c[1]["outputs"][2]["data"]["text/plain"]),
      kinds(c[2]), c[2]["outputs"][0]["evalue"], c[3]["execution_count"], kinds(c[3]) or "-")
EOF
)
want="stream,display_data,execute_result hello 42 error boom None -"
if [ $rc -eq 1 ] && [ "$got" = "$want" ] && grep -q "cell 2 raised ValueError: boom" "$tmp/t.log"; then
    echo "ok run_notebook_outputs_and_error"
else
    echo "FAIL run_notebook_outputs_and_error: status $rc, got '$got', want '$want'"
fi

# An interpreter without matplotlib (here: site-packages off) gets one line, status 2.
$PY -S tools/run_notebook.py "$tmp/t0.ipynb" >"$tmp/b.out" 2>"$tmp/b.err"
rc=$?
if [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/b.err")" -eq 1 ] && grep -q "lacks matplotlib" "$tmp/b.err"; then
    echo "ok run_notebook_without_matplotlib"
else
    echo "FAIL run_notebook_without_matplotlib: status $rc, stderr: $(head -c 300 "$tmp/b.err")"
fi

# Bad input: one line naming the file, status 2, the file untouched.
printf '{"cells": [' >"$tmp/bad.ipynb"
printf '{"nbformat": 3, "cells": []}' >"$tmp/v3.ipynb"
for f in bad.ipynb v3.ipynb missing.ipynb; do
    $PY tools/run_notebook.py "$tmp/$f" >"$tmp/b.out" 2>"$tmp/b.err"
    rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/b.err")" -eq 1 ] && grep -q "$tmp/$f" "$tmp/b.err"; then
        echo "ok run_notebook_bad_input[$f]"
    else
        echo "FAIL run_notebook_bad_input[$f]: status $rc, stderr: $(head -c 200 "$tmp/b.err")"
    fi
done
