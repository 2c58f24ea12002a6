"""The stacked problems of :mod:`._ipm_batch`: their linear maps and Schur complements, and
Cholesky factors of a stack.

Constraint ``k`` of problem ``i`` is ``a_ik^T W_i z_ik >= b_ik``; with the lifted rows
``R_i = [[A_i, 0], [0, Zk_i]]`` (2s, N) one product ``R_i X_i R_i^T`` gives all three blocks
of the HKM Schur complement ``M_kl = <F_k, X F_l Z^-1>``:

    M = Zx o As + Ax o Zs + P o Q^T + (P o Q^T)^T,

``Ax = A X_11 A^T``, ``P = A X_12 Zk^T``, ``Zx = Zk X_22 Zk^T`` and the same of ``Z^-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve

from ._sdp import schur_solver

__all__ = ["Stack", "SchurSolve", "chol", "sym"]


def sym(Y: np.ndarray) -> np.ndarray:
    """``(Y + Y^T) / 2`` of a stack (..., N, N)."""
    return (Y + np.swapaxes(Y, -1, -2)) / 2



@dataclass
class Stack:
    """Factors of the problems still running: ``A`` (B, s, r1), the distinct queries ``Zq``
    (B, g, r2), the query of each constraint ``grp`` (B, s) and ``b`` (B, s)."""

    A: np.ndarray
    Zq: np.ndarray
    grp: np.ndarray
    b: np.ndarray

    def __post_init__(self) -> None:
        B, s, r1 = self.A.shape
        g, r2 = self.Zq.shape[1:]
        self.r1, self.N = r1, r1 + r2
        self.Zk = np.take_along_axis(self.Zq, self.grp[:, :, None], axis=1)  # (B, s, r2)
        self.At = np.swapaxes(self.A, 1, 2)
        self.Zqt = np.swapaxes(self.Zq, 1, 2)
        # constraints in runs of c per query (query j: rows j c .. j c + c - 1), as an
        # instance's constraints are: the query products are broadcast, not gathered
        c = s // g if g and s % g == 0 else 0
        self.c = c if c and np.all(self.grp == np.repeat(np.arange(g), c)) else 0
        if not self.c:  # flat positions of the gathers (k, l) -> (k, grp[l]), (grp[k], grp[l])
            base = np.arange(B)[:, None, None]
            self.pidx = (base * (s * g) + np.arange(s)[None, :, None] * g
                         + self.grp[:, None, :]).ravel()
            self.zidx = (base * (g * g) + self.grp[:, :, None] * g
                         + self.grp[:, None, :]).ravel()

    def take(self, keep: np.ndarray) -> Stack:
        return Stack(self.A[keep], self.Zq[keep], self.grp[keep], self.b[keep])

    def _blocks(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For a symmetric stack ``X`` (K, N, N) (K = B or 2B, shaped (K/B, B, ...)):
        ``A X_11 A^T`` (s, s), ``Pg = A X_12 Zq^T`` (s, g) and ``Zg = Zq X_22 Zq^T`` (g, g),
        the query products once per distinct query."""
        r1 = self.r1
        K, B = X.shape[0], self.A.shape[0]
        X4 = X.reshape(K // B, B, self.N, self.N)
        AX = self.A @ X4[:, :, :r1, :]  # (K/B, B, s, N): [A X_11, A X_12]
        Ax = AX[..., :r1] @ self.At
        Pg = AX[..., r1:] @ self.Zqt  # (K/B, B, s, g)
        Zg = self.Zq @ X4[:, :, r1:, r1:] @ self.Zqt  # (K/B, B, g, g)
        return Ax, Pg, Zg

    def _combine(self, Ax: np.ndarray, Pg1: np.ndarray, Zg1: np.ndarray, As: np.ndarray,
                 Pg2: np.ndarray, Zg2: np.ndarray) -> np.ndarray:
        """``M = Zx1 o As + Ax o Zx2 + T + T^T``, ``T = P1 o P2^T``, shape (B, s, s), with
        ``P_kl = Pg[k, grp_l]`` and ``Zx_kl = Zg[grp_k, grp_l]``."""
        B, s = Ax.shape[:2]
        g = Zg1.shape[1]
        if self.c:  # (B, g, c, g, c) views: k = (g_k, c_k), l = (g_l, c_l)
            c = self.c
            M = (As.reshape(B, g, c, g, c) * Zg1[:, :, None, :, None]
                 + Ax.reshape(B, g, c, g, c) * Zg2[:, :, None, :, None])
            # T[k, l] = Pg1[k, g_l] Pg2[l, g_k]
            T = (Pg1.reshape(B, g, c, g)[..., None]
                 * Pg2.reshape(B, g, c, g).transpose(0, 3, 1, 2)[:, :, None])
            M += T
            M += T.transpose(0, 3, 4, 1, 2)
            return M.reshape(B, s, s)
        P1 = np.take(Pg1.reshape(-1), self.pidx).reshape(B, s, s)
        P2 = np.take(Pg2.reshape(-1), self.pidx).reshape(B, s, s)
        T = P1 * np.swapaxes(P2, 1, 2)
        M = np.take(Zg1.reshape(-1), self.zidx).reshape(B, s, s) * As
        M += Ax * np.take(Zg2.reshape(-1), self.zidx).reshape(B, s, s)
        M += T
        M += np.swapaxes(T, 1, 2)
        return M

    def schur_hkm(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        """``M_kl = <F_k, X F_l S>`` (``S = Z^-1``), shape (B, s, s), symmetric."""
        (Ax, As), (P1, P2), (Zx, Zs) = self._blocks(np.concatenate([X, S]))
        return self._combine(Ax, P1, Zx, As, P2, Zs)

    def schur_nt(self, S: np.ndarray) -> np.ndarray:
        """``M_kl = <F_k, S F_l S>`` for the symmetric NT scaling ``S``, shape (B, s, s)."""
        (As,), (P,), (Zs,) = self._blocks(S)
        return self._combine(As, P, Zs, As, P, Zs)  # = 2 (P o P^T + Zs o As)

    def apply(self, Y: np.ndarray) -> np.ndarray:
        """``<F_k, Y_i>`` for (not necessarily symmetric) ``Y`` (B, N, N): shape (B, s)."""
        r1 = self.r1
        C = Y[:, :r1, r1:] + np.swapaxes(Y[:, r1:, :r1], 1, 2)  # (B, r1, r2)
        return np.sum((self.A @ C) * self.Zk, axis=2)

    def adjoint_block(self, y: np.ndarray) -> np.ndarray:
        """``sum_k y_ik a_ik z_ik^T``, shape (B, r1, r2)."""
        return np.swapaxes(self.A, 1, 2) @ (y[:, :, None] * self.Zk)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """``sum_k y_ik F_ik``, shape (B, N, N)."""
        G = self.adjoint_block(y)
        r1 = self.r1
        out = np.zeros((G.shape[0], self.N, self.N))
        out[:, :r1, r1:] = G
        out[:, r1:, :r1] = np.swapaxes(G, 1, 2)
        return out


class SchurSolve:
    """Solve with a stack of Schur complements: Cholesky where it has a factor, the single
    solver's shifted Cholesky (:func:`._ipm.schur_solver`) for the ones rounding has
    left indefinite."""

    def __init__(self, M: np.ndarray) -> None:
        self.L, ok = chol(M)
        self.single = {int(i): schur_solver(M[i]) for i in np.flatnonzero(~ok)}

    def __call__(self, r: np.ndarray) -> np.ndarray:
        out = cho_solve((self.L, True), r[:, :, None], check_finite=False)[:, :, 0]
        for i, solve in self.single.items():
            out[i] = solve(r[i])
        return out


def chol(Ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of a stack (K, N, N) and the mask (K,) of those that have one
    (the others get ``I``).

    ``np.linalg.cholesky`` factors the whole stack in one call and raises when any factor
    fails; only then are the factors computed one by one, to find the failed ones.
    """
    ok = np.ones(Ms.shape[0], dtype=bool)
    try:
        return np.linalg.cholesky(Ms), ok
    except np.linalg.LinAlgError:
        L = np.empty_like(Ms)
        eye = np.eye(Ms.shape[1])
        for i in range(Ms.shape[0]):
            try:
                L[i] = np.linalg.cholesky(Ms[i])
            except np.linalg.LinAlgError:
                ok[i], L[i] = False, eye
    return L, ok
