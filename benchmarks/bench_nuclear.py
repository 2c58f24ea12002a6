"""Benchmark: the dedicated nuclear-norm Att-SVM solver against cvxpy + Clarabel and SCS.

Run from the repository root::

    python benchmarks/bench_nuclear.py              # paper-style sizes, writes results/nuclear.*
    python benchmarks/bench_nuclear.py --quick      # the two smallest sizes
    python benchmarks/bench_nuclear.py --head       # also one MiniLM layer-0 head (loads the model)

Everything runs in this one process, on the same instances, with the same BLAS thread count
(``--threads``, default 1, set before NumPy loads).  Reported per size: attnsvm's solve time and
its certified gap, the whole ``attnsvm solve --norm nuc`` process (a subprocess, start-up
included), cvxpy + Clarabel (the usual vectorized formulation, default and tight tolerances) and
SCS at its default accuracy, the ratios, and the objectives' relative differences.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the two smallest sizes only")
    ap.add_argument("--head", action="store_true", help="also one MiniLM layer-0 head")
    ap.add_argument("--head-index", type=int, default=0, help="which layer-0 head (default 0)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for every side")
    ap.add_argument("--out", default="benchmarks/results/nuclear", help="output stem")
    ap.add_argument("--cvxpy-max-m", type=int, default=1000,
                    help="skip cvxpy above this many constraints (it needs many minutes)")
    return ap.parse_args()


ARGS = _parse()
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)


from attnsvm import random_instance  # noqa: E402
from attnsvm.constraints import ConstraintSet  # noqa: E402
from attnsvm.svm import solve_nuc_constraints  # noqa: E402

SIZES = [(20, 10, 16), (40, 12, 24), (60, 16, 32), (100, 20, 64)]


def cvxpy_nuc(c: ConstraintSet, solver: str, **opts: float) -> tuple[float, float]:
    """The usual vectorized cvxpy formulation of the nuclear Att-SVM; (objective, seconds)."""
    import cvxpy as cp

    W = cp.Variable((c.A.shape[1], c.Zc.shape[1]))
    vals = cp.sum(cp.multiply(c.A @ W, c.Zc), axis=1)
    prob = cp.Problem(cp.Minimize(cp.normNuc(W)), [vals >= 1])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob.solve(solver=solver, **opts)
    return float(prob.value), time.perf_counter() - t0


def whole_process(inst_path: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "attnsvm.cli.main", "solve", str(inst_path),
                    "--norm", "nuc", "--json"], check=True, capture_output=True)
    return time.perf_counter() - t0


def one_size(n: int, T: int, d: int, tmp: Path) -> dict[str, object]:
    inst = random_instance(n, T, d, seed=0)
    c = inst.constraints()
    t0 = time.perf_counter()
    sol = solve_nuc_constraints(c)
    ours = time.perf_counter() - t0
    path = tmp / f"inst_{n}_{T}_{d}.npz"
    inst.save(path)
    proc = whole_process(path)
    row: dict[str, object] = {
        "shape": [n, T, d], "m": c.m, "attnsvm_s": ours, "process_s": proc,
        "status": sol.status, "objective": sol.objective,
        "certified_gap": sol.info["certified_gap"], "rank": sol.info["rank"],
        "rank_certified": sol.info["rank_certified"], "working_set": sol.info["working_set"],
        "ipm_iterations": sol.info["ipm_iterations"],
    }
    if c.m <= ARGS.cvxpy_max_m:
        for name, solver, opts in (
            ("clarabel", "CLARABEL", {}),
            ("clarabel_tight", "CLARABEL",
             {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}),
            ("scs", "SCS", {}),
        ):
            obj, sec = cvxpy_nuc(c, solver, **opts)
            row[f"{name}_s"] = sec
            row[f"{name}_rel_diff"] = abs(obj - sol.objective) / sol.objective
            row[f"{name}_ratio"] = sec / ours
            row[f"{name}_process_ratio"] = sec / proc
    print(json.dumps(row), file=sys.stderr)
    return row


def minilm_head(h: int) -> dict[str, object]:
    """One MiniLM-L6 layer-0 head of the probe (352 queries, ~1e4 constraints, W 384 x 385)."""
    from attnsvm.probe.capture import Capture
    from attnsvm.probe.corpus import make_sequences, read_corpus
    from attnsvm.probe.instance import build_instance
    from attnsvm.probe.models import DEFAULT_MODEL, load_model

    _, ad = load_model(DEFAULT_MODEL)
    seqs = make_sequences(ad.tokenizer, read_corpus(None), seq_len=32, max_queries=352)
    caps = [ad.capture(s, [0]) for s in seqs]
    head = build_instance([Capture(c.sequence, {0: c.X[0]}, {0: c.P[0]}) for c in caps], 0, h,
                          ad.causal)
    c = ConstraintSet.from_arrays(head.A, head.Zc, head.index)
    t0 = time.perf_counter()
    sol = solve_nuc_constraints(c)
    return {"head": f"MiniLM-L6 layer 0 head {h}", "m": c.m, "W_shape": list(sol.W.shape),
            "attnsvm_s": time.perf_counter() - t0, "status": sol.status,
            "certified_gap": sol.info["certified_gap"], "rank": sol.info["rank"],
            "working_set": sol.info["working_set"], "rounds": sol.info["rounds"],
            "ipm_iterations": sol.info["ipm_iterations"]}


def main() -> None:
    from _provenance import provenance  # benchmarks/ is on sys.path

    sizes = SIZES[:2] if ARGS.quick else SIZES
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_size(*s, Path(tmp)) for s in sizes]
    result: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor()}",
        "threads": ARGS.threads, "command": " ".join(["python"] + sys.argv), "sizes": rows}
    if ARGS.head:
        result["head"] = minilm_head(ARGS.head_index)
    out = Path(ARGS.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = [f"# Nuclear-norm Att-SVM: attnsvm vs cvxpy\n\n`{result['command']}`, "
             f"{result['machine']}, {ARGS.threads} BLAS thread(s). {provenance()}\n",
             "| n, T, d | m | attnsvm | `attnsvm solve` process | Clarabel | Clarabel tight | "
             "SCS | certified gap | rank |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def cell(k: str, r: dict[str, object] = r) -> str:
            if f"{k}_s" not in r:
                return "not run"
            return (f"{r[f'{k}_s']:.2f} s ({r[f'{k}_ratio']:.0f}x; process "
                    f"{r[f'{k}_process_ratio']:.1f}x; obj diff {r[f'{k}_rel_diff']:.0e})")
        n, T, d = r["shape"]  # type: ignore[misc]
        lines.append(f"| {n}, {T}, {d} | {r['m']} | {r['attnsvm_s']:.2f} s | "
                     f"{r['process_s']:.2f} s | {cell('clarabel')} | {cell('clarabel_tight')} | "
                     f"{cell('scs')} | {r['certified_gap']:.0e} | {r['rank']} |")
    if "head" in result:
        h = result["head"]
        lines.append(f"\n{h['head']}: m = {h['m']}, W {h['W_shape']}, {h['attnsvm_s']:.1f} s, "  # type: ignore[index]
                     f"status {h['status']}, certified gap {h['certified_gap']:.0e}, "  # type: ignore[index]
                     f"rank {h['rank']}, working set {h['working_set']}, "  # type: ignore[index]
                     f"{h['rounds']} rounds, {h['ipm_iterations']} IPM iterations.")  # type: ignore[index]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
