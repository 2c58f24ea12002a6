"""``attnsvm ntp DATA.npz [--steps N] [--lr F] [--seed S] [--out R.npz] [--json]``.

Builds the token-priority graphs of a next-token dataset, their SCCs, the Graph-SVM ``W_svm``
and ``W_fin`` (:mod:`attnsvm.ntp`); with ``--steps N > 0`` trains ``W`` by normalized GD on the
log-loss (float64) and compares it with ``R W_svm + W_fin``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

import numpy as np

from attnsvm._memory import check_file_memory, check_memory, ntp_solve_memory
from attnsvm._validation import check_positive, check_steps
from attnsvm.exceptions import InvalidParameterError
from attnsvm.ntp import NTPDataset, ntp_metrics, priority_graphs, solve_graph_svm, solve_w_fin
from attnsvm.report_solve import DEFAULT_TOL, verify_solution
from attnsvm.svm.solution import INFEASIBLE, OPTIMAL

from ._output import (
    Progress,
    check_out_path,
    emit_text,
    json_text,
    save_npz_atomic,
    write_warnings,
)

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
    """Solve (and optionally train); exit code 0 verified, 3 certified infeasible, 1 an answer
    that fails its own check (nothing written), 2 bad input.

    Raises
    ------
    InvalidInputError
        Unreadable or malformed dataset, bad ``--out``, a dataset whose working memory
        exceeds the machine's.
    InvalidParameterError
        Bad ``--steps``, ``--lr`` or ``--seed``.
    """
    t0 = time.perf_counter()
    out_path = check_out_path(args.out)
    steps = check_steps(args.steps)
    lr = float(check_positive("lr", args.lr))
    seed = args.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidParameterError(
            f"The 'seed' parameter must be an integer >= 0. Got {seed!r} instead.")
    check_file_memory("ntp", args.data, steps=steps)  # before any array is read
    ds = NTPDataset.load(args.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, res, arrays = _solve_and_train(ds, steps, lr, seed)
    write_warnings(caught)  # the solver's warnings first: an error line is the last word
    res["seconds"] = time.perf_counter() - t0
    return _finish(args, out_path, code, res, arrays)


def _solve_and_train(ds: Any, steps: int, lr: float, seed: int
                     ) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The Graph-SVM (verified), W_fin and the optional run: (exit code, JSON, arrays)."""
    graphs = priority_graphs(ds)
    # the rows and S_fin's generators are known now: their memory, before they are built
    n_rows = sum(int(gr.edges.shape[0]) for gr in graphs.values())
    fin_rows = sum(min(ds.d, sum(len(c) - 1 for c in gr.sccs)) for gr in graphs.values())
    check_memory(ntp_solve_memory(n_rows, fin_rows, ds.d), "the Graph-SVM and W_fin")
    g = solve_graph_svm(ds, graphs)
    sol = g.solution
    status, reason = verify_solution(sol, DEFAULT_TOL)
    res: dict[str, Any] = {
        "status": status, "solver_status": sol.status, "reason": reason,
        "objective": sol.objective if status == OPTIMAL else None,
        "cyclic": g.cyclic, "sccs": g.sccs(), "n_eq": g.n_eq, "n_ineq": g.n_ineq,
    }
    if status == INFEASIBLE:
        res["certificate_residual"] = sol.certificate_residual()
        return 3, res, {"certificate": sol.certificate, "edges": g.edges}
    if status != OPTIMAL:
        if sol.W is not None:
            res["kkt_max_residual"] = sol.summary()["kkt_max_residual"]
        res["error"] = f"the Graph-SVM answer fails its own check ({reason})"
        return 1, res, {}
    fin = solve_w_fin(ds, g.graphs)
    res.update({"kkt_max_residual": sol.summary()["kkt_max_residual"], "fin_dim": fin.dim,
                "fin_norm": float(np.linalg.norm(fin.W_fin)),
                "fin_grad_norm": fin.grad_norm})
    arrays: dict[str, Any] = {"W_svm": sol.W, "W_fin": fin.W_fin}
    if steps > 0:
        import torch  # PyTorch only for --steps N > 0: the solve-only path never loads it

        from attnsvm.ntp.train import train_ntp

        torch.set_num_threads(1)  # small problems: threads only add overhead
        bar = Progress(steps, "ntp: train", enabled=steps >= 2000)
        run = train_ntp(ds, loss="log", optimizer="ngd", lr=lr, steps=steps, seed=seed,
                        callback=bar.update)
        bar.close()
        W = run.W[0]
        with np.errstate(all="ignore"):
            norm = float(np.linalg.norm(W))
        if not (np.all(np.isfinite(W)) and np.isfinite(norm)):
            why = (f"training diverged: ||W||_F = {norm:g} after {steps} steps with lr "
                   f"{lr:g}; use a smaller --lr")
            res.update({"status": "diverged", "steps": steps, "lr": lr, "reason": why,
                        "error": why})
            return 1, res, {}
        m = ntp_metrics(ds, W, g, fin)
        res.update({"steps": steps, "lr": lr, "seed": seed,
                    "corr_svm": float(m["corr_svm"]),
                    "corr_svm_fin": float(m["corr_svm_fin"]), "R": float(m["R"]),
                    "corr_perp": float(m["corr_perp"]), "fin_gap": float(m["fin_gap"]),
                    "top_scc_attention": float(m["top_scc_attention"]),
                    "loss": float(run.loss_history[-1, 0]), "norm": float(m["norm"])})
        arrays["W"] = W
    return 0, res, arrays


def _finish(args: argparse.Namespace, out_path: Any, code: int, res: dict[str, Any],
            arrays: dict[str, Any]) -> int:
    """Write ``--out`` (only for a verified answer), print the result, return ``code``."""
    text = json_text(res) if args.json else _summary(res)  # complete before writing
    if out_path is not None and code in (0, 3):
        save_npz_atomic(out_path, **arrays)
    emit_text(text)
    if code == 1:
        sys.stderr.write(f"error: {res['error']}"
                         f"{'; nothing written to ' + str(out_path) if out_path else ''}\n")
    return code


def _summary(res: dict[str, Any]) -> str:
    sizes = [len(c) for sccs in res["sccs"].values() for c in sccs]
    lines = [f"{len(res['sccs'])} token-priority graphs, {len(sizes)} SCCs (largest "
             f"{max(sizes)} tokens): {'cyclic' if res['cyclic'] else 'acyclic'}; "
             f"{res['n_eq']} equality and {res['n_ineq']} margin constraints"]
    if res["status"] == "infeasible":
        lines.append(f"infeasible Graph-SVM: certificate residual "
                     f"{res['certificate_residual']:.1e}")
    elif res["status"] == "inaccurate":
        lines.append(f"inaccurate: the Graph-SVM answer fails its own check: {res['reason']}")
    elif res["status"] == "diverged":
        lines.append(f"diverged: {res['reason']}")
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
