"""Certified bounds shared by the max-norm and spectral Att-SVM solvers.

For ``min ||W|| s.t. <W, G_k> >= b_k`` (``= b_k`` for ``k < n_eq``) and any multipliers
``lam`` (``>= 0`` on the inequalities), weak duality gives, for every feasible ``W``,

    sum_k lam_k b_k <= sum_k lam_k <W, G_k> = <W, G> <= ||W|| ||G||_*,   G = sum_k lam_k G_k,

so ``lower = lam . b / ||G||_*`` bounds the optimum from below, and the norm of any feasible
``W`` (a computed point rescaled to meet every constraint) bounds it from above.  The relative
difference of the two is the *certified gap*: it does not depend on the accuracy of the method
that produced ``W`` and ``lam``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..constraints import ConstraintSet
from ..exceptions import ConvergenceWarning
from .norms import dual_norm_value, norm_value
from .solution import INACCURATE, OPTIMAL, SVMSolution

__all__ = ["Bounds", "certify", "make_feasible", "least_frobenius_stage", "certified_solution"]


@dataclass
class Bounds:
    """A feasible point and a dual certificate.

    Attributes
    ----------
    W : ndarray, shape (d1, d2)
        The point, rescaled to meet every constraint.
    mu : ndarray, shape (m,)
        ``lam / ||G||_*``: ``||sum mu_k G_k||_* = 1`` and ``mu . b = lower``.
    upper, lower : float
        ``||W||`` and the weak-duality bound.
    gap : float
        ``(upper - lower) / upper`` (inf when the bound is not positive).
    """

    W: np.ndarray
    mu: np.ndarray
    upper: float
    lower: float
    gap: float


def make_feasible(cons: ConstraintSet, W: np.ndarray) -> np.ndarray:
    """``W`` times the least factor ``c >= 1`` that meets every inequality with positive
    right-hand side (only when no equality has a non-zero right-hand side, which a rescaling
    would break)."""
    b = cons.rhs
    if cons.n_eq and np.any(b[:cons.n_eq] != 0):
        return W
    v = cons.values(W)[cons.n_eq:]
    bi = b[cons.n_eq:]
    pos = bi > 0
    if not np.any(pos):
        return W
    ratio = bi[pos] / np.maximum(v[pos], 1e-300)
    c = float(np.max(ratio))
    return W * c if c > 1.0 and np.isfinite(c) else W


def certify(cons: ConstraintSet, W: np.ndarray, lam: np.ndarray, norm: str) -> Bounds:
    """Bounds of ``W`` (made feasible) and ``lam`` (clipped to ``>= 0`` on inequalities).

    Parameters
    ----------
    cons : ConstraintSet
    W : ndarray, shape (d1, d2)
    lam : ndarray, shape (m,)
    norm : {"linf", "spec"}

    Returns
    -------
    Bounds
    """
    lam = np.array(lam, dtype=np.float64)
    lam[cons.n_eq:] = np.maximum(lam[cons.n_eq:], 0.0)
    Wf = make_feasible(cons, W)
    upper = norm_value(Wf, norm)
    G = cons.combine(lam)
    dn = dual_norm_value(G, norm)
    lower = float(lam @ cons.rhs) / dn if dn > 0 else -np.inf
    mu = lam / dn if dn > 0 else lam
    gap = (upper - lower) / upper if upper > 0 and lower > 0 else float("inf")
    return Bounds(W=Wf, mu=mu, upper=upper, lower=lower, gap=max(float(gap), 0.0))


def least_frobenius_stage(cons: ConstraintSet, bounds: Bounds, lam: np.ndarray,
                          W2: np.ndarray | None, norm: str, tol: float,
                          info: dict[str, object], fallback: str) -> Bounds:
    """The bounds of the least-Frobenius optimum ``W2`` (d1, d2) where it certifies within
    ``tol`` with the same ``lam``, else ``bounds``; records ``least_frobenius`` and its note in
    ``info`` (``fallback`` names the point kept otherwise)."""
    if W2 is not None:
        b2 = certify(cons, W2, lam, norm)
        if b2.gap <= tol:
            bounds = b2
            info["least_frobenius"] = True
    info["least_frobenius_note"] = (
        "W is the optimum of least Frobenius norm (second stage over the optimal face)"
        if info["least_frobenius"] else
        f"the least-Frobenius stage did not certify; W is {fallback}")
    return bounds


def certified_solution(norm: str, W: np.ndarray, cset: ConstraintSet, mu: np.ndarray,
                       gap: float, tol: float, info: dict[str, object], iterations: int,
                       solver: str, what: str, start: float) -> SVMSolution:
    """The answer ``W`` (d1, d2) with multipliers ``mu`` (m,) of the original ``cset``:
    ``optimal`` where the certified ``gap`` is at most ``tol``, else ``inaccurate`` with a
    :class:`ConvergenceWarning` naming ``what`` certified it."""
    status = OPTIMAL if gap <= tol else INACCURATE
    sol = SVMSolution(status, norm, W, cset, cset.rhs, mu, n_eq=int(cset.n_eq), solver=solver)
    info["certified_gap"] = gap
    sol.info.update(info)
    sol.iterations = iterations
    if status == INACCURATE:
        warnings.warn(f"the {what} certifies a relative gap of {gap:.1e} > tol {tol:g}",
                      ConvergenceWarning, stacklevel=3)
    sol.seconds = time.perf_counter() - start
    return sol
