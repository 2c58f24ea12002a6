"""Checks shared by the lifted solvers: margins, KKT residuals and the certified gap.

For multipliers ``mu`` (>= 0 on inequality rows) with ``G_f = sum_k mu_k A[k,f] Zc[k]^T``
weak duality gives, for every feasible ``Theta``,
``sum_k mu_k b_k <= <G, Theta> <= ||G||_dual ||Theta||``, so ``sum(mu b) / ||G||_dual`` is a
lower bound on the optimum (dual norm of Frobenius: Frobenius; of the group nuclear norm:
``max_f ||G_f||_2``).  The gap is relative to the objective of the returned ``Theta``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .rotary import RotaryConstraintSet, RotarySolution, lifted_norm

__all__ = ["group_nuclear", "group_spectral", "finish", "feasible_rescale",
           "rescale_factor"]

#: largest relative shortfall of a row that an ``optimal`` answer may keep
PRIMAL_TOL = 1e-9


def _nuc(M: np.ndarray) -> float:
    return float(np.sum(np.linalg.svd(M, compute_uv=False)))


def _spec(M: np.ndarray) -> float:
    return float(np.linalg.svd(M, compute_uv=False)[0]) if M.size else 0.0


def group_nuclear(M: np.ndarray | None, W0: np.ndarray | None = None) -> float:
    """``sum_f ||M_f||_* + ||W0||_*`` (complex nuclear norms)."""
    s = 0.0 if M is None else sum(_nuc(Mf) for Mf in M)
    return s + (0.0 if W0 is None else _nuc(W0))


def group_spectral(G: np.ndarray, G0: np.ndarray | None = None) -> float:
    """``max(max_f ||G_f||_2, ||G0||_2)``, the dual norm of :func:`group_nuclear`."""
    s = max((_spec(Gf) for Gf in G), default=0.0)
    return max(s, 0.0 if G0 is None else _spec(G0))


def objective(norm: str, M: np.ndarray | None, W0: np.ndarray | None) -> float:
    """The lifted norm of ``(M, W0)``: Frobenius or group nuclear."""
    return lifted_norm(M, W0) if norm == "fro" else group_nuclear(M, W0)


def _shortfall(problem: RotaryConstraintSet, vals: np.ndarray) -> np.ndarray:
    b = problem.rhs
    r = b - vals
    r[: problem.n_eq] = np.abs(r[: problem.n_eq])
    return np.asarray(r / np.maximum(1.0, np.abs(b)))


def feasible_rescale(problem: RotaryConstraintSet, M: np.ndarray, W0: np.ndarray | None,
                     vals: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Scale ``Theta`` up so that every inequality row holds (possible when the equality rows
    have ``b = 0`` and the inequality rows ``b > 0`` with positive values); else unchanged.
    Returns ``(M, W0, values)`` (``vals``: the row values of the given ``Theta``, if known)."""
    vals = problem.values(M, W0) if vals is None else vals
    s = rescale_factor(problem, vals)
    if s == 1.0:
        return M, W0, vals
    return M * s, None if W0 is None else W0 * s, vals * s


def rescale_factor(problem: RotaryConstraintSet, vals: np.ndarray) -> float:
    """The factor ``s > 1`` by which :func:`feasible_rescale` scales ``Theta`` (row values
    ``vals``), or 1.0 when it leaves it unchanged."""
    b = problem.rhs
    ne = problem.n_eq
    if np.any(b[:ne] != 0) or ne == problem.m or np.any(b[ne:] <= 0) or np.any(vals[ne:] <= 0):
        return 1.0
    s = float(np.max(b[ne:] / vals[ne:]))
    return 1.0 if s <= 1.0 else float(np.nextafter(s, np.inf))


def _fro_residual(M: np.ndarray, W0: np.ndarray | None, a: float, G: np.ndarray,
                  G0: np.ndarray | None, c: float) -> float:
    """``||(M, W0) / a - (G, G0) / c||`` block by block (no full-size temporaries); when
    ``G`` is ``M`` itself, ``||(M, W0)|| |1/a - 1/c|``."""
    if G is M and G0 is W0:
        return lifted_norm(M, W0) * abs(1.0 / a - 1.0 / c)
    s = sum(float(np.sum(np.abs(Mf / a - Gf / c) ** 2)) for Mf, Gf in zip(M, G, strict=True))
    if W0 is not None and G0 is not None:
        s += float(np.sum((W0 / a - G0 / c) ** 2))
    return float(np.sqrt(s))


def finish(problem: RotaryConstraintSet, norm: str, M: np.ndarray, W0: np.ndarray | None,
           mu: np.ndarray, tol: float, info: dict[str, Any], vals: np.ndarray | None = None,
           sums: tuple[np.ndarray, np.ndarray | None] | None = None,
           sums_scale: float | None = None) -> RotarySolution:
    """Certify ``Theta = (M, W0)`` with multipliers ``mu``; status ``optimal`` only when every
    row holds to :data:`PRIMAL_TOL`, ``mu`` has the right signs and the gap is <= ``tol``
    (``vals``: the row values of ``Theta``, ``sums``: ``problem.combine(mu)``, when the caller
    has computed them; ``sums_scale``: ``problem.combine(mu) = sums_scale * (M, W0)``, when
    the caller formed ``M`` from the coefficients of ``mu`` (no copy is made))."""
    b = problem.rhs
    ne = problem.n_eq
    vals = problem.values(M, W0) if vals is None else vals
    obj = objective(norm, M, W0)
    g = 1.0 if sums_scale is None else float(sums_scale)
    G, G0 = (M, W0) if sums_scale is not None else (
        problem.combine(mu) if sums is None else sums)
    dn = g * (lifted_norm(G, G0) if norm == "fro" else group_spectral(G, G0))
    dual_neg = float(max(0.0, -np.min(mu[ne:]))) if problem.m > ne else 0.0
    lb = float(np.dot(mu, b) / dn) if dn > 0 and dual_neg == 0 else 0.0
    gap = (obj - lb) / obj if obj > 0 else float("inf")
    prim = float(max(0.0, np.max(_shortfall(problem, vals))))
    comp = float(np.max(np.abs(mu * (vals - b)))) / max(obj, 1e-300) if mu.size else 0.0
    if norm == "fro":
        stat = _fro_residual(M, W0, obj, G, G0, dn / g) if obj > 0 and dn > 0 else float("inf")
    else:
        align = g * float(np.sum(np.conj(G) * M).real) + (
            0.0 if W0 is None or G0 is None else g * float(np.sum(G0 * W0)))
        stat = abs(obj - align / dn) / obj if obj > 0 and dn > 0 else float("inf")
    ineq = vals[ne:]
    info = dict(info)
    info.update(
        certified_gap=float(gap), lower_bound=lb, dual_norm=float(dn),
        margin=float(np.min(ineq)) if ineq.size else None,
        kkt={"primal": prim, "complementarity": comp, "stationarity": float(stat),
             "dual": dual_neg},
        support=np.flatnonzero(mu != 0),
    )
    ok = prim <= PRIMAL_TOL and dual_neg == 0.0 and gap <= tol
    mu_out = mu / dn if dn > 0 else mu
    return RotarySolution(status="optimal" if ok else "inaccurate", norm=norm, M=M, W0=W0,
                          dual=mu_out, objective=float(obj), info=info)
