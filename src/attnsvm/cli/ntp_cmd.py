"""``attnsvm ntp DATA.npz [--steps N] [--lr F] [--seed S] [--out R.npz] [--json]``.

Builds the token-priority graphs of a next-token dataset, their SCCs, the Graph-SVM ``W_svm``
and ``W_fin`` (:mod:`attnsvm.ntp`); with ``--steps N > 0`` trains ``W`` by normalized GD on the
log-loss (float64) and compares it with ``R W_svm + W_fin``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

__all__ = ["add_ntp_arguments", "run_ntp"]


def add_ntp_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``attnsvm ntp``."""
    parser.add_argument("data", help="next-token dataset .npz (E, tokens, labels)")
    parser.add_argument("--steps", type=int, default=0,
                        help="normalized-GD steps on W (default 0: no training)")
    parser.add_argument("--lr", type=float, default=0.01, help="step size (default 0.01)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random start, entries 0.01 N(0,1) (default 0)")
    parser.add_argument("--out", default=None, help="write W_svm, W_fin (and W) to this .npz")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run_ntp(args: argparse.Namespace) -> int:
    """Solve (and optionally train); exit code 0 solved, 3 infeasible.

    Raises
    ------
    InvalidInputError
        Unreadable or malformed dataset, bad ``--out``.
    InvalidParameterError
        Bad ``--steps``, ``--lr`` or ``--seed``.
    """
    import numpy as np

    from attnsvm._validation import check_positive
    from attnsvm.exceptions import InvalidParameterError
    from attnsvm.ntp import NTPDataset, ntp_metrics, solve_graph_svm, solve_w_fin
    from attnsvm.svm.solution import INFEASIBLE

    from ._output import Progress, check_out_path, emit_json, emit_text, save_npz_atomic

    t0 = time.perf_counter()
    out_path = check_out_path(args.out)
    steps = int(check_positive("steps", args.steps, integer=True, allow_zero=True))
    lr = float(check_positive("lr", args.lr))
    seed = args.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidParameterError(
            f"The 'seed' parameter must be an integer >= 0. Got {seed!r} instead.")
    ds = NTPDataset.load(args.data)
    g = solve_graph_svm(ds)
    sol = g.solution
    res: dict[str, Any] = {
        "status": sol.status, "objective": sol.objective if sol.W is not None else None,
        "cyclic": g.cyclic, "sccs": g.sccs(), "n_eq": g.n_eq, "n_ineq": g.n_ineq,
    }
    arrays: dict[str, Any] = {}
    if sol.status == INFEASIBLE:
        arrays = {"certificate": sol.certificate, "edges": g.edges}
        res["certificate_residual"] = sol.certificate_residual()
    else:
        fin = solve_w_fin(ds, g.graphs)
        res.update({"kkt_max_residual": sol.summary()["kkt_max_residual"], "fin_dim": fin.dim,
                    "fin_norm": float(np.linalg.norm(fin.W_fin)),
                    "fin_grad_norm": fin.grad_norm})
        arrays = {"W_svm": sol.W, "W_fin": fin.W_fin}
        if steps > 0:
            import torch

            from attnsvm.ntp import train_ntp

            torch.set_num_threads(1)  # small problems: threads only add overhead
            bar = Progress(steps, "ntp: train", enabled=steps >= 2000)
            run = train_ntp(ds, loss="log", optimizer="ngd", lr=lr, steps=steps, seed=seed,
                            callback=bar.update)
            bar.close()
            W = run.W[0]
            m = ntp_metrics(ds, W, g, fin)
            res.update({"steps": steps, "lr": lr, "seed": seed,
                        "corr_svm": float(m["corr_svm"]),
                        "corr_svm_fin": float(m["corr_svm_fin"]), "R": float(m["R"]),
                        "corr_perp": float(m["corr_perp"]), "fin_gap": float(m["fin_gap"]),
                        "top_scc_attention": float(m["top_scc_attention"]),
                        "loss": float(run.loss_history[-1, 0]), "norm": float(m["norm"])})
            arrays["W"] = W
    res["seconds"] = time.perf_counter() - t0
    if out_path is not None:
        save_npz_atomic(out_path, **arrays)
    if args.json:
        emit_json(res)
    else:
        emit_text(_summary(res))
    return 3 if sol.status == INFEASIBLE else 0


def _summary(res: dict[str, Any]) -> str:
    sizes = [len(c) for sccs in res["sccs"].values() for c in sccs]
    lines = [f"{len(res['sccs'])} token-priority graphs, {len(sizes)} SCCs (largest "
             f"{max(sizes)} tokens): {'cyclic' if res['cyclic'] else 'acyclic'}; "
             f"{res['n_eq']} equality and {res['n_ineq']} margin constraints"]
    if res["status"] == "infeasible":
        lines.append(f"infeasible Graph-SVM: certificate residual "
                     f"{res['certificate_residual']:.1e}")
    else:
        lines.append(f"{res['status']}: ||W_svm||_F = {res['objective']:.10g}; dim S_fin = "
                     f"{res['fin_dim']}, ||W_fin||_F = {res['fin_norm']:.6g}")
        if "corr_svm" in res:
            lines.append(f"after {res['steps']} NGD steps (lr {res['lr']:g}): cos(W, W_svm) = "
                         f"{res['corr_svm']:.4f}, cos(W, R W_svm + W_fin) = "
                         f"{res['corr_svm_fin']:.4f} (R = {res['R']:.4g}), attention on the "
                         f"top SCC {res['top_scc_attention']:.4f}")
    lines.append(f"total time: {res['seconds']:.3f} s")
    return "\n".join(lines)
