"""Primal-dual interior-point method for the nuclear-norm SVM on a working set.

The problem on a set of constraints ``k`` (reduced coordinates, ``a_k`` in R^r1, ``z_k`` in R^r2)

    (P)  min ||W||_*   s.t.  a_k^T W z_k >= b_k   (= b_k for the first n_eq)

is the semidefinite program, with ``F_k = [[0, a_k z_k^T], [z_k a_k^T, 0]]`` (N x N, N = r1+r2),

    (P') min tr X  s.t.  <F_k, X> - x_k = b_k,  X >= 0 (PSD),  x >= 0   (x only on inequalities)
    (D') max b^T y  s.t. Z = I - sum_k y_k F_k >= 0,  y_k >= 0 on inequalities,

with ``W = 2 X_12`` and ``||sum_k y_k a_k z_k^T||_op <= 1`` equivalent to ``Z >= 0``.  The
HKM (Helmberg-Kojima-Monteiro) search direction with Mehrotra's predictor-corrector is used.
Its Schur complement ``M_kl = <F_k, X F_l Z^-1>`` is, for rank-one ``F_k``, a sum of four
Hadamard products of ``s x s`` matrices (``s`` constraints):

    M = P1^T o P2 + P1 o P2^T + (Zr Xc Zr^T) o (Ar Sa Ar^T) + (Ar Xa Ar^T) o (Zr Sc Zr^T),

``P1 = Ar X_12 Zr^T``, ``P2 = Ar S_12 Zr^T``, ``S = Z^-1``; the ``Zr`` products are formed once
per distinct query (``g`` of them) and gathered.  One iteration costs ``O(s^2 r1 + s^3 + N^3)``,
never the ``s x r1 r2`` constraint matrix of a generic conic solver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh, solve_triangular

__all__ = ["IPMResult", "nuclear_ipm"]



@dataclass
class IPMResult:
    """Outcome of :func:`nuclear_ipm` (reduced coordinates).

    Attributes
    ----------
    W : ndarray, shape (r1, r2)
        Primal ``2 X_12``.
    y : ndarray, shape (s,)
        Dual multipliers (``>= 0`` on inequalities).
    primal_objective, dual_objective : float
        ``tr X`` and ``b^T y``.
    iterations : int
    converged : bool
        Relative gap and residuals under the target.
    """

    W: np.ndarray
    y: np.ndarray
    primal_objective: float
    dual_objective: float
    iterations: int
    converged: bool


def _inv_lower(M: np.ndarray) -> np.ndarray:
    """``L^-1`` for the lower Cholesky factor ``L`` of a positive definite ``M``."""
    L = np.linalg.cholesky(M)
    return solve_triangular(L, np.eye(M.shape[0]), lower=True, check_finite=False)


#: above this size the step length comes from Lanczos (O(N^2) a product) and is then checked by
#: a Cholesky factorization, instead of a dense eigenvalue solve (O(N^3) several times)
_DENSE_MAX = 256


def _max_step(Linv: np.ndarray, D: np.ndarray, tau: float) -> float:
    """Largest ``alpha <= 1`` with ``M + alpha D`` PSD (``Linv = L^-1``, ``M = L L^T``),
    damped by ``tau``; for ``N > _DENSE_MAX`` an estimate (see :func:`_safe_step`)."""
    N = D.shape[0]
    if N <= _DENSE_MAX:
        Y = Linv @ D @ Linv.T
        lam = float(np.linalg.eigvalsh((Y + Y.T) / 2)[0])
    else:
        from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

        op = LinearOperator((N, N), matvec=lambda v: Linv @ (D @ (Linv.T @ v)), dtype=float)
        try:
            lam = float(eigsh(op, k=1, which="SA", tol=1e-6, maxiter=20 * N,
                              return_eigenvectors=False)[0])
        except ArpackNoConvergence:
            Y = Linv @ D @ Linv.T
            lam = float(eigh((Y + Y.T) / 2, eigvals_only=True, subset_by_index=[0, 0],
                             check_finite=False)[0])
    return 1.0 if lam >= -1e-300 else min(1.0, -tau / lam)


def _safe_step(M: np.ndarray, D: np.ndarray, alpha: float) -> float:
    """Shrink ``alpha`` until ``M + alpha D`` has a Cholesky factor (guards the Lanczos
    estimate of :func:`_max_step` on large matrices)."""
    if M.shape[0] <= _DENSE_MAX:
        return alpha
    for _ in range(30):
        try:
            np.linalg.cholesky(M + alpha * D)
            return alpha
        except np.linalg.LinAlgError:
            alpha *= 0.8
    return 0.0


def _lp_step(x: np.ndarray, dx: np.ndarray, tau: float) -> float:
    neg = dx < 0
    if not np.any(neg):
        return 1.0
    return min(1.0, tau * float(np.min(-x[neg] / dx[neg])))


class _Operators:
    """The linear maps of the SDP for rank-one constraints grouped by query."""

    def __init__(self, Ar: np.ndarray, Zq: np.ndarray, grp: np.ndarray) -> None:
        self.Ar, self.Zq, self.grp = Ar, Zq, grp
        self.s, self.r1 = Ar.shape
        self.r2 = Zq.shape[1]
        self.N = self.r1 + self.r2

    def pair(self, B: np.ndarray) -> np.ndarray:
        """``(a_k^T B z_l)_{k,l}`` for a (r1, r2) block ``B``: shape (s, s)."""
        return (self.Ar @ (B @ self.Zq.T))[:, self.grp]

    def diag_pair(self, B: np.ndarray) -> np.ndarray:
        """``a_k^T B z_k`` for every k, shape (s,) (one ``B z`` per distinct query)."""
        BZ = (self.Zq @ B.T)[self.grp]  # (s, r1): B z_k
        return np.einsum("kd,kd->k", self.Ar, BZ)

    def apply(self, Y: np.ndarray) -> np.ndarray:
        """``<F_k, Y>`` for a (not necessarily symmetric) N x N matrix ``Y``."""
        r1 = self.r1
        return self.diag_pair(Y[:r1, r1:]) + self.diag_pair(Y[r1:, :r1].T)

    def adjoint_block(self, y: np.ndarray) -> np.ndarray:
        """``G = sum_k y_k a_k z_k^T``, shape (r1, r2)."""
        Zk = self.Zq[self.grp]
        return self.Ar.T @ (y[:, None] * Zk)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """``sum_k y_k F_k``, shape (N, N)."""
        G = self.adjoint_block(y)
        out = np.zeros((self.N, self.N))
        out[: self.r1, self.r1:] = G
        out[self.r1:, : self.r1] = G.T
        return out

    def _gram(self, B: np.ndarray) -> np.ndarray:
        """``Ar B Ar^T`` for a PSD ``B`` as ``(Ar L)(Ar L)^T`` (NumPy calls the symmetric
        rank-k update for this product: half the flops of a general one)."""
        try:
            L = np.linalg.cholesky(B)
        except np.linalg.LinAlgError:
            return self.Ar @ B @ self.Ar.T
        AL = self.Ar @ L
        return AL @ AL.T

    def schur(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        """``M_kl = <F_k, X F_l S>`` (``S = Z^-1``), shape (s, s), symmetric."""
        r1 = self.r1
        P1 = self.pair(X[:r1, r1:])
        P2 = self.pair(S[:r1, r1:])
        Zx = (self.Zq @ X[r1:, r1:] @ self.Zq.T)[np.ix_(self.grp, self.grp)]
        Zs = (self.Zq @ S[r1:, r1:] @ self.Zq.T)[np.ix_(self.grp, self.grp)]
        Ax = self._gram(X[:r1, :r1])
        As = self._gram(S[:r1, :r1])
        T = P1 * P2.T  # P1^T o P2 + P1 o P2^T = T + T^T
        M = Zx * As
        M += Ax * Zs
        M += T
        M += T.T
        return M  # symmetric to rounding; only its lower triangle is factored


def _schur_solver(M: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Solve with the Schur complement: Cholesky, or a pseudo-inverse when it is singular."""
    try:
        Mf = cho_factor(M, lower=True, check_finite=False)
        return lambda r: cho_solve(Mf, r, check_finite=False)
    except LinAlgError:
        Mp = np.linalg.pinv(M, rcond=1e-14, hermitian=True)
        return lambda r: Mp @ r


@dataclass
class _Newton:
    """One HKM Newton system at the current iterate (the Schur complement is factored once)."""

    ops: _Operators
    ineq: np.ndarray
    X: np.ndarray
    x: np.ndarray
    y: np.ndarray
    Zinv: np.ndarray
    Rd: np.ndarray
    base: np.ndarray
    AZi: np.ndarray
    solveM: Callable[[np.ndarray], np.ndarray]

    def direction(self, sigma_mu: float, corr_X: np.ndarray | None, corr_lp: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(dX, dy, dZ, dx)`` for centring ``sigma_mu`` and Mehrotra's second-order terms."""
        ops, ineq, X, x, y, Zinv = self.ops, self.ineq, self.X, self.x, self.y, self.Zinv
        s = ops.s
        rhs = self.base - sigma_mu * self.AZi
        lp_term = np.zeros(s)
        lp_term[ineq] = sigma_mu / y[ineq]
        if corr_X is not None and corr_lp is not None:
            rhs = rhs + ops.apply(corr_X @ Zinv)
            lp_term[ineq] -= corr_lp[ineq] / y[ineq]
        dy = self.solveM(rhs + lp_term)
        dZ = self.Rd - ops.adjoint(dy)
        dX = sigma_mu * Zinv - X - X @ dZ @ Zinv
        if corr_X is not None:
            dX = dX - corr_X @ Zinv
        dX = (dX + dX.T) / 2
        dx = np.zeros(s)
        cl = 0.0 if corr_lp is None else corr_lp[ineq]
        dx[ineq] = (sigma_mu - x[ineq] * y[ineq] - x[ineq] * dy[ineq] - cl) / y[ineq]
        return dX, dy, dZ, dx


def nuclear_ipm(
    Ar: np.ndarray,
    Zq: np.ndarray,
    grp: np.ndarray,
    b: np.ndarray,
    n_eq: int = 0,
    W0: np.ndarray | None = None,
    gap_tol: float = 1e-12,
    max_iter: int = 100,
) -> IPMResult:
    """Solve the nuclear-norm SVM on ``s`` constraints by a primal-dual interior-point method.

    Parameters
    ----------
    Ar : ndarray, shape (s, r1)
        Left factors ``a_k`` (rows), reduced and at unit scale.
    Zq : ndarray, shape (g, r2)
        The distinct right factors (queries); constraint ``k`` uses ``Zq[grp[k]]``.
    grp : ndarray of int, shape (s,)
    b : ndarray, shape (s,)
        Right-hand sides.
    n_eq : int
        The first ``n_eq`` constraints are equalities.
    W0 : ndarray, shape (r1, r2), optional
        A starting primal point (e.g. the Frobenius solution); it sets the initial ``X``.
    gap_tol : float
        Target relative duality gap and relative residuals.
    max_iter : int

    Returns
    -------
    IPMResult
    """
    ops = _Operators(Ar, Zq, grp)
    s, r1, N = ops.s, ops.r1, ops.N
    ineq = np.arange(s) >= n_eq
    n_in = int(ineq.sum())
    nu = N + n_in
    bnorm = 1.0 + float(np.max(np.abs(b))) if s else 1.0

    # ---- starting point: X from W0 (or a multiple of I), y small and positive
    # a well-centred start: X = xi I with tr X = ||W0||_* (the Frobenius solution's nuclear
    # norm, an upper bound on the optimum); starting on W0's own factors centres worse
    if W0 is not None and np.all(np.isfinite(W0)) and np.any(W0):
        X = np.eye(N) * float(np.linalg.svd(W0, compute_uv=False).sum()) / N
    else:
        X = np.eye(N) * max(1.0, bnorm)
    Gone = ops.adjoint_block(np.where(ineq, 1.0, 0.0))
    g1 = float(np.linalg.norm(Gone, 2)) if Gone.size else 0.0
    c0 = 0.5 / max(g1, 1e-12)
    y = np.where(ineq, c0, 0.0)
    Z = np.eye(N) - ops.adjoint(y)
    AX = ops.apply(X)
    x = np.where(ineq, np.maximum(AX - b, 0.0), 0.0)
    x[ineq] = np.maximum(x[ineq], float(np.trace(X)) / nu * 1e-2)

    converged = False
    it = 0
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    stalls = 0
    history: list[float] = []
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        AX = ops.apply(X)
        rp = b - (AX - np.where(ineq, x, 0.0))
        Rd = np.eye(N) - Z - ops.adjoint(y)
        pobj, dobj = float(np.trace(X)), float(b @ y)
        mu = (float(np.sum(X * Z)) + float(x[ineq] @ y[ineq])) / nu
        rel_gap = abs(pobj - dobj) / max(abs(pobj), abs(dobj), 1e-300)  # as certified
        # per constraint, relative to its own right-hand side: the certificate rescales W by
        # the worst of these
        rel_p = float(np.max(np.abs(rp) / np.maximum(np.abs(b), 1e-300 + (b == 0)))) if s else 0.0
        rel_d = float(np.max(np.abs(Rd)))
        err = rel_gap + rel_p + rel_d
        if best is None or err < best[0]:
            best = (err, X.copy(), y.copy())
        if err < gap_tol:
            converged = True
            break
        if stalls >= 4 and err < min(1e3 * gap_tol, 1e-10):
            break  # rounding limits further progress; the best iterate is certified outside
        history.append(err)
        if len(history) > 25 and err > 0.5 * history[-16]:
            break  # stagnation (blocked steps): stop; the caller certifies what was reached
        try:
            LZ = _inv_lower(Z)
            LX = _inv_lower(X)
        except np.linalg.LinAlgError:
            break
        Zinv = LZ.T @ LZ
        M = ops.schur(X, Zinv)
        dlp = np.zeros(s)
        dlp[ineq] = x[ineq] / y[ineq]
        M[np.diag_indices(s)] += dlp
        solveM = _schur_solver(M)
        AZi = ops.apply(Zinv)
        base = b + ops.apply(X @ Rd @ Zinv)
        step = _Newton(ops, ineq, X, x, y, Zinv, Rd, base, AZi, solveM)

        # predictor
        dXa, dya, dZa, dxa = step.direction(0.0, None, None)
        ap = min(_max_step(LX, dXa, 1.0), _lp_step(x[ineq], dxa[ineq], 1.0))
        ad = min(_max_step(LZ, dZa, 1.0), _lp_step(y[ineq], dya[ineq], 1.0))
        mu_aff = (float(np.sum((X + ap * dXa) * (Z + ad * dZa)))
                  + float((x[ineq] + ap * dxa[ineq]) @ (y[ineq] + ad * dya[ineq]))) / nu
        sigma = min(1.0, (mu_aff / mu) ** 3) if mu > 0 else 0.0
        # corrector (second-order terms of the predictor)
        dX, dy, dZ, dx = step.direction(sigma * mu, dXa @ dZa, dxa * dya)
        tau = 0.98 if rel_gap > 1e-6 else 0.995
        ap = _safe_step(X, dX, min(_max_step(LX, dX, tau), _lp_step(x[ineq], dx[ineq], tau)))
        ad = _safe_step(Z, dZ, min(_max_step(LZ, dZ, tau), _lp_step(y[ineq], dy[ineq], tau)))
        stalls = stalls + 1 if min(ap, ad) < 0.2 else 0
        X = X + ap * dX
        x = x + ap * dx
        y = y + ad * dy
        Z = Z + ad * dZ
        X = (X + X.T) / 2
        Z = (Z + Z.T) / 2
    if best is not None and not converged:
        _, X, y = best
    W = 2.0 * X[:r1, r1:]
    return IPMResult(W=W, y=y, primal_objective=float(np.trace(X)),
                     dual_objective=float(b @ y), iterations=it, converged=converged)
