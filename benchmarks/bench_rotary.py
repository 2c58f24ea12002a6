"""Benchmark: the lifted rotary Att-SVMs (Frobenius exact, group nuclear certified) against
cvxpy + Clarabel written from SPEC.md's score formula.

Run from the repository root::

    python benchmarks/bench_rotary.py            # writes benchmarks/results/rotary_solve.md

Per size: seconds of ``solve_lifted`` and of the cvxpy reference (complex ``M_f``, rows
written entry by entry), the largest entry difference (Frobenius) or relative objective
difference (nuclear), the certified gaps and the smallest margin.  ``nuc`` is the block
interior point (``svm/_rotary_ipm.py``); ``nuc dense`` the same pipeline with the dense SDP
through cvxpy + Clarabel instead (the previous method), timed in the same process; it is
skipped above ``DENSE_MAX_M`` rows.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from attnsvm.svm.rotary import (  # noqa: E402
    RotaryConstraintSet,
    RotarySolution,
    rotary_constraints,
    solve_lifted,
)
from test_rotary import cvxpy_lifted, rotary_instance  # noqa: E402

SIZES = [(5, 5, 4, 2), (8, 6, 6, 4), (12, 8, 8, 4), (16, 10, 12, 8)]
SEEDS = 3
DENSE_MAX_M = 100


def _solve(P: RotaryConstraintSet, norm: str) -> RotarySolution:
    if norm == "nuc dense":
        from attnsvm.svm._rotary_nuc import solve_lifted_nuc

        return solve_lifted_nuc(P, sdp="clarabel")
    return solve_lifted(P, norm)


def main() -> None:
    lines = ["| n,T,d,F | m | norm | attnsvm s | cvxpy s | diff vs cvxpy | certified gap (max) "
             "| min margin |", "|---|---|---|---|---|---|---|---|"]
    for n, T, d, F in SIZES:
        for norm in ("fro", "nuc", "nuc dense"):
            if norm == "nuc dense" and n * (T - 1) > DENSE_MAX_M:
                continue
            t_a, t_c, diffs, gaps, margins = [], [], [], [], []
            for seed in range(SEEDS):
                inst = rotary_instance(n, T, d, F, seed=seed)
                P = rotary_constraints(*inst)
                t0 = time.perf_counter()
                sol = _solve(P, norm)
                t_a.append(time.perf_counter() - t0)
                if sol.status != "optimal":
                    print(f"{(n, T, d, F)} seed {seed} {norm}: {sol.status}", file=sys.stderr)
                    continue
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _, Mref = cvxpy_lifted(*inst, norm=norm.split()[0])
                t_c.append(time.perf_counter() - t0)
                if norm == "fro":
                    diffs.append(float(np.max(np.abs(sol.M - Mref))))
                else:
                    ref = sum(np.sum(np.linalg.svd(Mf, compute_uv=False)) for Mf in Mref)
                    diffs.append(abs(sol.objective - ref) / ref)
                gaps.append(sol.info["certified_gap"])
                margins.append(sol.info["margin"])
            what = "max abs entry" if norm == "fro" else "rel. objective"
            lines.append(
                f"| {n},{T},{d},{F} | {n * (T - 1)} | {norm} | {np.median(t_a):.3f} | "
                f"{np.median(t_c):.3f} | {max(diffs):.1e} ({what}) | {max(gaps):.1e} | "
                f"{min(margins) - 1:+.1e} (minus 1) |")
    text = "\n".join(lines)
    print(text)
    Path("benchmarks/results/rotary_solve.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
