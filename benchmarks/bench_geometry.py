"""Benchmark: the max-norm (LP) and spectral (SDP) Att-SVMs against HiGHS and cvxpy+Clarabel.

Run from the repository root::

    python benchmarks/bench_geometry.py             # (40, 12, 24), 2 instances
    python benchmarks/bench_geometry.py --big       # and (100, 20, 64): attnsvm alone, once
    python benchmarks/bench_geometry.py --quick     # (40, 12, 24), 1 instance

Per instance, in this one run, with the same BLAS thread count (``--threads``, default 1):

* ``attnsvm solve --norm linf|spec --json`` as a whole process (a subprocess: Python start-up,
  imports, loading, solve, certificate, local optimality, output), median of ``--repeat``;
* the references, in this process, on the same instance: HiGHS (scipy ``linprog``) on the dense
  LP ``min t`` with the box written as ``2 d^2`` rows, and cvxpy + Clarabel on
  ``min sigma_max(W)`` (problem construction and compilation included);
* agreement of the objectives.

Writes the top of ``benchmarks/results/geometry.md`` (its header and table; the sections
from the first ``## `` heading on are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one (40, 12, 24) instance")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for every side")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of attnsvm (median)")
    ap.add_argument("--big", action="store_true",
                    help="also (100, 20, 64): the attnsvm process once, no reference unless "
                         "--big-reference (the references take many minutes there)")
    ap.add_argument("--big-reference", action="store_true",
                    help="run the references at (100, 20, 64) too")
    ap.add_argument("--out", default="benchmarks/results/geometry.md", help="Markdown report")
    return ap.parse_args()


ARGS = _parse()
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)

import numpy as np  # noqa: E402

from attnsvm import random_instance  # noqa: E402


def dense_highs(inst) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """HiGHS on min t s.t. C w >= 1, -t <= w_ij <= t as 2 d^2 rows; (objective, seconds,
    CPU seconds)."""
    from scipy.optimize import linprog

    t0, c0 = time.perf_counter(), time.process_time()
    c = inst.constraints()
    C = np.einsum("ki,kj->kij", c.A, c.Zc).reshape(c.m, -1)
    N = C.shape[1]
    one = np.ones((N, 1))
    A_ub = np.vstack([np.hstack([-C, np.zeros((c.m, 1))]), np.hstack([np.eye(N), -one]),
                      np.hstack([-np.eye(N), -one])])
    cost = np.zeros(N + 1)
    cost[-1] = 1
    res = linprog(cost, A_ub=A_ub, b_ub=np.r_[-np.ones(c.m), np.zeros(2 * N)],
                  bounds=(None, None), method="highs")
    return float(res.fun), time.perf_counter() - t0, time.process_time() - c0


def cvxpy_clarabel(inst) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """cvxpy + Clarabel on min sigma_max(W) s.t. the rows; (objective, seconds, CPU
    seconds)."""
    import warnings

    import cvxpy as cp

    t0, c0 = time.perf_counter(), time.process_time()
    c = inst.constraints()
    W = cp.Variable((inst.d, inst.d))
    vals = cp.sum(cp.multiply(c.A @ W, c.Zc), axis=1)
    prob = cp.Problem(cp.Minimize(cp.sigma_max(W)), [vals >= 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob.solve(solver="CLARABEL")
    return float(prob.value), time.perf_counter() - t0, time.process_time() - c0


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def attnsvm_process(path: str, norm: str, repeat: int, cache: str
                    ) -> tuple[dict, float, float]:
    """Median wall and CPU seconds of the whole ``attnsvm solve`` process, and its JSON.

    Python's bytecode is cached as in an installed package (this sandbox sets
    ``PYTHONDONTWRITEBYTECODE``): an untimed first run writes it under ``cache``
    (``PYTHONPYCACHEPREFIX``), outside the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    cmd = [sys.executable, "-m", "attnsvm.cli.main", "solve", path, "--norm", norm, "--json"]
    subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    times, cpus, out = [], [], {}
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), _children_cpu()
        p = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        times.append(time.perf_counter() - t0)
        cpus.append(_children_cpu() - c0)
        out = json.loads(p.stdout)
    return out, float(np.median(times)), float(np.median(cpus))


LOAD0 = os.getloadavg()[0]


def main() -> None:
    cases = [((40, 12, 24), 0)] + ([] if ARGS.quick else [((40, 12, 24), 1)])
    if ARGS.big:
        cases.append(((100, 20, 64), 0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape, seed in cases:
            inst = random_instance(*shape, seed=seed)
            path = str(Path(tmp) / f"i{seed}.npz")
            inst.save(path)
            big = shape[2] > 40
            for norm, ref in (("linf", dense_highs), ("spec", cvxpy_clarabel)):
                rep, secs, cpu = attnsvm_process(path, norm, 1 if big else ARGS.repeat,
                                                 str(Path(tmp) / "pycache"))
                if big and not ARGS.big_reference:
                    rv, rs, rc = float("nan"), float("nan"), float("nan")
                else:
                    rv, rs, rc = ref(inst)
                rows.append({"shape": shape, "seed": seed, "norm": norm, "status": rep["status"],
                             "objective": rep["objective"], "gap": rep.get("certified_gap"),
                             "attnsvm_s": secs, "ref_s": rs, "ref_obj": rv,
                             "ratio": rs / secs, "rel_diff": abs(rep["objective"] - rv) / rv,
                             "attnsvm_cpu": cpu, "ref_cpu": rc, "cpu_ratio": rc / cpu})
                print(rows[-1], flush=True)
    head = ("| (n, T, d) | seed | norm | status | certified gap | attnsvm solve process (s) | "
            "reference (s) | reference / attnsvm | CPU s: attnsvm, reference, ratio | "
            "rel. objective difference |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    def ref_cells(r: dict) -> str:
        if r["ref_s"] != r["ref_s"]:  # nan: not run
            return f"not run | - | {r['attnsvm_cpu']:.2f}, -, - | -"
        return (f"{r['ref_s']:.2f} | {r['ratio']:.1f}x | {r['attnsvm_cpu']:.2f}, "
                f"{r['ref_cpu']:.2f}, {r['cpu_ratio']:.1f}x | {r['rel_diff']:.1e}")

    body = "".join(
        f"| {r['shape']} | {r['seed']} | {r['norm']} | {r['status']} | {r['gap']:.1e} | "
        f"{r['attnsvm_s']:.2f} | {ref_cells(r)} |\n"
        for r in rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    cpu = platform.processor() or platform.machine()
    text = (
        "# Max-norm and spectral Att-SVMs: attnsvm against HiGHS and cvxpy+Clarabel\n\n"
        f"Machine: this project's sandbox, {os.cpu_count()}-core CPU ({cpu}), no GPU, shared "
        f"with other jobs; {ARGS.threads} BLAS thread(s). "
        f"Commit {commit}. Command: `python benchmarks/bench_geometry.py"
        f"{' --quick' if ARGS.quick else ''}{' --big' if ARGS.big else ''}`. Load average "
        f"(1 min) when it started: {LOAD0:.1f}, when it ended: {os.getloadavg()[0]:.1f} (other "
        "jobs on the same 2 cores slow both sides; compare the ratio; the CPU seconds, user "
        "plus system of the attnsvm process and of the reference's code in the benchmark "
        "process, depend less on that load).\n\n"
        "attnsvm: the whole `attnsvm solve --norm linf|spec --json` process (median of "
        f"{ARGS.repeat}; once at (100, 20, 64)). References, in the benchmark process: linf, "
        "HiGHS (scipy linprog) on the dense LP with the box as 2 d^2 rows; spec, cvxpy + "
        "Clarabel on min sigma_max(W) (construction and compilation included). Bytecode "
        "cached as in an installed package (an untimed first run writes it to a temporary "
        "PYTHONPYCACHEPREFIX; this sandbox sets PYTHONDONTWRITEBYTECODE).\n\n" + head + body)
    out = Path(ARGS.out)
    old = out.read_text() if out.exists() else ""
    rest = old.find("\n## ")  # later sections (heads, other sizes) are kept as they are
    out.write_text(text + ("\n" + old[rest + 1:] if rest >= 0 else ""))
    print(text)


if __name__ == "__main__":
    main()
