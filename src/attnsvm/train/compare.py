"""How a trained key-query matrix compares with the Att-SVM solutions of the tokens it selects."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .._numerics import correlation
from .._validation import as_float_array, as_int_array
from ..instance import Instance
from ..report_solve import verify_solution
from ..svm import solve_fro, solve_lp, solve_nuc

__all__ = ["compare_with_svms", "matrix_corr"]


def matrix_corr(A: np.ndarray, B: np.ndarray | None) -> float | None:
    """:func:`attnsvm._numerics.correlation`, with None (JSON null) where it gives NaN."""
    c = correlation(A, B)
    return c if math.isfinite(c) else None


def compare_with_svms(instance: Instance, W: Any, selected: Any, *,
                      lp: float | None = None) -> dict[str, Any]:
    """Correlations of ``W`` with the Frobenius, nuclear (and l_p) Att-SVMs of ``selected``.

    Normalized GD on ``W`` tends to the Frobenius solution ``W^mm``, on ``(K, Q)`` to the
    nuclear-norm solution ``W_*^mm``, and l_p mirror descent to the entrywise l_p solution
    (THEORY.md).

    Parameters
    ----------
    instance : Instance
    W : array_like, shape (d, d)
        The trained key-query matrix.
    selected : array_like of int, shape (n,)
        The token selected in each sequence (``argmax_t`` of the final probabilities).
    lp : float, optional
        Also compare with the entrywise l_p Att-SVM (``corr_lp``, ``lp_p``).

    Returns
    -------
    dict
        ``corr_fro``, ``corr_nuc`` (and ``corr_lp``, ``lp_p``): correlations, None when the
        SVM for ``selected`` is infeasible; ``status_fro``, ``status_nuc``: the verified statuses
        (:func:`attnsvm.report_solve.verify_solution`: ``inaccurate`` when the answer fails
        its own check) and ``reason_fro``, ``reason_nuc`` (None when verified).
    """

    n, T, d = instance.X.shape
    Wa = as_float_array("W", W, 2, (d, d))
    sel = as_int_array("selected", selected, 1, (n,), low=0, high=T)
    out: dict[str, Any] = {}
    for key, solve in (("fro", solve_fro), ("nuc", solve_nuc)):
        sol = solve(instance, sel)
        ok = sol.status != "infeasible" and sol.W is not None
        out[f"corr_{key}"] = matrix_corr(Wa, sol.W) if ok else None
        # the status ``attnsvm solve`` would report (verified), and why it failed if it did
        out[f"status_{key}"], out[f"reason_{key}"] = verify_solution(sol)
    if lp is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sol = solve_lp(instance, lp, alpha=sel)
        out["corr_lp"] = matrix_corr(Wa, sol.W) if sol.W is not None else None
        out["lp_p"] = float(lp)
    return out
