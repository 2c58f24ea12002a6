"""Benchmark: the lifted rotary Att-SVMs (Frobenius exact, group nuclear certified) against
cvxpy + Clarabel written from SPEC.md's score formula.

Run from the repository root::

    python benchmarks/bench_rotary.py            # writes benchmarks/results/rotary_solve.md
    python benchmarks/bench_rotary.py smollm2 [ROWS] [HEADS]   # e.g. 8 0,4,7

The second form (needs the extra ``decoder``) takes the group nuclear lifted problems that
``attnsvm probe`` builds for SmolLM2 layer 0 on its first ROWS query rows (32 queries, as
``bench_probe_rotary.py --max-queries 32``) and times, in one process, the block interior
point against the previous dense SDP (cvxpy + Clarabel) on the same problems.

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
from _provenance import provenance  # noqa: E402  (benchmarks/ is on sys.path)

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
    load0 = os.getloadavg()[0]
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
    header = ("# Lifted Att-SVMs against cvxpy + Clarabel\n\n" + provenance()
              + f" Load average (1 min) at the start: {load0:.1f}, at the end: "
              f"{os.getloadavg()[0]:.1f}. Command: `python benchmarks/bench_rotary.py`; "
              f"{SEEDS} random instances per size, medians of the seconds.\n\n")
    text = "\n".join(lines)
    print(text)
    Path("benchmarks/results/rotary_solve.md").write_text(header + text + "\n")


def smollm2(rows: int, heads: list[int]) -> None:
    """Dense SDP against block interior point on SmolLM2 layer 0's lifted nuclear problems."""
    import attnsvm.svm.rotary as rot
    from attnsvm.probe.analysis import ProbeOptions
    from attnsvm.probe.corpus import make_sequences, read_corpus
    from attnsvm.probe.models import load_model
    from attnsvm.probe.tasks import HeadTask, run_tasks
    from attnsvm.svm._rotary_nuc import solve_lifted_nuc

    problems: list[RotaryConstraintSet] = []
    real = rot.solve_lifted

    def capture(problem: RotaryConstraintSet, norm: str = "fro", **kw: float) -> RotarySolution:
        if norm == "nuc":                     # keep the problem, answer with the cheap target
            problems.append(problem)
            sol = real(problem, "fro")
            sol.status = "inaccurate"
            return sol
        return real(problem, norm, **kw)

    rot.solve_lifted = capture  # type: ignore[assignment]
    _, ad = load_model("smollm2")
    seqs = make_sequences(ad.tokenizer, read_corpus(None), seq_len=32, max_queries=32)
    caps = [ad.capture(q, [0]) for q in seqs]
    opts = ProbeOptions(nuclear=True, graph=False, nuclear_rows=rows, rope_nuclear_rows=rows)
    forms = ad.head_forms(0)
    W = [f.bilinear() for f in forms]
    lc = [c.layer_only(0) for c in caps]
    run_tasks([HeadTask(0, h, W, lc, True, True, opts, None, 64, forms) for h in heads], 1,
              None)
    rot.solve_lifted = real
    print(f"load average {os.getloadavg()}")
    print("| head | block interior point s | certified gap | dense SDP s | certified gap "
          "| dense / new | rel. objective difference |\n|---|---|---|---|---|---|---|")
    for h, P in zip(heads, problems, strict=True):
        res = []
        for how in ("ipm", "clarabel"):
            t0 = time.perf_counter()
            sol = solve_lifted_nuc(P, sdp=how)
            res.append((time.perf_counter() - t0, sol.info["certified_gap"], sol.objective))
        (ti, gi, oi), (td, gd, od) = res
        print(f"| {h} | {ti:.2f} | {gi:.1e} | {td:.1f} | {gd:.1e} | {td / ti:.1f}x | "
              f"{abs(oi - od) / od:.1e} |", flush=True)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "smollm2":
        smollm2(int(sys.argv[2]) if len(sys.argv) > 2 else 8,
                [int(h) for h in (sys.argv[3] if len(sys.argv) > 3 else "0,4,7").split(",")])
    else:
        main()
