"""Constraint families for vector SVMs (prompt p-SVM, head v-SVM).

The matrix Att-SVM uses :class:`attnsvm.instance.ConstraintSet` (rank-one normals
``a_k z_k^T``); the vector SVMs here use plain normals ``g_k``, rows of ``G``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["VectorConstraints"]


@dataclass(frozen=True)
class VectorConstraints:
    """Constraints ``<w, G[k]> >= b_k`` on a vector ``w`` in ``R^p``.

    Attributes
    ----------
    G : ndarray, shape (m, p)
    index : ndarray, shape (m, 2)
        ``(i, t)`` of each constraint (``t = -1`` when the constraint is per sequence).
    """

    G: np.ndarray
    index: np.ndarray

    @property
    def m(self) -> int:
        return int(self.G.shape[0])

    @property
    def seq(self) -> np.ndarray:
        return self.index[:, 0]

    def values(self, w: np.ndarray) -> np.ndarray:
        """``G w``, shape (m,)."""
        return self.G @ w

    def combine(self, weights: np.ndarray) -> np.ndarray:
        """``sum_k weights_k G[k]``, shape (p,)."""
        return self.G.T @ np.asarray(weights)

    def subset(self, mask: np.ndarray) -> VectorConstraints:
        return VectorConstraints(G=self.G[mask], index=self.index[mask])
