"""Benchmark: where the time of an ``attnsvm solve --norm spec`` process at (40, 12, 24) goes.

Run from the repository root::

    python benchmarks/bench_spec_process.py                       # this tree
    python benchmarks/bench_spec_process.py --before /tmp/old/src # and another tree, A/B

``--before`` names the ``src`` folder of another checkout (e.g. ``git archive <commit> src |
tar -x -C /tmp/old``).  In one run, alternating, 1 BLAS thread, bytecode cached (a temporary
``PYTHONPYCACHEPREFIX``, as in an installed package): the medians of wall and CPU seconds
(user + system) of the whole ``attnsvm solve --norm spec --json`` process per tree, of the
start-up baselines (``python -c pass``, ``import numpy``, ``import numpy, scipy.linalg``), and
the CPU seconds of the solve alone (``attnsvm.svm.solve(inst, norm="spec")`` in a process,
best of 3, seeds 0-2).  Prints a Markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SOLVE_CPU = """
import time
from attnsvm import random_instance
from attnsvm.svm import solve
out = []
for seed in range(3):
    inst = random_instance(40, 12, 24, seed=seed)
    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        solve(inst, norm="spec")
        best = min(best, time.process_time() - c0)
    out.append(best)
print(sum(out) / len(out))
"""


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=None, help="src folder of another tree (A/B)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each command")
    args = ap.parse_args()
    trees = {"this tree": str(Path("src").resolve())}
    if args.before:
        trees = {f"before ({args.before})": str(Path(args.before).resolve()), **trees}
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
        path = str(Path(tmp) / "i.npz")
        subprocess.run([sys.executable, "-c", "from attnsvm import random_instance; "
                        f"random_instance(40, 12, 24, seed=0).save({path!r})"],
                       env=dict(env, PYTHONPATH=trees["this tree"]), check=True)
        cmds: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], env),
            "python -c 'import numpy'": ([sys.executable, "-c", "import numpy"], env),
            "python -c 'import numpy, scipy.linalg'": (
                [sys.executable, "-c", "import numpy, scipy.linalg"], env)}
        for name, src in trees.items():
            cmds[f"solve process, {name}"] = (
                [sys.executable, "-m", "attnsvm.cli.main", "solve", path, "--norm", "spec",
                 "--json"], dict(env, PYTHONPATH=src))
        for c, e in cmds.values():  # untimed: writes the bytecode
            subprocess.run(c, env=e, capture_output=True, check=True)
        load0 = os.getloadavg()[0]
        wall: dict[str, list[float]] = {k: [] for k in cmds}
        cpu: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.repeat):
            for k, (c, e) in cmds.items():
                t0, c0 = time.perf_counter(), _children_cpu()
                p = subprocess.run(c, env=e, capture_output=True, text=True, check=True)
                wall[k].append(time.perf_counter() - t0)
                cpu[k].append(_children_cpu() - c0)
                if p.stdout.startswith("{"):
                    assert json.loads(p.stdout)["status"] == "optimal"
        solve_cpu = {name: float(subprocess.run(
            [sys.executable, "-c", _SOLVE_CPU], env=dict(env, PYTHONPATH=src),
            capture_output=True, text=True, check=True).stdout) for name, src in trees.items()}
    print(f"Load average (1 min): {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
          f"end; medians of {args.repeat} alternating runs, 1 BLAS thread.\n")
    print("| command | wall (s) | CPU (s) |\n|---|---|---|")
    for k in cmds:
        print(f"| {k} | {statistics.median(wall[k]):.3f} | {statistics.median(cpu[k]):.3f} |")
    for name, v in solve_cpu.items():
        print(f"| solve alone (CPU, mean over seeds 0-2 of the best of 3), {name} | - | "
              f"{v:.3f} |")


if __name__ == "__main__":
    main()
