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
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from ._kernel import ConstraintKernel

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


def block_pivoting(
    kernel: ConstraintKernel,
    b: np.ndarray,
    thr: np.ndarray,
    start: np.ndarray,
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
    scale = np.sqrt(np.maximum(kernel.diag(), 1e-300))
    cache = KernelCache(kernel)
    P = np.unique(start)
    seen: set[bytes] = set()
    lam = np.zeros(P.size)
    for rnd in range(1, max_rounds + 1):
        key = P.tobytes()
        if key in seen or P.size == 0:
            return False, P, lam, rnd
        seen.add(key)
        Kp = cache.sub(P)
        try:
            lam = cho_solve(cho_factor(Kp, lower=True, check_finite=False), b[P],
                            check_finite=False)
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
            cap = max(grow, P.size // 2)
            v_idx = v_idx[np.argsort((vals[v_idx] - b[v_idx]) / scale[v_idx])][:cap]
        P = np.unique(np.concatenate([P[pos], v_idx]))
    return False, P, lam, max_rounds
