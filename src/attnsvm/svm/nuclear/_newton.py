"""One predictor-corrector step of the single interior point (:func:`._ipm.nuclear_ipm`):
the HKM and the Nesterov-Todd Newton systems and their step lengths.

HKM solves with the Schur complement ``M_kl = <F_k, X F_l Z^-1>``.  The NT scaling follows
Todd, Toh and Tutuncu (1998): ``X = L L^T``, ``L^T Z L = Q diag(lam) Q^T``,
``G = L Q diag(lam)^(-1/4)``, ``S = G G^T`` (``S Z S = X``), and in the scaled space
``G^-1 X G^-T = G^T Z G = diag(v)``, ``v = lam^(1/2)``, where the complementarity equations
and the step lengths are diagonal-scaled.  Centring and damping are :mod:`._policy`'s.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh, solve_triangular

from . import _policy as policy
from ._sdp import Operators, schur_solver, times_antidiag

__all__ = ["DENSE_MAX", "Step", "hkm_step", "nt_step"]

#: above this size the smallest eigenvalue comes from Lanczos (checked by a Cholesky
#: factorization) instead of a dense eigenvalue solve
DENSE_MAX = 256

#: seed of the random vectors ARPACK may ask for (see :func:`_arpack_rng`)
ARPACK_SEED = 0


def _inv_lower(M: np.ndarray) -> np.ndarray:
    """``L^-1`` for the lower Cholesky factor ``L`` of a positive definite ``M``."""
    L = np.linalg.cholesky(M)
    return solve_triangular(L, np.eye(M.shape[0]), lower=True, check_finite=False)


@functools.cache
def _eigsh_takes_rng() -> bool:
    from scipy.sparse.linalg import eigsh  # lazy: start-up of the commands without Lanczos

    return "rng" in inspect.signature(eigsh).parameters


def _arpack_rng() -> dict[str, np.random.Generator]:
    """``rng=`` for :func:`scipy.sparse.linalg.eigsh`: a generator seeded with
    :data:`ARPACK_SEED`, new at every call, where SciPy takes one (1.15 and later).

    ARPACK asks for a random vector when its Krylov space breaks down (``v0`` in an invariant
    subspace, a lost direction); without a generator SciPy seeds one from the operating
    system, so that a step length, and with it the solution's last bits, would change from
    run to run.  Older SciPy (Fortran ARPACK) draws from a generator of its own, seeded once
    per process."""
    return {"rng": np.random.default_rng(ARPACK_SEED)} if _eigsh_takes_rng() else {}


def _min_eig(dense: Callable[[], np.ndarray], N: int,
             matvec: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
    """Smallest eigenvalue of a symmetric N x N matrix: a dense solve for ``N <= DENSE_MAX``,
    else Lanczos (an estimate) on ``matvec`` (default: products with ``dense()``), falling
    back to a dense solve when Lanczos does not converge."""
    if N <= DENSE_MAX:
        return float(np.linalg.eigvalsh(dense())[0])
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    op = dense() if matvec is None else LinearOperator((N, N), matvec=matvec, dtype=float)
    try:
        return float(eigsh(op, k=1, which="SA", tol=1e-6, maxiter=20 * N, v0=np.ones(N),
                           return_eigenvectors=False, **_arpack_rng())[0])
    except ArpackNoConvergence:
        return float(eigh(dense(), eigvals_only=True, subset_by_index=[0, 0],
                          check_finite=False)[0])


def _step_from_eig(lam: float, tau: float) -> float:
    """Largest ``alpha <= 1`` with ``1 + alpha lam >= 0``, damped by ``tau``."""
    return 1.0 if lam >= -1e-300 else min(1.0, -tau / lam)


def _max_step(Linv: np.ndarray, D: np.ndarray, tau: float) -> float:
    """Largest ``alpha <= 1`` with ``M + alpha D`` PSD (``Linv = L^-1``, ``M = L L^T``),
    damped by ``tau``; for ``N > DENSE_MAX`` an estimate (see :func:`_safe_step`)."""

    def dense() -> np.ndarray:
        Y = Linv @ D @ Linv.T
        return (Y + Y.T) / 2

    lam = _min_eig(dense, D.shape[0], lambda v: Linv @ (D @ (Linv.T @ v)))
    return _step_from_eig(lam, tau)


def _safe_step(M: np.ndarray, D: np.ndarray, alpha: float) -> float:
    """Shrink ``alpha`` until ``M + alpha D`` has a Cholesky factor (guards the Lanczos
    estimates of :func:`_max_step` and :func:`_psd_step` on large matrices)."""
    if M.shape[0] <= DENSE_MAX:
        return alpha
    for _ in range(30):
        try:
            np.linalg.cholesky(M + alpha * D)
            return alpha
        except np.linalg.LinAlgError:
            alpha *= 0.8
    return 0.0


def _psd_step(v: np.ndarray, D: np.ndarray, tau: float) -> float:
    """Largest ``alpha <= 1`` with ``diag(v) + alpha D`` PSD, damped by ``tau`` (a scaled-space
    step of the primal or of the dual slack matrix)."""
    h = 1.0 / np.sqrt(v)
    Y = D * h[:, None] * h[None, :]
    Y = (Y + Y.T) / 2
    alpha = _step_from_eig(_min_eig(lambda: Y, D.shape[0]), tau)
    return _safe_step(np.diag(v), D, alpha)


def _lp_step(x: np.ndarray, dx: np.ndarray, tau: float) -> float:
    neg = dx < 0
    if not np.any(neg):
        return 1.0
    return min(1.0, tau * float(np.min(-x[neg] / dx[neg])))



@dataclass
class _NewtonHKM:
    """One HKM Newton system at the current iterate (the Schur complement is factored once)."""

    ops: Operators
    ineq: np.ndarray
    X: np.ndarray
    x: np.ndarray
    y: np.ndarray
    Zinv: np.ndarray
    Rd: np.ndarray | None
    base: np.ndarray
    AZi: np.ndarray
    solveM: Callable[[np.ndarray], np.ndarray]
    rp: np.ndarray | None = None
    refine: int = 0

    def direction(self, sigma_mu: float, corr_X: np.ndarray | None, corr_lp: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(dX, dy, dZ, dx)`` for centring ``sigma_mu`` and Mehrotra's second-order terms."""
        ops, ineq, X, x, y, Zinv = self.ops, self.ineq, self.X, self.x, self.y, self.Zinv
        s = ops.s
        rhs = self.base - sigma_mu * self.AZi
        lp_term = np.zeros(s)
        lp_term[ineq] = sigma_mu / y[ineq]
        if corr_X is not None and corr_lp is not None:
            rhs = rhs + ops.apply_product(corr_X, Zinv)
            lp_term[ineq] -= corr_lp[ineq] / y[ineq]
        dy = self.solveM(rhs + lp_term)
        cl = 0.0 if corr_lp is None else corr_lp[ineq]
        for refine in range(self.refine + 1):
            Gd = ops.adjoint_block(dy)
            dZ = ops.adjoint(dy, block=Gd, sign=-1.0)
            # X dZ (+ the second-order term), then one product with Z^-1
            XdZ = times_antidiag(X, -Gd, ops.r1)
            if self.Rd is not None:
                dZ += self.Rd
                XdZ += X @ self.Rd
            if corr_X is not None:
                XdZ += corr_X
            dX = sigma_mu * Zinv - X - XdZ @ Zinv
            dX = (dX + dX.T) / 2
            dx = np.zeros(s)
            dx[ineq] = (sigma_mu - x[ineq] * y[ineq] - x[ineq] * dy[ineq] - cl) / y[ineq]
            if refine == self.refine or self.rp is None:
                break
            # iterative refinement through the operators (as in the NT direction): near the
            # optimum the Schur complement is ill-conditioned, equality rows above all
            lin = ops.apply(dX, symmetric=True) - np.where(ineq, dx, 0.0) - self.rp
            dy = dy - self.solveM(lin)
        return dX, dy, dZ, dx


@dataclass
class _NewtonNT:
    """One NT Newton system at the current iterate (the Schur complement is factored once).

    ``G`` (N, N) is the scaling factor, ``v`` (N,) the scaled iterate, ``Rd`` the dual
    residual (None: zero), ``base`` the right-hand side's part that does not depend on the
    centring.
    """

    ops: Operators
    ineq: np.ndarray
    x: np.ndarray
    y: np.ndarray
    G: np.ndarray
    v: np.ndarray
    Rd: np.ndarray | None
    base: np.ndarray
    rp: np.ndarray
    solveM: Callable[[np.ndarray], np.ndarray]
    refine: int

    def direction(self, sigma_mu: float, corr: np.ndarray | None, corr_lp: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scaled steps ``(dX~, dZ~)`` and ``(dy, dZ, dx)`` for centring ``sigma_mu`` and
        Mehrotra's second-order terms (``corr`` in the scaled space, ``corr_lp``)."""
        ops, ineq, x, y, G, v = self.ops, self.ineq, self.x, self.y, self.G, self.v
        # the scaled complementarity (V D + D V) / 2 = R, R = sigma_mu I - V^2 - corr
        if corr is None:
            Dd = sigma_mu / v - v
            D = np.diag(Dd)
            GDG = (G * Dd) @ G.T
        else:
            R = -corr
            R[np.diag_indices_from(R)] += sigma_mu - v * v
            D = 2.0 * R / (v[:, None] + v[None, :])
            GDG = G @ D @ G.T
        c = 0.0 if corr_lp is None else corr_lp[ineq]
        lp = np.zeros(ops.s)
        lp[ineq] = (sigma_mu - x[ineq] * y[ineq] - c) / y[ineq]
        dy = self.solveM(self.base - ops.apply(GDG, symmetric=True) + lp)
        for refine in range(self.refine + 1):
            Gd = ops.adjoint_block(dy)
            dZ = ops.adjoint(dy, block=Gd, sign=-1.0)
            if self.Rd is None:
                dZt = times_antidiag(G.T, -Gd, ops.r1) @ G  # G^T dZ G
            else:
                dZ += self.Rd
                dZt = G.T @ dZ @ G
            dZt = (dZt + dZt.T) / 2
            dXt = D - dZt
            dXt = (dXt + dXt.T) / 2
            dx = np.zeros(ops.s)
            dx[ineq] = (sigma_mu - x[ineq] * y[ineq] - c - x[ineq] * dy[ineq]) / y[ineq]
            if refine == self.refine:
                break
            # iterative refinement through the operators themselves: the linearized primal
            # equations A(dX) - dx = rp, which an ill-conditioned Schur complement (near the
            # optimum) satisfies only roughly
            lin = ops.apply(G @ dXt @ G.T, symmetric=True) - np.where(ineq, dx, 0.0) - self.rp
            dy = dy - self.solveM(lin)
        return dXt, dZt, dy, dZ, dx


Step = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]


def _refinements(rel_gap: float) -> int:
    """Steps of iterative refinement of ``dy``: none far from the optimum, more as the Schur
    complement grows ill-conditioned near the optimum (below a gap of 1e-8 a single step
    leaves the primal residual above the certified tolerance)."""
    return 0 if rel_gap >= 1e-6 else 1 if rel_gap >= 1e-8 else 4


def hkm_step(ops: Operators, ineq: np.ndarray, X: np.ndarray, x: np.ndarray, y: np.ndarray,
              Z: np.ndarray, rp: np.ndarray, Rd: np.ndarray | None, mu: float, nu: int,
              rel_gap: float, b: np.ndarray, centring: float = 0.0) -> Step | None:
    """One HKM predictor-corrector step: ``(dX, dx, dy, dZ, alpha_p, alpha_d)``, or None when
    an iterate has lost definiteness to rounding.  ``Rd``: the dual residual
    ``I - Z - A^T(y)``, None where it is zero (``Z`` formed from ``y``)."""
    s = ops.s
    try:
        LZ = _inv_lower(Z)
        LX = _inv_lower(X)
    except np.linalg.LinAlgError:
        return None
    Zinv = LZ.T @ LZ
    M = ops.schur_hkm(X, Zinv)
    M[np.diag_indices(s)] += np.where(ineq, x / np.where(ineq, y, 1.0), 0.0)
    base = b if Rd is None else b + ops.apply_product(X @ Rd, Zinv)
    step = _NewtonHKM(ops, ineq, X, x, y, Zinv, Rd, base, ops.apply(Zinv, symmetric=True),
                      schur_solver(M), rp=rp, refine=_refinements(rel_gap))
    # predictor
    dXa, dya, dZa, dxa = step.direction(0.0, None, None)
    ap = min(_max_step(LX, dXa, 1.0), _lp_step(x[ineq], dxa[ineq], 1.0))
    ad = min(_max_step(LZ, dZa, 1.0), _lp_step(y[ineq], dya[ineq], 1.0))
    mu_aff = (float(np.sum((X + ap * dXa) * (Z + ad * dZa)))
              + float((x[ineq] + ap * dxa[ineq]) @ (y[ineq] + ad * dya[ineq]))) / nu
    sigma = max(policy.mehrotra_sigma(mu_aff, mu), centring)
    # corrector (second-order terms of the predictor)
    corr = (dXa @ dZa if Rd is not None
            else times_antidiag(dXa, dZa[: ops.r1, ops.r1:], ops.r1))
    dX, dy, dZ, dx = step.direction(sigma * mu, corr, dxa * dya)
    tau = policy.damping(rel_gap)
    ap = _safe_step(X, dX, min(_max_step(LX, dX, tau), _lp_step(x[ineq], dx[ineq], tau)))
    ad = _safe_step(Z, dZ, min(_max_step(LZ, dZ, tau), _lp_step(y[ineq], dy[ineq], tau)))
    return dX, dx, dy, dZ, ap, ad


def nt_step(ops: Operators, ineq: np.ndarray, X: np.ndarray, x: np.ndarray, y: np.ndarray,
             Z: np.ndarray, rp: np.ndarray, Rd: np.ndarray | None, mu: float, nu: int,
             rel_gap: float, b: np.ndarray, centring: float = 0.0) -> Step | None:
    """One NT predictor-corrector step, as :func:`hkm_step`."""
    s = ops.s
    try:  # NT scaling
        L = np.linalg.cholesky(X)
        # the singular values of LZ^T L are those of (XZ)^(1/2), accurate where an
        # eigenvalue solve of L^T Z L would square their rounding error
        _, v, Vt = np.linalg.svd(np.linalg.cholesky(Z).T @ L)
    except np.linalg.LinAlgError:
        return None
    if v[-1] <= 0:
        return None
    G = (L @ Vt.T) / np.sqrt(v)
    S = G @ G.T
    M = ops.schur(S)
    M[np.diag_indices(s)] += np.where(ineq, x / np.where(ineq, y, 1.0), 0.0)
    base = rp if Rd is None else rp + ops.apply(S @ Rd @ S)
    step = _NewtonNT(ops, ineq, x, y, G, v, Rd, base, rp, schur_solver(M),
                     refine=_refinements(rel_gap))

    # predictor
    dXa, dZa, dya, _, dxa = step.direction(0.0, None, None)
    ap = min(_psd_step(v, dXa, 1.0), _lp_step(x[ineq], dxa[ineq], 1.0))
    ad = min(_psd_step(v, dZa, 1.0), _lp_step(y[ineq], dya[ineq], 1.0))
    V = np.diag(v)
    mu_aff = (float(np.sum((V + ap * dXa) * (V + ad * dZa)))
              + float((x[ineq] + ap * dxa[ineq]) @ (y[ineq] + ad * dya[ineq]))) / nu
    sigma = max(policy.mehrotra_sigma(mu_aff, mu), centring)
    # corrector (second-order terms of the predictor)
    C = dXa @ dZa
    dXt, dZt, dy, dZ, dx = step.direction(sigma * mu, (C + C.T) / 2, dxa * dya)
    tau = policy.damping(rel_gap)
    ap = min(_psd_step(v, dXt, tau), _lp_step(x[ineq], dx[ineq], tau))
    ad = min(_psd_step(v, dZt, tau), _lp_step(y[ineq], dy[ineq], tau))
    return G @ dXt @ G.T, dx, dy, dZ, ap, ad
