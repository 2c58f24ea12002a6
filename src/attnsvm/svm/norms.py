"""Norms of the attention SVMs and their duals.

``fro`` (Frobenius / Euclidean), ``nuc`` (nuclear, dual: spectral), ``lp`` (entrywise
``l_p``, dual: entrywise ``l_q`` with ``1/p + 1/q = 1``), ``linf`` (entrywise max norm, dual:
entrywise ``l_1``; sign descent) and ``spec`` (spectral, dual: nuclear; spectral descent, Muon).
"""

from __future__ import annotations

import numpy as np

from .._numerics import row_scale, safe_norm
from .._validation import check_choice
from ..exceptions import InvalidParameterError

__all__ = ["NORMS", "norm_value", "dual_norm_value", "check_norm", "safe_norm", "row_scale"]

NORMS = ("fro", "nuc", "lp", "linf", "spec")


def check_norm(norm: str, p: float | None = None) -> tuple[str, float | None]:
    """Validate a norm name and its ``p`` (only for ``lp``, ``p > 1``)."""
    check_choice("norm", norm, NORMS)
    if norm == "lp":
        if p is None or not np.isfinite(p) or p <= 1:
            raise InvalidParameterError(
                f"The 'p' parameter of the lp norm must be a finite number > 1. Got {p!r} instead."
            )
        return norm, float(p)
    return norm, None


def norm_value(W: np.ndarray, norm: str, p: float | None = None) -> float:
    """``||W||`` in the named norm (vectors: ``nuc`` falls back to Euclidean)."""
    if norm == "fro" or (norm == "nuc" and W.ndim == 1):
        return safe_norm(W)
    if norm == "nuc":
        return float(np.linalg.svd(W, compute_uv=False).sum())
    if norm == "linf":
        return float(np.max(np.abs(W))) if W.size else 0.0
    if norm == "spec":
        return _spectral(W)
    assert p is not None
    return safe_norm(W, p)


def _spectral(W: np.ndarray) -> float:
    if W.ndim == 1:
        return safe_norm(W)
    return float(np.linalg.svd(W, compute_uv=False).max()) if W.size else 0.0


def dual_norm_value(M: np.ndarray, norm: str, p: float | None = None) -> float:
    """The dual norm of ``M``: Frobenius, spectral (of ``nuc``), entrywise ``l_q`` (of
    ``lp``), entrywise ``l_1`` (of ``linf``) or nuclear (of ``spec``)."""
    if norm == "fro" or (norm == "nuc" and M.ndim == 1):
        return safe_norm(M)
    if norm == "spec" and M.ndim == 1:
        return safe_norm(M)
    if norm == "nuc":
        return _spectral(M)
    if norm == "linf":
        return float(np.sum(np.abs(M)))
    if norm == "spec":
        return float(np.linalg.svd(M, compute_uv=False).sum())
    assert p is not None
    return safe_norm(M, p / (p - 1.0))
