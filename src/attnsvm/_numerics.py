"""Overflow-safe norms shared by the instance layer and the solvers, and :func:`correlation`,
the one alignment measure of every report (the ground floor: imports nothing of attnsvm)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["safe_norm", "row_scale", "row_space_basis", "svd", "correlation"]


def safe_norm(x: np.ndarray, p: float = 2.0) -> float:
    """Entrywise ``l_p`` norm computed on ``x / max|x|``, so that neither overflows nor
    underflows for any finite input (Att-SVM solutions scale like ``1 / (|x| |z|)``)."""
    scale = float(np.max(np.abs(x))) if x.size else 0.0
    if scale == 0.0 or not np.isfinite(scale):
        return scale
    y = np.abs(x) / scale
    return scale * float(np.sum(y**p) ** (1.0 / p)) if p != 2.0 else scale * float(
        np.sqrt(np.sum(y * y)))


def row_scale(M: np.ndarray) -> float:
    """Largest row norm of ``M`` (m, d), computed without overflow; 1 for a zero matrix.

    The Att-SVM is scale-covariant (``A -> A / sA``, ``Z -> Z / sZ`` gives ``W -> sA sZ W``),
    so the solvers work on constraint factors divided by their row scales.
    """
    peak = float(np.max(np.abs(M))) if M.size else 0.0
    if peak == 0.0:
        return 1.0
    return peak * float(np.max(np.linalg.norm(M / peak, axis=1)))


def row_space_basis(M: np.ndarray, rtol: float = 1e-12) -> np.ndarray:
    """Orthonormal basis of the row space of ``M`` (m, d): shape (d, r), ``r`` the number of
    singular values above ``rtol`` times the largest (``(d, 0)`` for an empty ``M``)."""
    if M.shape[0] == 0:
        return np.zeros((M.shape[1], 0))
    _, s, Vt = svd(M)
    r = int(np.sum(s > rtol * (s[0] if s.size else 0.0)))
    return Vt[:r].T


def svd(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``(U, s, Vt)`` of a finite (m, n) matrix: LAPACK's divide and conquer
    (``gesdd``, NumPy's), and the QR-iteration driver ``gesvd`` where that does not converge.

    ``gesdd`` fails now and then on finite matrices: on a SmolLM2 layer-18 head's working set
    it stopped a 17-minute probe with "SVD did not converge".
    """
    try:
        return np.linalg.svd(M, full_matrices=False)
    except np.linalg.LinAlgError:
        if not np.all(np.isfinite(M)):
            raise
        from scipy.linalg import svd as scipy_svd

        U, s, Vt = scipy_svd(M, full_matrices=False, lapack_driver="gesvd", check_finite=False)
        return U, s, Vt


def correlation(A: Any, B: Any) -> float:
    """Correlation ``<A, B> / (||A||_F ||B||_F)`` of two arrays of one size, in float64.

    Parameters
    ----------
    A, B : array_like or None
        Any shape, flattened (e.g. (d, d) key-query matrices or (d,) prompts).

    Returns
    -------
    float
        In [-1, 1]; NaN when either is ``None``, zero or not finite.
    """
    if A is None or B is None:
        return float("nan")
    a = np.asarray(A, dtype=np.float64).ravel()
    b = np.asarray(B, dtype=np.float64).ravel()
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        den = float(np.linalg.norm(a) * np.linalg.norm(b))
    if den > 0 and np.isfinite(den):
        return float(a @ b / den)
    # Zero, or norms whose product over/underflows: scale by the largest entries first.
    sa, sb = np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0)
    if not (np.isfinite(sa) and np.isfinite(sb)) or sa == 0 or sb == 0:
        return float("nan")
    a, b = a / sa, b / sb
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
