#!/usr/bin/env python3
"""Prompts per second of `diffscope sweep` over ranks x threads (docs/sweep.md, Benchmarks).

    tools/bench_sweep.py --name demo --dir /tmp/b --configs 1x1,4x4,16x1 [--mode shard|mpi] \\
        -- --model A --vs B --task kv --lengths 109 --depths 0:100:10 --trials 96

Each RxT runs the sweep on R ranks of T threads, every rank with --times:
  shard: R processes `--shard i/R --threads T`, process i pinned with taskset (when present) to
         cores i*T .. i*T+T-1, then `--merge` (static ranges, no MPI);
  mpi:   `mpirun -np R MPIRUN_ARGS diffscope sweep ... --threads T` (the queue; the command
         includes MPI's start and the master).
One JSON line per configuration on stdout:
  wall_s, prompts_per_s    the whole command: launch, checks, loads, prompts, shards, master;
  before_run_s             from the launch to the first rank's first prompt (MPI start, checks, load);
  run_window_s, steady_prompts_per_s
                           from the first rank's first prompt to the last rank's last one:
                           the rate once every rank works, launch, load and merge left out;
  after_run_s              from there to the end (gathering, shards, master or merge);
  rank_rate_*              each rank's prompts / its own run time (its speed while it ran);
  cpu_ms_per_prompt        the ranks' CPU time while running prompts, per prompt;
  steal_s                  CPU time the hypervisor gave to other guests meanwhile (/proc/stat);
  per_rank                 each rank's --times line.
Standard library only; --deadline EPOCH skips configurations that would start later.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

TAG = "diffscope: times "


def steal_s():
    """CPU time the hypervisor gave to others, all CPUs (/proc/stat); None where unknown."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def times_lines(text):
    return [json.loads(x[len(TAG):]) for x in text.splitlines() if x.startswith(TAG)]


def run_shards(ds, out, r, t, args):
    pin = shutil.which("taskset")
    procs = []
    t0 = time.monotonic()
    for i in range(r):
        cmd = [ds, "sweep", *args, "-o", out, "--shard", f"{i}/{r}", "--threads", str(t), "--times"]
        if pin:
            cmd = [pin, "-c", f"{i * t}-{i * t + t - 1}", *cmd]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errs = [p.communicate()[1] for p in procs]
    t1 = time.monotonic()
    m = subprocess.run([ds, "sweep", *args, "-o", out, "--merge"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    t2 = time.monotonic()
    failed = [e for p, e in zip(procs, errs) if p.returncode] + ([m.stderr] if m.returncode else [])
    return t0, t2, {"merge_s": round(t2 - t1, 4)}, "".join(errs), failed


def run_mpi(ds, out, r, t, args, mpirun, mpirun_args):
    cmd = [mpirun, "-np", str(r), *mpirun_args, ds, "sweep", *args, "-o", out, "--threads", str(t), "--times"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t1 = time.monotonic()
    return t0, t1, {}, p.stderr, [p.stderr] if p.returncode else []


def summary(name, mode, cfg, r, t, t0, t1, extra, ranks):
    n = sum(x["prompts_run"] for x in ranks)
    start, end = min(x["run_start"] for x in ranks), max(x["run_end"] for x in ranks)
    rates = [x["prompts_run"] / x["run_s"] for x in ranks if x["run_s"] > 0]
    row = {"name": name, "mode": mode, "config": cfg, "ranks": r, "threads": t, "prompts": n,
           "wall_s": round(t1 - t0, 3), "prompts_per_s": round(n / (t1 - t0), 2),
           "before_run_s": round(start - t0, 3), "run_window_s": round(end - start, 3),
           "steady_prompts_per_s": round(n / (end - start), 2), "after_run_s": round(t1 - end, 3), **extra,
           "rank_rate_mean": round(sum(rates) / len(rates), 2), "rank_rate_min": round(min(rates), 2),
           "rank_rate_max": round(max(rates), 2),
           "cpu_ms_per_prompt": round(1000 * sum(x["run_cpu_s"] for x in ranks) / n, 3),
           "per_rank": sorted(ranks, key=lambda x: x["rank"])}
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--dir", required=True, help="where the sweeps' files and logs go")
    ap.add_argument("--configs", required=True, help="RxT,... e.g. 1x1,2x8,16x1")
    ap.add_argument("--mode", choices=("shard", "mpi"), default="shard")
    ap.add_argument("--ds", default=os.environ.get("DS", "build/diffscope"))
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--mpirun-args", default="--bind-to none", help="split on spaces")
    ap.add_argument("--deadline", type=float, help="seconds since the epoch")
    ap.add_argument("sweep_args", nargs=argparse.REMAINDER, help="-- then the sweep's arguments")
    a = ap.parse_args()
    args = a.sweep_args[1:] if a.sweep_args[:1] == ["--"] else a.sweep_args
    os.makedirs(a.dir, exist_ok=True)
    status = 0
    for cfg in a.configs.split(","):
        r, t = (int(x) for x in cfg.split("x"))
        if a.deadline and time.time() >= a.deadline:
            print(json.dumps({"name": a.name, "mode": a.mode, "config": cfg, "skipped": "deadline"}), flush=True)
            continue
        out = os.path.join(a.dir, f"{a.name}-{a.mode}-{cfg}.h5")
        shutil.rmtree(out + ".shards", ignore_errors=True)
        if os.path.exists(out):
            os.remove(out)
        steal0 = steal_s()
        if a.mode == "shard":
            t0, t1, extra, err, failed = run_shards(a.ds, out, r, t, args)
        else:
            t0, t1, extra, err, failed = run_mpi(a.ds, out, r, t, args, a.mpirun, a.mpirun_args.split())
        steal1 = steal_s()
        if steal0 is not None and steal1 is not None:
            extra["steal_s"] = round(steal1 - steal0, 2)
        ranks = times_lines(err)
        if failed or len(ranks) != r:
            status = 1
            print(json.dumps({"name": a.name, "mode": a.mode, "config": cfg, "failed": (failed or [err])[0][-2000:]}),
                  flush=True)
            continue
        print(json.dumps(summary(a.name, a.mode, cfg, r, t, t0, t1, extra, ranks)), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
