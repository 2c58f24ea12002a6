"""Block-pivoting (primal-dual active set) phase for large hard-margin SVMs.

For the dual ``min_lambda lambda^T K lambda / 2 - b^T lambda, lambda >= 0`` the primal-dual
active-set method (Hintermueller, Ito and Kunisch, SIAM J. Optim. 13, 2002) iterates

    P <- {k in P : lambda_k > 0}  U  {the most violated k not in P},
    lambda_P = K_PP^{-1} b_P,

with one dense Cholesky per iteration instead of one triangular solve per constraint change.
When it stops with ``lambda_P > 0`` and no violated constraint, the KKT conditions hold
exactly and the answer is final; otherwise its last set warm-starts the Goldfarb-Idnani method,
which always terminates.
"""

from __future__ import annotations

import numpy as np
from numpy.linalg import LinAlgError

from ..constraints import ConstraintKernel
from ._linalg import cho_solve, cholesky, solve_triangular

__all__ = ["block_pivoting", "KernelCache"]


class KernelCache:
    """Rows and columns of ``K`` computed so far, over a growing list of constraints.

    The cache buffer grows by doubling, so adding rows never copies the whole block again.
    """

    def __init__(self, kernel: ConstraintKernel) -> None:
        self.kernel = kernel
        self.pos = np.full(kernel.m, -1, dtype=np.int64)
        self.idx = np.zeros(0, dtype=np.int64)
        self._buf = np.zeros((0, 0))

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``K[rows][:, cols]`` for cached ``rows`` (``cols`` are cached on the way)."""
        self.sub(np.union1d(rows, cols))
        return self._buf[np.ix_(self.pos[rows], self.pos[cols])]

    def sub(self, idx: np.ndarray) -> np.ndarray:
        """``K[idx][:, idx]``, computing only the rows not cached yet."""
        new = idx[self.pos[idx] < 0]
        if new.size:
            old_n = self.idx.size
            all_idx = np.concatenate([self.idx, new])
            size = all_idx.size
            if size > self._buf.shape[0]:
                cap = max(size, 2 * self._buf.shape[0], 256)
                buf = np.empty((cap, cap))
                buf[:old_n, :old_n] = self._buf[:old_n, :old_n]
                self._buf = buf
            Kn = self.kernel.block(new, all_idx)
            self._buf[old_n:size, :size] = Kn
            self._buf[:old_n, old_n:size] = Kn[:, :old_n].T
            self.idx = all_idx
            self.pos[new] = np.arange(old_n, size)
        p = self.pos[idx]
        return self._buf[np.ix_(p, p)]


class _UpdatableSolve:
    """Solves ``K_PP lambda = b_P`` for a sequence of related sets ``P``.

    One Cholesky factor ``L`` of a base set ``B`` serves every ``P`` close to it: constraints
    of ``P`` missing from ``B`` extend the factor by a block row (``O(|A| |B|^2)``, level-3
    BLAS), and members of ``B`` missing from ``P`` are pinned to zero through the bordered
    system ``E_D^T M^{-1} E_D mu = -E_D^T M^{-1} b`` (``O(|D| |B|^2)``).  Far sets refactor.
    """

    def __init__(self, cache: KernelCache, b: np.ndarray) -> None:
        self.cache = cache
        self.b = b
        self.B = np.zeros(0, dtype=np.int64)
        self.L = np.zeros((0, 0))

    def _refactor(self, P: np.ndarray) -> None:
        K = self.cache.sub(P)
        self.L = cholesky(K, lower=True)
        self.B = P.copy()

    def _extend(self, A: np.ndarray) -> None:
        K_BA = self.cache.block(self.B, A)
        K_AA = self.cache.sub(A)
        L21 = solve_triangular(self.L, K_BA, lower=True).T  # (a, |B|)
        L22 = cholesky(K_AA - L21 @ L21.T, lower=True)
        nb, na = self.B.size, A.size
        L = np.zeros((nb + na, nb + na))
        L[:nb, :nb] = self.L
        L[nb:, :nb] = L21
        L[nb:, nb:] = L22
        self.L, self.B = L, np.concatenate([self.B, A])

    def solve(self, P: np.ndarray) -> np.ndarray:
        """``lambda_P`` with ``K_PP lambda_P = b_P`` (P sorted); raises LinAlgError if singular."""
        inB = np.isin(P, self.B)
        A = P[~inB]
        D_mask = ~np.isin(self.B, P)
        if self.B.size == 0 or D_mask.sum() > 0.1 * self.B.size:
            self._refactor(P)
            return cho_solve((self.L, True), self.b[P])
        if A.size:
            self._extend(A)
            D_mask = np.concatenate([D_mask, np.zeros(A.size, dtype=bool)])
        y = cho_solve((self.L, True), self.b[self.B])
        D = np.flatnonzero(D_mask)
        if D.size:
            # pin lambda_D = 0: with H = L^{-1} E_D, (H^T H) mu = -y_D, lambda = y + M^{-1} E_D mu
            E = np.zeros((self.B.size, D.size))
            E[D, np.arange(D.size)] = 1.0
            H = solve_triangular(self.L, E, lower=True)
            mu = np.linalg.solve(H.T @ H, -y[D])
            rhs = np.zeros(self.B.size)
            rhs[D] = mu
            y = y + cho_solve((self.L, True), rhs)
        order = np.argsort(self.B)
        pos = order[np.searchsorted(self.B, P, sorter=order)]
        return y[pos]


def block_pivoting(
    kernel: ConstraintKernel,
    b: np.ndarray,
    thr: np.ndarray,
    start: np.ndarray,
    scale: np.ndarray,
    max_rounds: int = 40,
    grow: int = 200,
) -> tuple[bool, np.ndarray, np.ndarray, int]:
    """Run the block-pivoting phase from the constraint set ``start``.

    Parameters
    ----------
    kernel : ConstraintKernel
    b : ndarray, shape (m,)
        Right-hand sides (inequalities only).
    thr : ndarray, shape (m,)
        Violation thresholds.
    start : ndarray of int
        Initial guess of the active set.
    scale : ndarray, shape (m,)
        ``||g_k||``, to rank violations by distance rather than by raw slack.
    max_rounds : int
        Rounds before giving up (the caller then finishes with Goldfarb-Idnani).
    grow : int
        At least this many violated constraints join per round (and at most ``max(grow,|P|/2)``).

    Returns
    -------
    converged : bool
        True when the KKT conditions hold exactly for ``(P, lambda_P)``.
    P : ndarray of int
        Last active set (with ``lambda_P > 0`` when converged).
    lam : ndarray
        Its multipliers.
    rounds : int
    """
    cache = KernelCache(kernel)
    solver = _UpdatableSolve(cache, b)
    P = np.unique(start)
    seen: set[bytes] = set()
    lam = np.zeros(P.size)
    for rnd in range(1, max_rounds + 1):
        key = P.tobytes()
        if key in seen or P.size == 0:
            return False, P, lam, rnd
        seen.add(key)
        try:
            lam = solver.solve(P)
        except LinAlgError:
            return False, P, lam, rnd
        if not np.all(np.isfinite(lam)):
            return False, P, lam, rnd
        vals = kernel.values(kernel.primal(P, lam))
        viol = (b - vals) > thr
        viol[P] = False
        v_idx = np.flatnonzero(viol)
        pos = lam > 0
        if pos.all() and v_idx.size == 0:
            return True, P, lam, rnd
        if v_idx.size:
            n_neg = int(P.size - pos.sum())
            # many negative multipliers mean the set overshot: grow slower until it settles
            cap = max(grow, P.size // 2) if n_neg <= 0.1 * P.size else max(grow // 4, n_neg // 4)
            v_idx = v_idx[np.argsort((vals[v_idx] - b[v_idx]) / scale[v_idx])][:cap]
        P = np.unique(np.concatenate([P[pos], v_idx]))
    return False, P, lam, max_rounds
