"""Row-space kernels of rank-one constraint rows, for the interior points' Newton systems.

The rows of the max-norm and spectral Att-SVMs are rank-one matrices ``C_k = a_k z_k^T``
(``a_k`` in R^d1, ``z_k`` in R^d2), and the queries ``z_k`` repeat: row ``k`` uses query
``g(k)`` of ``ng`` distinct ones.  An interior point's Newton matrix is
``B + C^T D C`` on the ``N = d1 d2`` entries of ``W``; where ``m < N`` it is solved in the row
space through Woodbury, with the ``m x m`` matrix ``D^{-1} + C B^{-1} C^T``.  With ``B^{-1}``
acting entrywise (``R`` (d1, d2)) and through the transpose pairing (``T`` (r, r) on the
leading ``r x r`` block, the spectral barrier in the singular basis), its entries are

    K1_kl = sum_ij a_ki z_kj R_ij a_li z_lj = a_k^T diag(R (z_g(k) * z_g(l))) a_l,
    K2_kl = sum_ij a_ki z_kj T_ij a_lj z_li = (a_k * z_g(l))^T T (a_l * z_g(k)),

computed per pair of query groups (``ng^2 N + m^2 d1`` and ``ng m r^2 + m^2 r`` flops), never
with the ``m x N`` row matrix, unless that is the cheaper way (few rows, small ``N``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ._linalg import cho_solve, cholesky, solve_triangular

__all__ = ["RowGram", "spd_solver", "stalled"]

#: the dense way, ``C`` (m, N) in memory, is used up to this many entries of ``C``
_DENSE_ENTRIES = 4_000_000


class RowGram:
    """The rows ``a_k z_g(k)^T`` in a padded layout by query group.

    Parameters
    ----------
    A : ndarray, shape (m, d1)
    Zq : ndarray, shape (ng, d2)
        Distinct queries.
    inv : ndarray of int, shape (m,)
        Query of each row.
    """

    def __init__(self, A: np.ndarray, Zq: np.ndarray, inv: np.ndarray) -> None:
        m, d1 = A.shape
        ng, d2 = Zq.shape
        self.m, self.d1, self.d2, self.ng = m, d1, d2, ng
        self.A, self.Zq, self.inv = A, Zq, np.asarray(inv, dtype=np.int64)
        counts = np.bincount(self.inv, minlength=ng)
        self.gmax = int(counts.max()) if m else 0
        order = np.argsort(self.inv, kind="stable")
        slot = np.empty(m, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slot[order] = np.arange(m) - np.repeat(starts, counts)
        #: position of each row in the padded (ng * gmax) layout
        self.pos = self.inv * self.gmax + slot
        self.identity = ng * self.gmax == m and bool(np.all(self.pos == np.arange(m)))
        Ap = np.zeros((ng * self.gmax, d1))
        Ap[self.pos] = A
        self.Ap = Ap.reshape(ng, self.gmax, d1)
        dense_flops = float(m) * m * d1 * d2
        group_flops = float(ng) * ng * d1 * d2 + float(m) * m * d1 + ng * 2e4
        self.dense = m * d1 * d2 <= _DENSE_ENTRIES and dense_flops <= group_flops
        self.C = (np.einsum("ki,kj->kij", A, Zq[self.inv]).reshape(m, d1 * d2)
                  if self.dense else None)

    def _unpad(self, Kp: np.ndarray) -> np.ndarray:
        """(ng gmax, ng gmax) padded matrix -> (m, m) in row order."""
        if self.identity:
            return Kp
        return np.take(np.take(Kp, self.pos, axis=0), self.pos, axis=1)

    def gram(self, R: np.ndarray) -> np.ndarray:
        """``K1`` (m, m) of the entry weights ``R`` (d1, d2)."""
        if self.C is not None:
            return (self.C * R.ravel()) @ self.C.T
        ng, gm, d1 = self.ng, self.gmax, self.d1
        Kp = np.empty((ng, gm, ng * gm))
        chunk = max(1, int(2_000_000 // max(1, ng * d1)))
        for g0 in range(0, ng, chunk):
            g1 = min(ng, g0 + chunk)
            # Q[g, h, :] = R @ (z_g * z_h)
            ZZ = self.Zq[g0:g1, None, :] * self.Zq[None, :, :]
            Q = (ZZ.reshape(-1, self.d2) @ R.T).reshape(g1 - g0, ng, d1)
            for g in range(g0, g1):
                P = (self.Ap * Q[g - g0][:, None, :]).reshape(ng * gm, d1)
                Kp[g] = self.Ap[g] @ P.T
        return self._unpad(Kp.reshape(ng * gm, ng * gm))

    def cross(self, Tm: np.ndarray) -> np.ndarray:
        """``K2`` (m, m) of the transpose-pairing weights ``Tm`` (r, r), symmetric, on the
        leading ``r`` coordinates of both factors (``r <= min(d1, d2)``)."""
        r = Tm.shape[0]
        if r == 0:
            return np.zeros((self.m, self.m))
        ng, gm = self.ng, self.gmax
        Ar = self.Ap[:, :, :r]                                   # (ng, gm, r)
        Zr = self.Zq[:, :r]                                       # (ng, r)
        Kp = np.empty((ng, gm, ng, gm))
        for g in range(ng):
            # L[a, h, :] = (a_ga * z_h) T ;  Y[h, b, :] = a_hb * z_g
            L = ((Ar[g][:, None, :] * Zr[None, :, :]).reshape(gm * ng, r) @ Tm
                 ).reshape(gm, ng, r).transpose(1, 0, 2)          # (ng, gm, r)
            Y = Ar * Zr[g][None, None, :]                         # (ng, gm, r)
            Kp[g] = np.matmul(L, Y.transpose(0, 2, 1)).transpose(1, 0, 2)
        return self._unpad(Kp.reshape(ng * gm, ng * gm))


def _cholesky(M: np.ndarray) -> tuple[np.ndarray, bool]:  # the factor and its triangle
    """Cholesky factor of a symmetric positive (semi)definite ``M`` for ``cho_solve``, with a
    tiny diagonal shift where the plain one fails (raises LinAlgError when that fails too)."""
    try:
        return cholesky(M), False
    except np.linalg.LinAlgError:
        shift = 1e-14 * max(float(np.trace(M)) / max(M.shape[0], 1), 1e-300)
        return cholesky(M + shift * np.eye(M.shape[0])), False


def _tri(fac: tuple[np.ndarray, bool], B: np.ndarray, trans: bool) -> np.ndarray:
    """``L^-1 B`` (``trans``: ``L^-T B``) for the Cholesky factor ``fac`` = ``(c, lower)``
    of :func:`_cholesky` (``M = L L^T``)."""
    c, lower = fac
    # M = L L^T with L = c (lower) or c^T (upper)
    if lower:
        return solve_triangular(c, B, lower=True, trans=1 if trans else 0)
    return solve_triangular(c, B, lower=False, trans=0 if trans else 1)


def spd_solver(M: np.ndarray, refine: int = 2,
               factor: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]] | None = None
               ) -> Callable[[np.ndarray], np.ndarray]:
    """``rhs -> M^-1 rhs`` for a symmetric positive semidefinite ``M`` (n, n) that may be
    indefinite in its last bits (an interior point's Newton matrix near the end, entries
    spread over many orders of magnitude).

    ``M`` is scaled to unit diagonal, factored by Cholesky with the smallest shift of
    ``0, 1e-14, 1e-12, ..., 1e-6`` (relative to the unit diagonal) that succeeds, and each
    solve is refined ``refine`` times against ``M`` itself (the shifted factor as the
    preconditioner; the refinement stops where the residual stops falling).  Raises
    LinAlgError when even the largest shift fails (``M`` not semidefinite).  ``factor``
    (optional) maps a matrix to the solve with its Cholesky factor (e.g. the ``solve`` of
    :class:`._linalg.CholeskyFactor`, a buffer kept across calls); :func:`._linalg.cholesky`
    and :func:`._linalg.cho_solve` otherwise.
    """
    if factor is None:
        def factor(X: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            return partial(cho_solve, (cholesky(X), False))

    d = np.sqrt(np.maximum(np.diag(M), 1e-300))
    Ms = M / d[:, None] / d[None, :]
    n = M.shape[0]
    fac = None
    shift = 0.0
    for shift in (0.0, 1e-14, 1e-12, 1e-10, 1e-8, 1e-6):
        try:
            fac = factor(Ms + shift * np.eye(n) if shift else Ms)
            break
        except np.linalg.LinAlgError:
            continue
    if fac is None:
        raise np.linalg.LinAlgError("matrix is not positive semidefinite")
    steps = refine if shift else 0

    def solve(rhs: np.ndarray) -> np.ndarray:
        bs = rhs / d if rhs.ndim == 1 else rhs / d[:, None]
        x = fac(bs)
        if steps:
            r = bs - Ms @ x
            nr = float(np.linalg.norm(r))
            for _ in range(steps):
                x2 = x + fac(r)
                r2 = bs - Ms @ x2
                n2 = float(np.linalg.norm(r2))
                if n2 >= nr:
                    break
                x, r, nr = x2, r2, n2
        return x / d if rhs.ndim == 1 else x / d[:, None]  # type: ignore[no-any-return]

    return solve


def stalled(gaps: list[float], mus: list[float]) -> bool:
    """Whether an interior point has stopped making progress.

    ``gaps`` holds the best certified gap after each iteration, ``mus`` the barrier
    parameter.  Near the end (best gap below 1e-6) the gap alone decides: no 10% fall in 5
    iterations.  Far from it a relative gap near 1 falls slowly while the iterates still
    move, so the run stalls only when neither the gap nor ``mu`` fell by 10% in 10
    iterations (the iteration cap bounds the rest).
    """
    best = gaps[-1]
    if best < 1e-6:
        return len(gaps) > 4 and best > 0.9 * gaps[-5]
    return len(gaps) > 9 and best > 0.9 * gaps[-10] and mus[-1] > 0.9 * mus[-10]
