"""The Att-SVM's scale covariance, applied to a problem and lifted back from its solution.

Dividing the constraint factors by their row scales, ``A -> A / sA`` and ``Zc -> Zc / sZ``,
multiplies the solution by ``sA sZ`` (``W -> sA sZ W``): every solver works at unit scale, so
that extreme magnitudes neither overflow nor underflow its arithmetic, and lifts its answer
back with :meth:`UnitScale.lift`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._numerics import row_scale
from ..constraints import ConstraintSet

__all__ = ["UnitScale"]


@dataclass(frozen=True)
class UnitScale:
    """The row scales ``sA`` of ``A`` (m, d1) and ``sZ`` of ``Zc`` (m, d2)."""

    sA: float
    sZ: float

    @classmethod
    def of(cls, A: np.ndarray, Zc: np.ndarray) -> UnitScale:
        """The largest row norms of the two factors (1 for a zero factor)."""
        return cls(row_scale(A), row_scale(Zc))

    def apply(self, cset: ConstraintSet) -> ConstraintSet:
        """The constraints at unit scale: ``A / sA``, ``Zc / sZ`` (same ``b``, ``n_eq``)."""
        return cset.scaled(self.sA, self.sZ)

    @property
    def factor(self) -> float:
        """``sA sZ``: the unit-scale solution is this multiple of the original one."""
        return self.sA * self.sZ

    def to_unit(self, W: np.ndarray) -> np.ndarray:
        """A point ``W`` (d1, d2) of the original problem in unit coordinates, ``sA sZ W``."""
        return W * self.factor

    def lift(self, W_unit: np.ndarray) -> np.ndarray:
        """A point of the unit-scale problem back at the original scale, ``W' / (sA sZ)``."""
        return W_unit / self.factor
