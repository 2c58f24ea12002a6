"""Primal-dual interior-point method for the nuclear-norm SVM on a working set.

The problem on a set of constraints ``k`` (reduced coordinates, ``a_k`` in R^r1, ``z_k`` in R^r2)

    (P)  min ||W||_*   s.t.  a_k^T W z_k >= b_k   (= b_k for the first n_eq)

is the semidefinite program, with ``F_k = [[0, a_k z_k^T], [z_k a_k^T, 0]]`` (N x N, N = r1+r2),

    (P') min tr X  s.t.  <F_k, X> - x_k = b_k,  X >= 0 (PSD),  x >= 0   (x only on inequalities)
    (D') max b^T y  s.t. Z = I - sum_k y_k F_k >= 0,  y_k >= 0 on inequalities,

with ``W = 2 X_12`` and ``||sum_k y_k a_k z_k^T||_op <= 1`` equivalent to ``Z >= 0``.  Each
iteration is a Mehrotra predictor-corrector step along the HKM direction (Schur complement
``M_kl = <F_k, X F_l Z^-1>``); while HKM's steps are blocked (poor centring) it takes
Nesterov-Todd steps instead, until the relative gap reaches 1e-6, where HKM finishes unless
it is blocked there too (``direction="auto"``; the rules are in :mod:`._policy`).
With the NT scaling matrix ``S`` (``S Z S = X``), the Schur complement ``M_kl = <F_k, S F_l S>``
is, for rank-one ``F_k``, two Hadamard products of ``s x s`` matrices (``s`` constraints):

    M = 2 (P o P^T + (Ar S_11 Ar^T) o (Zr S_22 Zr^T)),   P = Ar S_12 Zr^T,

the ``Zr`` products formed once per distinct query (``g`` of them) and gathered.  One iteration
costs ``O(s^2 r1 + s^3 + N^3)``, never the ``s x r1 r2`` constraint matrix of a generic conic
solver.  The scaling follows Todd, Toh and Tutuncu (1998): ``X = L L^T``,
``L^T Z L = Q diag(lam) Q^T``, ``G = L Q diag(lam)^(-1/4)``, ``S = G G^T``, and in the scaled
space ``G^-1 X G^-T = G^T Z G = diag(v)``, ``v = lam^(1/2)``, where the complementarity
equations and the step lengths are diagonal-scaled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh, solve_triangular

from . import _policy as policy

__all__ = ["IPMResult", "IPMState", "nuclear_ipm"]


@dataclass
class IPMState:
    """An iterate of :func:`nuclear_ipm`: ``X`` (N, N), slacks ``x`` (s,), ``y`` (s,), ``Z`` (N, N).

    :meth:`restrict` keeps some constraints, so that a run can go on after constraints that
    are clearly inactive (large slack, tiny multiplier) are dropped.
    """

    X: np.ndarray
    x: np.ndarray
    y: np.ndarray
    Z: np.ndarray

    def restrict(self, keep: np.ndarray) -> IPMState:
        """The same iterate on the constraints ``keep`` (indices)."""
        return IPMState(self.X, self.x[keep], self.y[keep], self.Z)


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
    state : IPMState
        The last iterate (to go on from with :func:`nuclear_ipm`'s ``start``).
    stopped_for_polish : bool
        Stopped at ``polish_gap`` with a primal residual left for the caller's polish.
    """

    W: np.ndarray
    y: np.ndarray
    primal_objective: float
    dual_objective: float
    iterations: int
    converged: bool
    state: IPMState
    stopped_for_polish: bool = False


#: largest relative primal residual left to the caller's polish (``polish_gap``)
_POLISH_RESIDUAL = 1e-6

#: above this size the smallest eigenvalue comes from Lanczos (checked by a Cholesky
#: factorization) instead of a dense eigenvalue solve
_DENSE_MAX = 256


def _inv_lower(M: np.ndarray) -> np.ndarray:
    """``L^-1`` for the lower Cholesky factor ``L`` of a positive definite ``M``."""
    L = np.linalg.cholesky(M)
    return solve_triangular(L, np.eye(M.shape[0]), lower=True, check_finite=False)


def _times_antidiag(M: np.ndarray, G: np.ndarray, r1: int) -> np.ndarray:
    """``M @ [[0, G], [G^T, 0]]`` for an (n, N) ``M`` and an (r1, r2) ``G`` (a dual step
    ``dZ = -A^T(dy)`` has this form): half the work of the dense product."""
    out = np.empty_like(M)
    out[:, :r1] = M[:, r1:] @ G.T
    out[:, r1:] = M[:, :r1] @ G
    return out


def _min_eig(dense: Callable[[], np.ndarray], N: int,
             matvec: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
    """Smallest eigenvalue of a symmetric N x N matrix: a dense solve for ``N <= _DENSE_MAX``,
    else Lanczos (an estimate) on ``matvec`` (default: products with ``dense()``), falling
    back to a dense solve when Lanczos does not converge."""
    if N <= _DENSE_MAX:
        return float(np.linalg.eigvalsh(dense())[0])
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    op = dense() if matvec is None else LinearOperator((N, N), matvec=matvec, dtype=float)
    try:
        return float(eigsh(op, k=1, which="SA", tol=1e-6, maxiter=20 * N, v0=np.ones(N),
                           return_eigenvectors=False)[0])
    except ArpackNoConvergence:
        return float(eigh(dense(), eigvals_only=True, subset_by_index=[0, 0],
                          check_finite=False)[0])


def _step_from_eig(lam: float, tau: float) -> float:
    """Largest ``alpha <= 1`` with ``1 + alpha lam >= 0``, damped by ``tau``."""
    return 1.0 if lam >= -1e-300 else min(1.0, -tau / lam)


def _max_step(Linv: np.ndarray, D: np.ndarray, tau: float) -> float:
    """Largest ``alpha <= 1`` with ``M + alpha D`` PSD (``Linv = L^-1``, ``M = L L^T``),
    damped by ``tau``; for ``N > _DENSE_MAX`` an estimate (see :func:`_safe_step`)."""

    def dense() -> np.ndarray:
        Y = Linv @ D @ Linv.T
        return (Y + Y.T) / 2

    lam = _min_eig(dense, D.shape[0], lambda v: Linv @ (D @ (Linv.T @ v)))
    return _step_from_eig(lam, tau)


def _safe_step(M: np.ndarray, D: np.ndarray, alpha: float) -> float:
    """Shrink ``alpha`` until ``M + alpha D`` has a Cholesky factor (guards the Lanczos
    estimates of :func:`_max_step` and :func:`_psd_step` on large matrices)."""
    if M.shape[0] <= _DENSE_MAX:
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


class _Operators:
    """The linear maps of the SDP for rank-one constraints grouped by query."""

    def __init__(self, Ar: np.ndarray, Zq: np.ndarray, grp: np.ndarray) -> None:
        from scipy.sparse import csr_matrix

        self.Ar, self.Zq, self.grp = Ar, Zq, grp
        self.s, self.r1 = Ar.shape
        self.r2 = Zq.shape[1]
        self.N = self.r1 + self.r2
        # (g, s) indicator of each query's constraints: sums per query
        self._by_query = csr_matrix((np.ones(self.s), (grp, np.arange(self.s))),
                                    shape=(Zq.shape[0], self.s))

    def pair(self, B: np.ndarray) -> np.ndarray:
        """``(a_k^T B z_l)_{k,l}`` for a (r1, r2) block ``B``: shape (s, s)."""
        return (self.Ar @ (B @ self.Zq.T))[:, self.grp]

    def diag_pair(self, B: np.ndarray) -> np.ndarray:
        """``a_k^T B z_k`` for every k, shape (s,) (one ``B z`` per distinct query)."""
        BZ = (self.Zq @ B.T)[self.grp]  # (s, r1): B z_k
        return np.einsum("kd,kd->k", self.Ar, BZ)

    def apply(self, Y: np.ndarray, symmetric: bool = False) -> np.ndarray:
        """``<F_k, Y>`` for an N x N matrix ``Y`` (half the work when it is symmetric)."""
        r1 = self.r1
        if symmetric:
            return 2.0 * self.diag_pair(Y[:r1, r1:])
        return self.diag_pair(Y[:r1, r1:]) + self.diag_pair(Y[r1:, :r1].T)

    def adjoint_block(self, y: np.ndarray) -> np.ndarray:
        """``G = sum_k y_k a_k z_k^T``, shape (r1, r2) (``a_k`` summed per query first)."""
        return np.asarray(self._by_query @ (y[:, None] * self.Ar)).T @ self.Zq

    def adjoint(self, y: np.ndarray, block: np.ndarray | None = None,
                sign: float = 1.0) -> np.ndarray:
        """``sign * sum_k y_k F_k``, shape (N, N) (``block``: ``adjoint_block(y)`` if known)."""
        G = self.adjoint_block(y) if block is None else block
        out = np.zeros((self.N, self.N))
        out[: self.r1, self.r1:] = sign * G
        out[self.r1:, : self.r1] = sign * G.T
        return out

    def _gather(self, Q: np.ndarray) -> np.ndarray:
        """``Q[grp][:, grp]`` for a (g, g) matrix of per-query values, shape (s, s) (two
        ``take`` calls: a quarter of the time of ``Q[np.ix_(grp, grp)]``)."""
        return np.take(np.take(Q, self.grp, axis=0), self.grp, axis=1)

    def apply_product(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """``<F_k, A B>`` for N x N matrices, forming only the two off-diagonal blocks of the
        product (half the work of ``apply(A @ B)``)."""
        r1 = self.r1
        return (self.diag_pair(A[:r1] @ B[:, r1:])
                + self.diag_pair((A[r1:] @ B[:, :r1]).T))

    def _gram(self, B: np.ndarray) -> np.ndarray:
        """``Ar B Ar^T`` for a PSD ``B`` as ``(Ar L)(Ar L)^T`` (NumPy calls the symmetric
        rank-k update for this product: half the flops of a general one)."""
        try:
            L = np.linalg.cholesky(B)
        except np.linalg.LinAlgError:
            return self.Ar @ B @ self.Ar.T
        AL = self.Ar @ L
        return AL @ AL.T

    def schur_hkm(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        """``M_kl = <F_k, X F_l S>`` (``S = Z^-1``), shape (s, s), symmetric."""
        r1 = self.r1
        P1 = self.pair(X[:r1, r1:])
        P2 = self.pair(S[:r1, r1:])
        Zx = self._gather(self.Zq @ X[r1:, r1:] @ self.Zq.T)
        Zs = self._gather(self.Zq @ S[r1:, r1:] @ self.Zq.T)
        Ax = self._gram(X[:r1, :r1])
        As = self._gram(S[:r1, :r1])
        T = P1 * P2.T  # P1^T o P2 + P1 o P2^T = T + T^T
        M = Zx * As
        M += Ax * Zs
        M += T
        M += T.T
        return M  # symmetric to rounding; only its lower triangle is factored

    def schur(self, S: np.ndarray) -> np.ndarray:
        """``M_kl = <F_k, S F_l S>`` for the symmetric NT scaling ``S``, shape (s, s)."""
        r1 = self.r1
        P = self.pair(S[:r1, r1:])
        Zs = self._gather(self.Zq @ S[r1:, r1:] @ self.Zq.T)
        M = P * P.T
        M += Zs * self._gram(S[:r1, :r1])
        M *= 2.0
        return M


def _schur_solver(M: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Solve with the Schur complement: Cholesky, or, where rounding has left it indefinite,
    Cholesky of ``M + delta diag(M)`` with the least ``delta = 10^k eps`` that factors.

    Near the optimum ``M`` is singular to working precision when active rows are dependent
    (the several-token rows of a Graph-SVM: ``(i,k) - (i,l) - (j,k) + (j,l) = 0`` for one
    query).  The shift changes the solve only in directions whose eigenvalues are below it,
    which the callers' iterative refinement (through the operators themselves) leaves alone;
    a truncated pseudo-inverse dropped every direction below ``1e-14 ||M||`` instead, the
    legitimately small ones too, and the primal residual jumped from 1e-10 to 1e-7.
    """
    try:
        Mf = cho_factor(M, lower=True, check_finite=False)
        return lambda r: cho_solve(Mf, r, check_finite=False)
    except LinAlgError:
        pass
    d = np.abs(np.diag(M)).copy()
    d[d == 0] = max(float(np.max(d)), 1.0) if d.size else 1.0
    delta = 1e-15
    while delta < 1.0:
        delta *= 10.0
        try:
            Mf = cho_factor(M + np.diag(delta * d), lower=True, check_finite=False)
            return lambda r: cho_solve(Mf, r, check_finite=False)
        except LinAlgError:
            continue
    Mp = np.linalg.pinv(M, rcond=1e-14, hermitian=True)
    return lambda r: Mp @ r


@dataclass
class _NewtonHKM:
    """One HKM Newton system at the current iterate (the Schur complement is factored once)."""

    ops: _Operators
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
            XdZ = _times_antidiag(X, -Gd, ops.r1)
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

    ops: _Operators
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
                dZt = _times_antidiag(G.T, -Gd, ops.r1) @ G  # G^T dZ G
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


_Step = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]


def _refinements(rel_gap: float) -> int:
    """Steps of iterative refinement of ``dy``: none far from the optimum, more as the Schur
    complement grows ill-conditioned near the optimum (below a gap of 1e-8 a single step
    leaves the primal residual above the certified tolerance)."""
    return 0 if rel_gap >= 1e-6 else 1 if rel_gap >= 1e-8 else 4


def _hkm_step(ops: _Operators, ineq: np.ndarray, X: np.ndarray, x: np.ndarray, y: np.ndarray,
              Z: np.ndarray, rp: np.ndarray, Rd: np.ndarray | None, mu: float, nu: int,
              rel_gap: float, b: np.ndarray, centring: float = 0.0) -> _Step | None:
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
                      _schur_solver(M), rp=rp, refine=_refinements(rel_gap))
    # predictor
    dXa, dya, dZa, dxa = step.direction(0.0, None, None)
    ap = min(_max_step(LX, dXa, 1.0), _lp_step(x[ineq], dxa[ineq], 1.0))
    ad = min(_max_step(LZ, dZa, 1.0), _lp_step(y[ineq], dya[ineq], 1.0))
    mu_aff = (float(np.sum((X + ap * dXa) * (Z + ad * dZa)))
              + float((x[ineq] + ap * dxa[ineq]) @ (y[ineq] + ad * dya[ineq]))) / nu
    sigma = max(policy.mehrotra_sigma(mu_aff, mu), centring)
    # corrector (second-order terms of the predictor)
    corr = (dXa @ dZa if Rd is not None
            else _times_antidiag(dXa, dZa[: ops.r1, ops.r1:], ops.r1))
    dX, dy, dZ, dx = step.direction(sigma * mu, corr, dxa * dya)
    tau = policy.damping(rel_gap)
    ap = _safe_step(X, dX, min(_max_step(LX, dX, tau), _lp_step(x[ineq], dx[ineq], tau)))
    ad = _safe_step(Z, dZ, min(_max_step(LZ, dZ, tau), _lp_step(y[ineq], dy[ineq], tau)))
    return dX, dx, dy, dZ, ap, ad


def _nt_step(ops: _Operators, ineq: np.ndarray, X: np.ndarray, x: np.ndarray, y: np.ndarray,
             Z: np.ndarray, rp: np.ndarray, Rd: np.ndarray | None, mu: float, nu: int,
             rel_gap: float, b: np.ndarray, centring: float = 0.0) -> _Step | None:
    """One NT predictor-corrector step, as :func:`_hkm_step`."""
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
    step = _NewtonNT(ops, ineq, x, y, G, v, Rd, base, rp, _schur_solver(M),
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


def nuclear_ipm(
    Ar: np.ndarray,
    Zq: np.ndarray,
    grp: np.ndarray,
    b: np.ndarray,
    n_eq: int = 0,
    W0: np.ndarray | None = None,
    gap_tol: float = 1e-12,
    max_iter: int = 100,
    start: IPMState | None = None,
    accept_tol: float | None = None,
    direction: str = "auto",
    centring: float = 0.0,
    polish_gap: float | None = None,
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
    start : IPMState, optional
        Go on from this iterate (e.g. a lower-accuracy run on a superset of these
        constraints, restricted with :meth:`IPMState.restrict`); ``W0`` is then ignored.
    accept_tol : float, optional
        Stop early once the best iterate's error (relative gap plus residuals) is below this
        and three iterations have not halved it (rounding limits the last digits).
    direction : {"auto", "hkm", "nt"}
        Search direction.  ``"auto"``: HKM, switching to NT while HKM's steps are blocked
        (poor centring) until the relative gap reaches 1e-6, where HKM finishes (its last
        digits are the more accurate of the two) unless its steps are blocked there too.
    centring : float
        Least centring parameter sigma (Mehrotra's choice otherwise): each step aims at no less
        than ``centring * mu``.  Slower, but it keeps degenerate problems' iterates away from
        the boundary, where their primal steps otherwise stall (the solver's retry of an
        uncertified answer uses 0.2, ``_CENTRING`` in :mod:`.solver`).
    polish_gap : float, optional
        Stop once the relative gap is below this with the dual exactly feasible and the primal
        residual below 1e-6 (``stopped_for_polish``): the caller moves ``W`` onto its active
        rows (:func:`~attnsvm.svm.nuclear._polish.tangent_polish`), which clears the
        residual, instead of spending the last iterations on it.

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
    c0 = policy.start_dual(g1)
    y = np.where(ineq, c0, 0.0)
    Z = np.eye(N) - ops.adjoint(y)
    AX = ops.apply(X, symmetric=True)
    x = np.where(ineq, np.maximum(AX - b, 0.0), 0.0)
    x[ineq] = np.maximum(x[ineq], float(np.trace(X)) / nu * policy.START_SLACK)
    Rd: np.ndarray | None = None  # Z = I - A^T(y) exactly, until a restricted start
    if start is not None:
        X, x, y, Z = start.X, start.x.copy(), start.y.copy(), start.Z
        # the multipliers of dropped rows leave a dual residual (full dual steps clear it)
        Rd = np.eye(N) - Z - ops.adjoint(y)

    converged = polished = False
    it = 0
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    best_hist: list[float] = []
    # the certificate's two bounds, each from its own best iterate: the primal upper bound
    # tr X after the rescaling that makes X feasible (times 1 + the equality residual), and
    # the dual lower bound b^T y while Z = I - A^T(y) exactly (so ||A^T(y)||_op <= 1)
    pos = ineq & (b > 0)
    best_ub: tuple[float, np.ndarray] | None = None
    best_lb: tuple[float, np.ndarray] | None = None
    stalls = 0
    nt_phase = endgame_nt = False
    history: list[float] = []
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        AX = ops.apply(X, symmetric=True)
        rp = b - (AX - np.where(ineq, x, 0.0))
        pobj, dobj = float(np.trace(X)), float(b @ y)
        mu = (float(np.sum(X * Z)) + float(x[ineq] @ y[ineq])) / nu
        rel_gap = abs(pobj - dobj) / max(abs(pobj), abs(dobj), 1e-300)  # as certified
        # per constraint, relative to its own right-hand side: the certificate rescales W by
        # the worst of these
        rel_p = float(np.max(np.abs(rp) / np.maximum(np.abs(b), 1e-300 + (b == 0)))) if s else 0.0
        rel_d = 0.0 if Rd is None else float(np.max(np.abs(Rd)))
        err = rel_gap + rel_p + rel_d
        if best is None or err < best[0]:
            best = (err, X.copy(), y.copy())
        AXp = AX[pos]
        if np.all(AXp > 0):
            scale = max(1.0, float(np.max(b[pos] / AXp))) if AXp.size else 1.0
            eq_res = float(np.max(np.abs(rp[:n_eq]))) if n_eq else 0.0
            ub = pobj * scale * (1.0 + eq_res)
            if best_ub is None or ub < best_ub[0]:
                best_ub = (ub, X.copy())
        if Rd is None and (best_lb is None or dobj > best_lb[0]):
            best_lb = (dobj, y.copy())
        if err < gap_tol:
            converged = True
            break
        if (polish_gap is not None and Rd is None and rel_gap < polish_gap
                and rel_p < _POLISH_RESIDUAL):
            polished = True
            break
        best_hist.append(best[0])
        if (accept_tol is not None and it > policy.ACCEPT_LAG
                and policy.accepted(best[0], best_hist[-policy.ACCEPT_LAG - 1], accept_tol)):
            break  # good enough for the caller, and not halved in three iterations
        if policy.rounding_limited(stalls, err, gap_tol):
            break  # rounding limits further progress; the best iterate is certified outside
        history.append(err)
        if (len(history) > policy.STAGNATION_AFTER
                and policy.stagnated(err, history[-policy.STAGNATION_LAG - 1])):
            break  # stagnation (blocked steps): stop; the caller certifies what was reached
        use_nt = direction == "nt" or (direction == "auto" and (
            endgame_nt or (nt_phase and rel_gap > policy.NEAR_GAP)))
        out = (_nt_step if use_nt else _hkm_step)(ops, ineq, X, x, y, Z, rp, Rd, mu, nu, rel_gap, b,
                                                  centring)
        if out is None:
            break
        dX, dx, dy, dZ, ap, ad = out
        stalls = stalls + 1 if min(ap, ad) < policy.STALL_STEP else 0
        if stalls >= policy.STALLS_TO_NT and it > policy.NT_AFTER and not use_nt:
            # blocked HKM steps: NT (symmetric scaling) re-centres better; HKM takes over
            # again at a gap of 1e-6, unless it is blocked there too (then NT to the end)
            nt_phase = True
            endgame_nt = rel_gap <= policy.NEAR_GAP
        X = X + ap * dX
        x = x + ap * dx
        y = y + ad * dy
        X = (X + X.T) / 2
        if Rd is None or ad >= 1.0:  # dual feasible: Z formed from y (no residual to track)
            Z = np.eye(N) - ops.adjoint(y)
            Rd = None
        else:
            Z = Z + ad * dZ
            Z = (Z + Z.T) / 2
            Rd = np.eye(N) - Z - ops.adjoint(y)
    state = IPMState(X, x, y, Z)
    if best is not None and not (converged or polished):
        _, X, y = best
        if best_ub is not None and best_lb is not None:
            X, y = best_ub[1], best_lb[1]
    W = 2.0 * X[:r1, r1:]
    return IPMResult(W=W, y=y, primal_objective=float(np.trace(X)),
                     dual_objective=float(b @ y), iterations=it, converged=converged,
                     state=state, stopped_for_polish=polished)
