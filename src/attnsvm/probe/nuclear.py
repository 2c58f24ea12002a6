"""The nuclear-norm target of a head: ``W_*^mm`` on all of the head's rows.

A real head's key-query matrix is a product ``W_K^T W_Q / sqrt(d_head)``; gradient descent on such
factors converges in direction to the nuclear-norm Att-SVM (THEORY.md), so ``W_*^mm`` of the
head's own selections is the target a factored head should be compared with.  This module solves
it with :func:`attnsvm.svm.solve_nuc_constraints` on the same constraints as the Frobenius
target (all rows by default, or the first ``nuclear_rows``) and reports, under the names of
SPEC.md:

- ``corr_nuc`` and its controls ``corr_nuc_control`` (mean over the layer's other heads),
  ``corr_nuc_control_max``, ``corr_nuc_random``;
- ``rank_nuc``: the rank of ``W_*^mm`` (the solver's rank, read from a spectral gap;
  ``rank_nuc_certified`` says whether the gap certifies it), beside the head's own rank
  (``rank_head``, at most ``d_head``);
- ``rows_nuc`` / ``m_nuc``: rows and constraints of the nuclear instance; ``nuc_status``,
  ``nuc_objective`` (``||W_*^mm||_*``), ``nuc_gap`` (relative duality gap of the certificate),
  ``nuc_seconds``, ``nuc_warning`` (the solver's convergence warning, kept in the record);
- ``margin_ratio_nuc``: the head's nuclear-norm margin ``min_k A_k^T W_h Zc_k / ||W_h||_*``
  over the optimal one ``1 / ||W_*^mm||_*``;
- ``corr_nuc_fro``: the correlation of the two targets, and ``corr_fro_nucrows``: the head
  against the Frobenius solution of the same rows (``corr_fro`` when all rows are used).

The nuclear instance has the Frobenius instance's constraints, so an infeasible Frobenius instance
on all rows is infeasible here too (same certificate); it is not solved twice.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..constraints import ConstraintSet
from ..svm import solve_fro_constraints, solve_nuc_constraints
from .compare import compare, constraint_values, corr, solve_noting_warnings
from .instance import HeadInstance

__all__ = ["nuclear_block", "nuclear_skipped", "head_rank", "NUCLEAR_FIELDS"]

#: Fields every record has (None when not solved, infeasible, or with ``--no-nuclear``).
NUCLEAR_FIELDS = (
    "corr_nuc", "corr_nuc_control", "corr_nuc_control_max", "corr_nuc_random", "rank_nuc",
    "rows_nuc", "m_nuc", "nuc_status", "nuc_objective", "nuc_gap", "nuc_seconds",
    "margin_ratio_nuc", "corr_nuc_fro", "corr_fro_nucrows", "nuc_warning", "rank_nuc_certified",
)


def head_rank(W: np.ndarray, rtol: float = 1e-8) -> tuple[int, float]:
    """Numerical rank and nuclear norm of a head's form.

    Parameters
    ----------
    W : numpy.ndarray, shape (d, d + 1)
        ``W_K^T [W_Q | b_Q] / sqrt(d_head)``, exactly of rank at most ``d_head``.
    rtol : float
        Singular values below ``rtol * sigma_max`` count as zero (the factors are float32, the
        product is formed in float64, so the spurious ones are ~1e-16 relative).

    Returns
    -------
    (int, float)
    """
    sv = np.linalg.svd(np.asarray(W, dtype=np.float64), compute_uv=False)
    if not sv.size or sv[0] == 0:
        return 0, 0.0
    return int(np.sum(sv > rtol * sv[0])), float(sv.sum())


def nuclear_skipped(inst: HeadInstance, W_head: np.ndarray) -> dict[str, Any]:
    """The record fields with the nuclear target not solved (``--no-nuclear``)."""
    out: dict[str, Any] = dict.fromkeys(NUCLEAR_FIELDS)
    out["rank_head"] = head_rank(W_head)[0]
    return out


def nuclear_block(
    inst: HeadInstance,
    W_layer: list[np.ndarray],
    head: int,
    W_rand: np.ndarray,
    fro_sol: Any,
    nuclear_rows: int | None,
    arrays: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Solve the nuclear-norm Att-SVM of one head and compare it with the head.

    Parameters
    ----------
    inst : HeadInstance
        The head's constraints, A (m, d) and Zc (m, d + 1).
    W_layer : list of numpy.ndarray, each shape (d, d + 1)
        The layer's heads (``W_layer[head]`` is this one; the others are controls).
    head : int
    W_rand : numpy.ndarray, shape (d, d + 1)
        The random control.
    fro_sol : SVMSolution or None
        The Frobenius solution of all rows (reused for the comparison and as the warm start).
    nuclear_rows : int or None
        Use only the first ``nuclear_rows`` query rows; None: all.
    arrays : dict
        Receives ``W_nuc`` (float64) and ``dual_nuc`` (m_nuc,) when solved.

    Returns
    -------
    dict
        The fields of :data:`NUCLEAR_FIELDS` and ``rank_head``.
    """
    W_head = W_layer[head]
    out = nuclear_skipped(inst, W_head)
    rank_h, nuc_h = head_rank(W_head)
    all_rows = nuclear_rows is None or nuclear_rows >= inst.n
    rows = np.ones(inst.n, dtype=bool)
    if not all_rows:
        rows[:] = False
        rows[: int(nuclear_rows)] = True  # type: ignore[arg-type]
    A, Zc, idx = inst.subset_rows(rows)
    out.update(rows_nuc=int(rows.sum()), m_nuc=int(A.shape[0]))
    if A.shape[0] == 0:
        out["nuc_status"] = "empty"
        return out
    fro_ok = fro_sol is not None and fro_sol.W is not None and fro_sol.status != "infeasible"
    if all_rows and fro_sol is not None and not fro_ok:
        out["nuc_status"] = fro_sol.status  # same constraints: infeasible (certificate there)
        return out
    cset = ConstraintSet.from_arrays(A, Zc, idx)
    t0 = time.perf_counter()
    # the Frobenius solution of the same constraints decides feasibility and seeds the working
    # set; the solver would otherwise solve it again
    same = fro_sol if (all_rows and fro_ok) else None
    sol, out["nuc_warning"] = solve_noting_warnings(solve_nuc_constraints, cset,
                                                    frobenius=same)
    out["nuc_seconds"] = time.perf_counter() - t0
    out["nuc_status"] = sol.status
    if sol.W is None or sol.status == "infeasible":
        return out
    W = np.asarray(sol.W, dtype=np.float64)
    vals = constraint_values(W_head, A, Zc)
    obj = float(np.linalg.svd(W, compute_uv=False).sum())
    out.update(compare(W, W_layer, head, W_rand, "nuc"))
    out.update(
        rank_nuc=int(sol.rank),
        rank_nuc_certified=sol.info.get("rank_certified"),
        nuc_objective=obj,
        nuc_gap=float(sol.duality_gap()),
        margin_ratio_nuc=float(vals.min() * obj / nuc_h) if nuc_h > 0 else None,
    )
    out["rank_head"] = rank_h
    arrays["W_nuc"] = W.astype(np.float64)
    arrays["dual_nuc"] = np.asarray(sol.dual, dtype=np.float64)
    if all_rows:
        W_fro = np.asarray(fro_sol.W) if fro_ok else None
    else:
        fro = solve_fro_constraints(cset)
        W_fro = np.asarray(fro.W) if fro.W is not None and fro.status != "infeasible" else None
        if W_fro is not None:
            arrays["W_fro_nucrows"] = W_fro.astype(np.float64)
    if W_fro is not None:
        out["corr_fro_nucrows"] = corr(W_head, W_fro)
        out["corr_nuc_fro"] = corr(W, W_fro)
    return out
