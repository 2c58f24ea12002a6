"""The nuclear-norm SVM as a semidefinite program on rank-one constraints: its linear maps
and the solve with its Schur complement, shared by every interior-point step (:mod:`._newton`).

On a set of constraints ``k`` (reduced coordinates, ``a_k`` in R^r1, ``z_k`` in R^r2), with
``F_k = [[0, a_k z_k^T], [z_k a_k^T, 0]]`` (N x N, N = r1 + r2), :class:`Operators` computes
``<F_k, Y>``, ``sum_k y_k F_k`` and the Schur complements

    HKM:  M_kl = <F_k, X F_l Z^-1>,
    NT:   M_kl = <F_k, S F_l S> = 2 (P o P^T + (Ar S_11 Ar^T) o (Zr S_22 Zr^T)),  P = Ar S_12 Zr^T,

the ``Zr`` products formed once per distinct query (``g`` of them) and gathered: ``O(s^2 r1)``
per product, never the ``s x r1 r2`` constraint matrix of a generic conic solver.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.sparse import csr_matrix

__all__ = ["Operators", "schur_solver", "times_antidiag"]


def times_antidiag(M: np.ndarray, G: np.ndarray, r1: int) -> np.ndarray:
    """``M @ [[0, G], [G^T, 0]]`` for an (n, N) ``M`` and an (r1, r2) ``G`` (a dual step
    ``dZ = -A^T(dy)`` has this form): half the work of the dense product."""
    out = np.empty_like(M)
    out[:, :r1] = M[:, r1:] @ G.T
    out[:, r1:] = M[:, :r1] @ G
    return out


class Operators:
    """The linear maps of the SDP for rank-one constraints grouped by query."""

    def __init__(self, Ar: np.ndarray, Zq: np.ndarray, grp: np.ndarray) -> None:
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


def schur_solver(M: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
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
