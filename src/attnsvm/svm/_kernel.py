"""Constraint kernels: the Gram matrix of the constraint normals, computed on demand.

A hard-margin SVM without bias, ``min ||w||^2 / 2 s.t. <w, g_k> >= b_k``, depends on the
normals ``g_k`` only through ``K_kl = <g_k, g_l>`` and on the primal through
``w = sum_k lambda_k g_k``.  A kernel object gives blocks of ``K`` and constraint values
``<w, g_k>`` for a ``w`` given by its dual weights, without forming ``K`` whole.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["ConstraintKernel", "RankOneKernel", "VectorKernel"]


class ConstraintKernel(Protocol):
    """What the working-set solver needs from a family of constraint normals."""

    m: int

    def diag(self) -> np.ndarray:
        """``K_kk`` for all k, shape (m,)."""
        ...

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``K[rows][:, cols]``, shape (len(rows), len(cols))."""
        ...

    def primal(self, idx: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """``w = sum_j lam_j g_{idx_j}`` in the primal space."""
        ...

    def values(self, w: np.ndarray) -> np.ndarray:
        """``<w, g_k>`` for every k, shape (m,)."""
        ...


class RankOneKernel:
    """Normals ``g_k = a_k z_k^T`` (matrices): ``K_kl = (a_k . a_l)(z_k . z_l)``.

    Parameters
    ----------
    A : ndarray, shape (m, d1)
        Left factors (token differences).
    Zc : ndarray, shape (m, d2)
        Right factors (queries).
    group : ndarray of int, shape (m,), optional
        Constraints with the same group share the same ``z``; values are then computed as
        ``a_k . (W z_g)`` with one ``W z`` per group (cost ``G d1 d2 + m d1``).
    """

    def __init__(self, A: np.ndarray, Zc: np.ndarray, group: np.ndarray | None = None) -> None:
        self.A = np.ascontiguousarray(A, dtype=np.float64)
        self.Zc = np.ascontiguousarray(Zc, dtype=np.float64)
        self.m = int(self.A.shape[0])
        if group is not None:
            uniq, first, inv = np.unique(group, return_index=True, return_inverse=True)
            self._Zg: np.ndarray | None = self.Zc[first]
            self._inv: np.ndarray | None = inv
        else:
            self._Zg = None
            self._inv = None

    def diag(self) -> np.ndarray:
        return np.einsum("kd,kd->k", self.A, self.A) * np.einsum("kd,kd->k", self.Zc, self.Zc)

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return (self.A[rows] @ self.A[cols].T) * (self.Zc[rows] @ self.Zc[cols].T)

    def primal(self, idx: np.ndarray, lam: np.ndarray) -> np.ndarray:
        return self.A[idx].T @ (lam[:, None] * self.Zc[idx])  # (d1, d2)

    def values(self, w: np.ndarray) -> np.ndarray:
        if self._Zg is not None and self._inv is not None:
            Wz = self._Zg @ w.T  # (G, d1): W z_g
            return np.einsum("kd,kd->k", self.A, Wz[self._inv])
        return np.einsum("kd,kd->k", self.A, self.Zc @ w.T)


class VectorKernel:
    """Normals ``g_k`` given as rows of a matrix ``G`` (m, p): ``K = G G^T``."""

    def __init__(self, G: np.ndarray) -> None:
        self.G = np.ascontiguousarray(G, dtype=np.float64)
        self.m = int(self.G.shape[0])

    def diag(self) -> np.ndarray:
        return np.einsum("kp,kp->k", self.G, self.G)

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return self.G[rows] @ self.G[cols].T

    def primal(self, idx: np.ndarray, lam: np.ndarray) -> np.ndarray:
        return self.G[idx].T @ lam

    def values(self, w: np.ndarray) -> np.ndarray:
        return self.G @ w
