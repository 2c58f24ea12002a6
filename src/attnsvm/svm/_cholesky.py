"""A growable lower Cholesky factor with O(k^2) append and delete.

Used by the working-set SVM solver to keep ``K_SS = L L^T`` of the active constraints.
"""

from __future__ import annotations

import numpy as np

from ._linalg import solve_triangular

__all__ = ["GrowingCholesky"]


class GrowingCholesky:
    """Lower-triangular factor ``L`` (k, k) of a positive definite matrix, grown row by row.

    Parameters
    ----------
    capacity : int
        Initial buffer size; the buffer doubles when full.
    """

    def __init__(self, capacity: int = 64) -> None:
        self._buf = np.zeros((max(capacity, 1), max(capacity, 1)))
        self.k = 0

    @classmethod
    def from_factor(cls, L: np.ndarray) -> GrowingCholesky:
        """Wrap an existing lower factor (k, k)."""
        k = L.shape[0]
        g = cls(max(2 * k, 64))
        g._buf[:k, :k] = np.tril(L)
        g.k = k
        return g

    @property
    def L(self) -> np.ndarray:
        """The current factor, a (k, k) view."""
        return self._buf[: self.k, : self.k]

    def solve(self, b: np.ndarray) -> np.ndarray:
        """Solve ``L L^T x = b`` for x, shape (k,)."""
        if self.k == 0:
            return np.zeros(0)
        L = self.L
        y = solve_triangular(L, b, lower=True)
        return solve_triangular(L, y, lower=True, trans="T")

    def backward(self, y: np.ndarray) -> np.ndarray:
        """Solve ``L^T x = y``."""
        if self.k == 0:
            return np.zeros(0)
        return solve_triangular(self.L, y, lower=True, trans="T")

    def forward(self, b: np.ndarray) -> np.ndarray:
        """Solve ``L y = b``."""
        if self.k == 0:
            return np.zeros(0)
        return solve_triangular(self.L, b, lower=True)

    def append(self, y: np.ndarray, diag: float) -> None:
        """Append a row: ``y = L^{-1} c`` for the new column ``c``, ``diag = sqrt(kpp - y.y)``."""
        if self.k == self._buf.shape[0]:
            new = np.zeros((2 * self.k, 2 * self.k))
            new[: self.k, : self.k] = self.L
            self._buf = new
        self._buf[self.k, : self.k] = y
        self._buf[self.k, self.k] = diag
        self._buf[: self.k, self.k] = 0.0
        self.k += 1

    def delete(self, j: int) -> None:
        """Remove row and column ``j`` of the factored matrix, in O((k - j)^2)."""
        k = self.k
        B = self._buf
        x = B[j + 1 : k, j].copy()
        # shift rows below j up, and columns right of j left
        B[j : k - 1, :j] = B[j + 1 : k, :j]
        B[j : k - 1, j : k - 1] = B[j + 1 : k, j + 1 : k]
        B[k - 1, :k] = 0.0
        B[:k, k - 1] = 0.0
        # rank-one update of the trailing block: L22 L22^T + x x^T
        m = k - 1 - j
        L22 = B[j : k - 1, j : k - 1]
        for i in range(m):
            lii = L22[i, i]
            r = np.hypot(lii, x[i])
            c = r / lii
            s = x[i] / lii
            L22[i, i] = r
            if i + 1 < m:
                col = L22[i + 1 :, i]
                col += s * x[i + 1 :]
                col /= c
                x[i + 1 :] = c * x[i + 1 :] - s * col
        self.k = k - 1
