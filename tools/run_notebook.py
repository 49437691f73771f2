#!/usr/bin/env python3
"""Execute a Jupyter notebook's code cells in order and save their outputs into it.

    python3 tools/run_notebook.py NOTEBOOK.ipynb [-o OUT.ipynb | --in-place]

A stand-in for `jupyter nbconvert --execute --inplace` where Jupyter is not installed (Debian's
python3 with numpy, h5py and matplotlib is enough). The cells share one namespace and run with
the notebook's folder as the working directory, as in Jupyter. Each code cell gets, like
nbformat 4 outputs:
  * what it printed, as "stream" outputs (stdout and stderr);
  * the value of a last bare expression (not None), as an "execute_result" (text/plain repr);
  * every matplotlib figure it left open, as an image/png "display_data" (then closed);
  * an exception, as an "error" output; later cells do not run (Jupyter's default).
With -o the executed notebook is written there, with --in-place over NOTEBOOK (both through a
temporary name and a rename); with neither, the cells run and nothing is written, so a
committed notebook changes only when asked. Exit status: 0 when every code cell ran, 1 when a
cell raised (the notebook with its error is still written), 2 for a notebook that cannot be
read or an interpreter without the modules the runner needs (one line naming the problem).
PNGs carry no "Software" metadata, so re-running with the same matplotlib gives the same bytes.
"""

import argparse
import ast
import base64
import contextlib
import io
import json
import os
import sys
import tempfile
import traceback


def fail(msg):
    print("run_notebook: " + msg, file=sys.stderr)
    sys.exit(2)


def load_notebook(path):
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
    except OSError as e:
        fail("%s: cannot read: %s" % (path, e.strerror))
    except (ValueError, UnicodeDecodeError) as e:
        fail("%s: not a JSON notebook: %s" % (path, e))
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        fail("%s: not an nbformat 4 notebook (needs \"nbformat\": 4 and a \"cells\" list)" % path)
    for i, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            fail("%s: cell %d has no valid cell_type" % (path, i))
        if not isinstance(cell.get("source", ""), (str, list)):
            fail("%s: cell %d: source is neither a string nor a list of lines" % (path, i))
    return nb


def cell_source(cell):
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def as_lines(text):
    """nbformat's multiline string: a list of lines, each keeping its newline."""
    return text.splitlines(keepends=True)


def figure_outputs(plt):
    outs = []
    for num in plt.get_fignums():
        fig = plt.figure(num)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight", metadata={"Software": None})
        w, h = fig.get_size_inches() * fig.dpi
        outs.append({"output_type": "display_data",
                     "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                              "text/plain": ["<Figure size %dx%d with %d Axes>" % (w, h, len(fig.axes))]},
                     "metadata": {}})
    plt.close("all")
    return outs


def run_cell(source, namespace, name):
    """Runs one cell; returns (outputs before figures, last expression value or None, error output or None)."""
    out, err = io.StringIO(), io.StringIO()
    value, error = None, None
    try:
        tree = ast.parse(source, filename=name)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile(tree, name, "exec"), namespace)
            if last is not None:
                value = eval(compile(last, name, "eval"), namespace)
    except Exception as e:  # a cell's failure is data for the notebook, not a crash of ours
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        error = {"output_type": "error", "ename": type(e).__name__, "evalue": str(e),
                 "traceback": [line.rstrip("\n") for line in tb]}
    outputs = []
    for stream, buf in (("stdout", out), ("stderr", err)):
        if buf.getvalue():
            outputs.append({"output_type": "stream", "name": stream, "text": as_lines(buf.getvalue())})
    return outputs, value, error


def main(argv):
    ap = argparse.ArgumentParser(description="Execute a notebook's code cells and save their outputs.")
    ap.add_argument("notebook")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", help="write the executed notebook here")
    where.add_argument("--in-place", action="store_true", help="write the executed notebook over NOTEBOOK")
    args = ap.parse_args(argv)
    nb = load_notebook(args.notebook)
    dest = os.path.abspath(args.notebook) if args.in_place else args.output and os.path.abspath(args.output)

    os.environ["MPLBACKEND"] = "Agg"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        fail("%s lacks %s (Debian: apt-get install python3-matplotlib python3-h5py python3-numpy; "
             "or run it with /usr/bin/python3)" % (sys.executable, e.name or "matplotlib"))

    namespace = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(os.path.dirname(os.path.abspath(args.notebook)))
    count, failed = 0, None
    try:
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            cell["outputs"], cell["execution_count"] = [], None
            cell.setdefault("metadata", {})
            if failed is not None:
                continue
            count += 1
            outputs, value, error = run_cell(cell_source(cell), namespace, "<cell %d>" % i)
            outputs += figure_outputs(plt)
            if value is not None:
                outputs.append({"output_type": "execute_result", "execution_count": count,
                                "data": {"text/plain": as_lines(repr(value))}, "metadata": {}})
            if error is not None:
                outputs.append(error)
                failed = (i, error)
            cell["outputs"], cell["execution_count"] = outputs, count
    finally:
        os.chdir(cwd)

    if dest:
        save(nb, dest)
    if failed is not None:
        i, error = failed
        print("run_notebook: %s: cell %d raised %s: %s" % (args.notebook, i, error["ename"], error["evalue"]),
              file=sys.stderr)
        return 1
    print("run_notebook: %s: %d code cells ran%s" % (args.notebook, count,
                                                     ", outputs saved to " + dest if dest else " (nothing written)"))
    return 0


def save(nb, dest):
    """Writes NB to DEST through a temporary name in the same folder and a rename."""
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".run_notebook-", suffix=".ipynb", dir=os.path.dirname(dest))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the notebook private
    os.replace(tmp, dest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
