"""Shared by the Python checks in tests/numerics: the binary, the data folders, the line
protocol that tests/run_tests.sh counts ("ok NAME" / "FAIL NAME: why"), and running diffscope.
The scripts run from the repository root with Debian's python3 (h5py, NumPy)."""
import os
import subprocess
import sys

DS = os.environ.get("DIFFSCOPE", "build/diffscope")
GOLDEN = "tests/data/golden"
SHARED = os.environ.get("DIFFSCOPE_SHARED", "../shared")
failures = 0


def report(name, problems):
    """ok NAME when PROBLEMS (a list of strings) is empty, else FAIL NAME with the first six."""
    global failures
    if problems:
        failures += 1
        more = f" (+{len(problems) - 6} more)" if len(problems) > 6 else ""
        print(f"FAIL {name}: " + "; ".join(problems[:6]) + more)
    else:
        print(f"ok {name}")
    sys.stdout.flush()


def run(*args):
    """diffscope ARGS..., its output captured as text."""
    return subprocess.run([DS, *args], capture_output=True, text=True)


def exit_status():
    """The status a check script exits with: 1 when any check failed."""
    return 1 if failures else 0
