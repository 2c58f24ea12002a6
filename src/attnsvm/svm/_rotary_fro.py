"""The lifted Frobenius Att-SVM by the exact working-set dual of :mod:`._working_set`.

Stacking the real blocks ``Theta = [Re M_1; Im M_1; ...; Re M_F; Im M_F]`` ((2 F d, d)) makes
each row rank one, ``<[Re a_1; Im a_1; ...] z^T, Theta>``, and the position-free block ``W0``
adds its own rank-one term, so the Gram matrix is

    K_kl = (sum_f Re<a_kf, a_lf>) (z_k . z_l) + (a0_k . a0_l)(z0_k . z0_l),

solved without slack by the same Goldfarb-Idnani / block-pivoting method as the ordinary
Frobenius Att-SVM (hence exact, with a Farkas certificate when infeasible).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from .._numerics import row_scale, safe_norm
from ..constraints import ConstraintSet
from ..exceptions import ConvergenceWarning
from ._rotary_certify import feasible_rescale, finish, rescale_factor
from ._rotary_tables import PhaseKernel
from ._working_set import solve_hard_margin
from .rotary import RotaryConstraintSet, RotarySolution, lifted_norm

__all__ = ["LiftedKernel", "solve_lifted_fro"]

#: largest relative gap between ``||M||`` of the formed blocks and ``sqrt(c^T K c)``
#: for which the row values of ``c`` stand for those of ``M``
_NORM_RTOL = 1e-10


def _group_index(index: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """``index`` when rows of one group share their query, else one group per row."""
    _, first, inv = np.unique(index[:, 0], return_index=True, return_inverse=True)
    if np.array_equal(Z, Z[first][inv.ravel()]):
        return index
    m = index.shape[0]
    return np.stack([np.arange(m), np.zeros(m, dtype=np.int64)], 1)


class LiftedKernel:
    """The :class:`~attnsvm.constraints.ConstraintKernel` of the stacked lifted rows.

    The primal point is the flat vector ``[Theta.ravel(), W0.ravel()]``.
    """

    def __init__(self, problem: RotaryConstraintSet, sA: float = 1.0, sZ: float = 1.0) -> None:
        m, F, d = problem.A.shape
        L = np.stack([problem.A.real, problem.A.imag], axis=2).reshape(m, 2 * F * d)
        self.F, self.d, self.d2 = F, d, int(problem.Zc.shape[1])
        self.rot = ConstraintSet(A=L / sA, Zc=problem.Zc / sZ,
                                 index=_group_index(problem.index, problem.Zc))
        self.free: ConstraintSet | None = None
        if problem.A0 is not None:
            assert problem.Z0 is not None
            self.free = ConstraintSet(A=problem.A0 / sA, Zc=problem.Z0 / sZ,
                                      index=_group_index(problem.index, problem.Z0))
        self.n_rot = 2 * F * d * self.d2

    @property
    def m(self) -> int:
        return self.rot.m

    def split(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The flat primal as ``(M (F, d, d2) complex, W0 or None)``."""
        S = w[: self.n_rot].reshape(self.F, 2, self.d, self.d2)
        M = S[:, 0] + 1j * S[:, 1]
        W0 = None
        if self.free is not None:
            d0 = self.free.A.shape[1]
            W0 = w[self.n_rot:].reshape(d0, self.free.Zc.shape[1])
        return M, W0

    def _parts(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        W1 = w[: self.n_rot].reshape(2 * self.F * self.d, self.d2)
        if self.free is None:
            return W1, None
        return W1, w[self.n_rot:].reshape(self.free.A.shape[1], self.free.Zc.shape[1])

    def diag(self) -> np.ndarray:
        out = self.rot.diag()
        return out if self.free is None else out + self.free.diag()

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = self.rot.block(rows, cols)
        return out if self.free is None else out + self.free.block(rows, cols)

    def primal(self, idx: np.ndarray, lam: np.ndarray) -> np.ndarray:
        w1 = self.rot.primal(idx, lam).ravel()
        if self.free is None:
            return w1
        return np.concatenate([w1, self.free.primal(idx, lam).ravel()])

    def values(self, w: np.ndarray) -> np.ndarray:
        W1, W0 = self._parts(w)
        out = self.rot.values(W1)
        return out if self.free is None or W0 is None else out + self.free.values(W0)


def solve_lifted_fro(problem: RotaryConstraintSet, tol: float = 1e-9) -> RotarySolution:
    """``min sqrt(sum_f ||M_f||_F^2 + ||W0||_F^2)`` subject to the rows, exactly.

    Parameters
    ----------
    problem : RotaryConstraintSet
    tol : float
        Certified relative gap required for ``optimal``; the working set runs at
        ``min(tol, 1e-10)``.

    Returns
    -------
    RotarySolution
        ``dual``: ``mu = lambda / ||Theta||`` (``sqrt(sum ||G_f||_F^2) = 1``,
        ``sum(mu b) = ||Theta||`` at the optimum), or ``certificate`` when infeasible.
    """
    start = time.perf_counter()
    if problem.tables is not None:
        return _solve_tables(problem, tol, start)
    m = problem.m
    L = np.concatenate([problem.A.real.reshape(m, -1), problem.A.imag.reshape(m, -1)]
                       + ([] if problem.A0 is None else [problem.A0]), axis=1)
    Zall = problem.Zc if problem.Z0 is None else np.concatenate([problem.Zc, problem.Z0], 1)
    sA, sZ = row_scale(L), row_scale(Zall)
    kernel = LiftedKernel(problem, sA, sZ)
    res, info = _working_set(kernel, problem, tol, "the stacked real blocks")
    if res.status == "infeasible":
        return _infeasible(res, m, info, start)
    w_unit = res.point(kernel)
    nrm = safe_norm(w_unit)
    lam = _multipliers(res, m)
    mu = lam / (nrm * sA * sZ) if nrm > 0 else lam
    M, W0 = kernel.split(w_unit / (sA * sZ))
    M, W0, _ = feasible_rescale(problem, M, W0)
    sol = finish(problem, "fro", M, W0, mu, tol, info)
    return _ended(sol, res, start)


def _solve_tables(problem: RotaryConstraintSet, tol: float, start: float) -> RotarySolution:
    """The same solve on rows held as tables: the working set runs on :class:`PhaseKernel`
    (Gram entries by table look-ups, primal points as coefficient vectors) and ``M`` is
    formed once from the multipliers.

    The certificate's row values are those of ``Theta = sum_k c_k g_k`` from the Gram columns
    of its support (``K[:, support] c``, already computed by the working set), not a product
    with the explicit ``M`` (``2 F d d2`` multiplications per query, the largest cost of the
    whole solve at the probe's size); ``M`` is checked to be that ``Theta`` by its norm
    (``||M||^2 = c^T K c`` to :data:`_NORM_RTOL`), else the values are recomputed from ``M``.
    """
    t = problem.tables
    assert t is not None
    m = problem.m
    key_diag = PhaseKernel(t).diag() / np.maximum(np.einsum("kd,kd->k", t.Zq, t.Zq)[t.q],
                                                  1e-300)
    if problem.A0 is not None:
        key_diag = key_diag + np.einsum("kd,kd->k", problem.A0, problem.A0)
    sA = float(np.sqrt(np.max(key_diag))) if m else 1.0
    sA = sA if sA > 0 else 1.0
    Zall = t.Zq if problem.Z0 is None else np.concatenate([problem.Zc, problem.Z0], 1)
    sZ = row_scale(Zall)
    kernel = PhaseKernel(t, problem.A0, problem.Z0, sA, sZ)
    res, info = _working_set(kernel, problem, tol, "the phase kernel of the tables")
    if res.status == "infeasible":
        return _infeasible(res, m, info, start)
    c = res.point(kernel)                      # Theta_scaled = sum_k c_k g_k / (sA sZ)
    nz = np.flatnonzero(c)
    nrm = float(np.sqrt(max(float(c[nz] @ kernel.block(nz, nz) @ c[nz]), 0.0)))
    lam = _multipliers(res, m)
    mu = lam / (nrm * sA * sZ) if nrm > 0 else lam
    # <Theta, g_k> = (K c)_k (K the scaled Gram matrix): the row values of Theta, and the
    # factor that makes every row hold folded into the coefficients before M is formed
    vals = kernel.values(c)
    s = rescale_factor(problem, vals)
    vals = vals * s
    # Theta = Theta_scaled / (sA sZ) with g_k = (a_k / sA)(z_k / sZ)^T: coefficients / (sA sZ)^2
    M, W0 = problem.combine(c * (s / (sA * sZ) ** 2))
    n_expl = lifted_norm(M, W0)
    if abs(n_expl - s * nrm / (sA * sZ)) > _NORM_RTOL * max(n_expl, 1e-300):
        # M is not the Theta of c to rounding: certify M from its own values
        M, W0, vals = feasible_rescale(problem, M, W0, problem.values(M, W0))
        info["values"] = "explicit"
        sol = finish(problem, "fro", M, W0, mu, tol, info, vals=vals)
        return _ended(sol, res, start)
    # mu = lam / (nrm sA sZ): when lam is c, combine(mu) = M (sA sZ) / (s nrm)
    scale = (sA * sZ) / (s * nrm) if np.array_equal(c, lam) and nrm > 0 else None
    sol = finish(problem, "fro", M, W0, mu, tol, info, vals=vals, sums_scale=scale)
    return _ended(sol, res, start)


def _working_set(kernel: Any, problem: RotaryConstraintSet, tol: float, where: str
                 ) -> tuple[Any, dict[str, Any]]:
    """The exact working-set solve on ``kernel`` (the rows' Gram matrix) and its info."""
    res = solve_hard_margin(kernel, problem.rhs, n_eq=problem.n_eq, tol=min(tol, 1e-10))
    return res, {"solver": f"working-set ({res.method}) on {where}",
                 "iterations": res.iterations, "rounds": res.rounds}


def _multipliers(res: Any, m: int) -> np.ndarray:
    """The working set's multipliers on all ``m`` rows (0 off its active set)."""
    lam = np.zeros(m)
    lam[res.active] = res.lam
    return lam


def _infeasible(res: Any, m: int, info: dict[str, Any], start: float) -> RotarySolution:
    """The answer of a working set that proved the rows infeasible (its Farkas certificate)."""
    assert res.certificate is not None
    info["seconds"] = time.perf_counter() - start
    return RotarySolution(status="infeasible", norm="fro", M=None, W0=None, dual=np.zeros(m),
                          objective=float("inf"), certificate=res.certificate, info=info)


def _ended(sol: RotarySolution, res: Any, start: float) -> RotarySolution:
    """``sol`` marked ``inaccurate`` (with a warning) when the working set fell short; timed."""
    if res.status != "optimal":
        sol.status = "inaccurate"
        warnings.warn(f"the working-set solver {res.shortfall}; the lifted answer is "
                      "reported inaccurate", ConvergenceWarning, stacklevel=4)
    sol.info["seconds"] = time.perf_counter() - start
    return sol
