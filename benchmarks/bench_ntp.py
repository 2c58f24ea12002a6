"""Benchmark: the Graph-SVM of next-token prediction against cvxpy+Clarabel.

Run from the repository root::

    python benchmarks/bench_ntp.py            # 200 sequences, T=6, K=40, d=24; 3 datasets
    python benchmarks/bench_ntp.py --quick    # one dataset

Whole process on each side, in this one process, on the same datasets, with the same BLAS
thread count (``--threads``, default 1, set before NumPy loads):

* attnsvm: token-priority graphs, SCCs (iterative Tarjan), deduplicated rows, exact working-set
  solve with its KKT certificate (:func:`attnsvm.ntp.solve_graph_svm`);
* cvxpy (official formulation): SCCs by networkx, one constraint per sample and token as in the
  official code (``cp.vstack(rows) @ W @ e_k`` per last token), ``sum_squares`` objective,
  Clarabel;
* cvxpy (same rows): attnsvm's deduplicated rows in one vectorized cvxpy constraint, Clarabel.

Also reported: agreement (cosine, objective), W^fin (Newton) time, and the whole
``attnsvm ntp`` command (a subprocess, startup included).  Writes ``benchmarks/results/ntp.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one dataset")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for every side")
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats of attnsvm (median)")
    ap.add_argument("--out", default="benchmarks/results/ntp.md", help="Markdown report")
    return ap.parse_args()


ARGS = _parse()
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)

import numpy as np  # noqa: E402

from attnsvm.ntp import (  # noqa: E402
    graph_svm_constraints,
    priority_graphs,
    random_ntp_dataset,
    solve_graph_svm,
    solve_w_fin,
)


def cvxpy_official(ds) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    """The official code's formulation (SCCs by networkx, a row per sample and token)."""
    import cvxpy as cp
    import networkx as nx

    t0 = time.perf_counter()
    E, q = ds.E, ds.queries
    W = cp.Variable((ds.d, ds.d))
    cons = []
    for k in np.unique(q):
        rows = np.flatnonzero(q == k)
        G = nx.DiGraph()
        G.add_edges_from((int(ds.labels[i]), int(x)) for i in rows for x in ds.tokens[i]
                         if x != ds.labels[i])
        comp = {v: j for j, c in enumerate(nx.strongly_connected_components(G)) for v in c}
        zero, neg = [], []
        for i in rows:
            y = int(ds.labels[i])
            for x in ds.tokens[i]:
                if x == y:
                    continue
                (zero if comp[int(x)] == comp[y] else neg).append(E[y] - E[x])
        ek = E[k].reshape(-1, 1)
        if zero:
            cons.append(np.array(zero) @ W @ ek == 0)
        if neg:
            cons.append(np.array(neg) @ W @ ek >= 1)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(W)), cons)
    prob.solve(solver="CLARABEL")
    return np.asarray(W.value), time.perf_counter() - t0


def cvxpy_same_rows(ds) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    """attnsvm's graphs and deduplicated rows, one vectorized cvxpy problem."""
    import cvxpy as cp

    t0 = time.perf_counter()
    cons_set, _ = graph_svm_constraints(ds, priority_graphs(ds))
    A, Z, b, ne = cons_set.A, cons_set.Zc, cons_set.rhs, cons_set.n_eq
    W = cp.Variable((ds.d, ds.d))
    vals = cp.sum(cp.multiply(A @ W, Z), axis=1)
    cons = [vals[ne:] >= b[ne:]]
    if ne:
        cons.append(vals[:ne] == 0)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(W)), cons)
    prob.solve(solver="CLARABEL")
    return np.asarray(W.value), time.perf_counter() - t0


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.vdot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    seeds = [0] if ARGS.quick else [0, 1, 2]
    rows = []
    for s in seeds:
        ds = random_ntp_dataset(200, 6, 40, 24, seed=s)
        solve_graph_svm(ds)  # warm-up (imports, caches)
        times = []
        for _ in range(ARGS.repeat):
            t0 = time.perf_counter()
            g = solve_graph_svm(ds)
            times.append(time.perf_counter() - t0)
        ours = float(np.median(times))
        t0 = time.perf_counter()
        fin = solve_w_fin(ds, g.graphs)
        t_fin = time.perf_counter() - t0
        W_off, t_off = cvxpy_official(ds)
        W_same, t_same = cvxpy_same_rows(ds)
        sol = g.solution
        kkt = sol.summary()["kkt_max_residual"]
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "d.npz"
            ds.save(p)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "attnsvm.cli.main", "ntp", str(p), "--json"],
                           check=True, capture_output=True)
            t_cli = time.perf_counter() - t0
        rows.append({
            "seed": s, "m": g.n_eq + g.n_ineq, "n_eq": g.n_eq, "sccs_2plus": sum(
                len(c) > 1 for gr in g.graphs.values() for c in gr.sccs),
            "ours": ours, "fin": t_fin, "fin_dim": fin.dim, "fin_grad": fin.grad_norm,
            "kkt": kkt, "off": t_off, "same": t_same, "cli": t_cli,
            "cos_off": cos(sol.W, W_off), "cos_same": cos(sol.W, W_same),
            "obj_rel": abs(np.linalg.norm(W_off) - sol.objective) / sol.objective,
        })
        r = rows[-1]
        print(f"seed {s}: m={r['m']} ours {ours:.3f} s, cvxpy official {t_off:.2f} s "
              f"({t_off / ours:.1f}x), cvxpy same rows {t_same:.2f} s ({t_same / ours:.1f}x), "
              f"cos {r['cos_off']:.9f}", flush=True)
    write(rows)


def write(rows: list[dict]) -> None:  # type: ignore[type-arg]
    from _provenance import provenance  # benchmarks/ is on sys.path

    cpu = platform.processor() or platform.machine()
    lines = [
        "# Graph-SVM benchmark (next-token prediction)",
        "",
        f"`python benchmarks/bench_ntp.py{' --quick' if ARGS.quick else ''}` on {cpu}, "
        f"{os.cpu_count()} CPUs, {ARGS.threads} BLAS thread(s), Python "
        f"{platform.python_version()}. Datasets: `random_ntp_dataset(200, 6, 40, 24, seed)` "
        "(200 sequences, T=6, K=40, d=24). Whole process on each side: graphs, SCCs, rows, "
        f"solve. attnsvm: median of {ARGS.repeat} runs; cvxpy: one run each, measured in the "
        "same process right after. " + provenance(),
        "",
        "| seed | rows (eq) | SCCs >= 2 | attnsvm s | cvxpy official s | ratio | cvxpy same rows s "
        "| ratio | cos(W, W_cvxpy) | rel. objective gap | KKT residual | W^fin s (dim, grad) "
        "| `attnsvm ntp` s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['m']} ({r['n_eq']}) | {r['sccs_2plus']} | {r['ours']:.3f} | "
            f"{r['off']:.2f} | {r['off'] / r['ours']:.1f}x | {r['same']:.2f} | "
            f"{r['same'] / r['ours']:.1f}x | {r['cos_off']:.9f} | {r['obj_rel']:.1e} | "
            f"{r['kkt']:.1e} | {r['fin']:.3f} ({r['fin_dim']}, {r['fin_grad']:.0e}) | "
            f"{r['cli']:.2f} |")
    ratios = [r["off"] / r["ours"] for r in rows]
    lines += ["", f"Speed-up against the official formulation: {min(ratios):.1f}x to "
              f"{max(ratios):.1f}x.", ""]
    out = Path(ARGS.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
