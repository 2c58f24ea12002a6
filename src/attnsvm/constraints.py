"""The constraint set: the problem object every attention SVM solver takes.

An attention SVM is ``min ||W|| s.t. <W, G_k> = b_k (k < n_eq), <W, G_k> >= b_k (k >= n_eq)``.
Two families of normals occur:

* :class:`ConstraintSet`: rank-one matrix normals ``G_k = a_k z_k^T`` (the Att-SVM, W^dir,
  the Graph-SVM), ``a_k = x_{i,alpha_i} - x_it`` and ``z_k = z_i``;
* :class:`VectorConstraints`: vector normals ``g_k`` (prompt p-SVM, head v-SVM).

Each is also the *kernel* the exact working-set solver needs: ``K_kl = <G_k, G_l>`` by blocks,
the primal ``sum_k lam_k G_k`` and the constraint values ``<W, G_k>``, without forming the
``m x d^2`` constraint matrix.  This module sits below :mod:`attnsvm.instance` and
:mod:`attnsvm.svm`, so neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np

__all__ = ["ConstraintKernel", "ConstraintSet", "VectorConstraints"]


class ConstraintKernel(Protocol):
    """What the working-set solver needs from a family of constraint normals."""

    @property
    def m(self) -> int:
        """Number of constraints."""
        ...

    def diag(self) -> np.ndarray:
        """``K_kk`` for all k, shape (m,)."""
        ...

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``K[rows][:, cols]``, shape (len(rows), len(cols))."""
        ...

    def primal(self, idx: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """``sum_j lam_j G_{idx_j}`` in the primal space."""
        ...

    def values(self, w: np.ndarray) -> np.ndarray:
        """``<w, G_k>`` for every k, shape (m,)."""
        ...


def _default_b(b: np.ndarray | None, m: int) -> np.ndarray:
    return np.ones(m) if b is None else np.asarray(b, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ConstraintSet:
    """Rank-one constraints ``A[k]^T W Zc[k] (= or >=) b_k`` on a (d1, d2) matrix ``W``.

    Attributes
    ----------
    A : ndarray, shape (m, d1)
        Left factors (token differences ``x_{i, alpha_i} - x_it``).
    Zc : ndarray, shape (m, d2)
        Right factors (the query ``z_i`` of each constraint's sequence).
    index : ndarray of int, shape (m, 2)
        ``(i, t)`` of each constraint.  Rows with the same ``i`` must share ``Zc``: values are
        priced as ``a_k . (W z_i)`` with one ``W z_i`` per sequence (``O(n d1 d2 + m d1)``).
    b : ndarray, shape (m,), optional
        Right-hand sides (default ones).
    n_eq : int
        The first ``n_eq`` constraints are equalities.
    """

    A: np.ndarray
    Zc: np.ndarray
    index: np.ndarray
    b: np.ndarray | None = field(default=None)
    n_eq: int = 0

    @classmethod
    def from_arrays(cls, A: np.ndarray, Zc: np.ndarray, index: np.ndarray | None = None,
                    b: np.ndarray | None = None, n_eq: int = 0) -> ConstraintSet:
        """Build from raw factors; without ``index`` every row is its own group ``(k, 0)``."""
        m = int(np.shape(A)[0])
        idx = (np.stack([np.arange(m), np.zeros(m, dtype=np.int64)], 1) if index is None
               else np.asarray(index, dtype=np.int64))
        return cls(A=np.asarray(A, dtype=np.float64), Zc=np.asarray(Zc, dtype=np.float64),
                   index=idx, b=b, n_eq=n_eq)

    # ------------------------------------------------------------------ shape
    @property
    def m(self) -> int:
        """Number of constraints."""
        return int(self.A.shape[0])

    @property
    def seq(self) -> np.ndarray:
        """``index[:, 0]``, the sequence (group) of each constraint."""
        return self.index[:, 0]

    @property
    def rhs(self) -> np.ndarray:
        """Right-hand sides, shape (m,)."""
        return _default_b(self.b, self.m)

    @cached_property
    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct queries ``(Zq, inv)``: ``Zq`` (g, d2), one per sequence in ``index``
        order, and ``inv`` (m,) the row of ``Zq`` each constraint uses."""
        _, first, inv = np.unique(self.seq, return_index=True, return_inverse=True)
        return np.ascontiguousarray(self.Zc[first]), inv.ravel()

    # ----------------------------------------------------------------- values
    def values(self, W: np.ndarray) -> np.ndarray:
        """Constraint values ``A[k]^T W Zc[k]`` for a (d1, d2) matrix ``W``; shape (m,)."""
        Zg, inv = self.groups
        if Zg.shape[0] < self.m:
            return np.einsum("kd,kd->k", self.A, (Zg @ W.T)[inv])
        return np.einsum("kd,kd->k", self.A, self.Zc @ W.T)

    def combine(self, weights: np.ndarray) -> np.ndarray:
        """``sum_k weights_k A[k] Zc[k]^T``, shape (d1, d2)."""
        return self.A.T @ (np.asarray(weights)[:, None] * self.Zc)

    def normal_norms(self) -> np.ndarray:
        """``||a_k z_k^T||_F = ||a_k|| ||z_k||``, shape (m,)."""
        return np.linalg.norm(self.A, axis=1) * np.linalg.norm(self.Zc, axis=1)

    def subset(self, mask: np.ndarray) -> ConstraintSet:
        """The constraints selected by a boolean mask or index array (``b`` kept, ``n_eq``
        recounted)."""
        sel = np.arange(self.m)[mask]
        return ConstraintSet(A=self.A[sel], Zc=self.Zc[sel], index=self.index[sel],
                             b=None if self.b is None else self.rhs[sel],
                             n_eq=int(np.sum(sel < self.n_eq)))

    def scaled(self, sA: float, sZ: float) -> ConstraintSet:
        """The same constraints with ``A / sA`` and ``Zc / sZ`` (``W`` scales by ``sA sZ``)."""
        return ConstraintSet(A=self.A / sA, Zc=self.Zc / sZ, index=self.index, b=self.b,
                             n_eq=self.n_eq)

    # ----------------------------------------------------------------- kernel
    def diag(self) -> np.ndarray:
        """``K_kk = |a_k|^2 |z_k|^2``, shape (m,)."""
        return np.einsum("kd,kd->k", self.A, self.A) * np.einsum("kd,kd->k", self.Zc, self.Zc)

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``K_kl = (a_k . a_l)(z_k . z_l)`` for k in rows, l in cols."""
        return (self.A[rows] @ self.A[cols].T) * (self.Zc[rows] @ self.Zc[cols].T)

    def primal(self, idx: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """``sum_j lam_j a_{idx_j} z_{idx_j}^T``, shape (d1, d2)."""
        return self.A[idx].T @ (lam[:, None] * self.Zc[idx])


@dataclass(frozen=True, eq=False)
class VectorConstraints:
    """Constraints ``<w, G[k]> (= or >=) b_k`` on a vector ``w`` in ``R^p``.

    Attributes
    ----------
    G : ndarray, shape (m, p)
    index : ndarray of int, shape (m, 2)
        ``(i, t)`` of each constraint (``t = -1`` when the constraint is per sequence).
    b : ndarray, shape (m,), optional
    n_eq : int
    """

    G: np.ndarray
    index: np.ndarray
    b: np.ndarray | None = field(default=None)
    n_eq: int = 0

    @property
    def m(self) -> int:
        """Number of constraints."""
        return int(self.G.shape[0])

    @property
    def seq(self) -> np.ndarray:
        return self.index[:, 0]

    @property
    def rhs(self) -> np.ndarray:
        return _default_b(self.b, self.m)

    def values(self, w: np.ndarray) -> np.ndarray:
        """``G w``, shape (m,)."""
        return self.G @ w

    def combine(self, weights: np.ndarray) -> np.ndarray:
        """``sum_k weights_k G[k]``, shape (p,)."""
        return self.G.T @ np.asarray(weights)

    def normal_norms(self) -> np.ndarray:
        """``||g_k||``, shape (m,)."""
        return np.linalg.norm(self.G, axis=1)

    def subset(self, mask: np.ndarray) -> VectorConstraints:
        sel = np.arange(self.m)[mask]
        return VectorConstraints(G=self.G[sel], index=self.index[sel],
                                 b=None if self.b is None else self.rhs[sel],
                                 n_eq=int(np.sum(sel < self.n_eq)))

    def diag(self) -> np.ndarray:
        return np.einsum("kp,kp->k", self.G, self.G)

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return self.G[rows] @ self.G[cols].T

    def primal(self, idx: np.ndarray, lam: np.ndarray) -> np.ndarray:
        return self.G[idx].T @ lam
