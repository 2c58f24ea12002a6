"""Cholesky factors and triangular solves for the Frobenius working set, with or without SciPy.

The working-set Frobenius solver (:mod:`._working_set`, :mod:`._block_pivoting`,
:mod:`._cholesky`, :mod:`._dense_qp`) needs ``cholesky``, ``cho_solve`` and
``solve_triangular``.  By default they are SciPy's, called with the same arguments as always
(the Frobenius and nuclear answers stay the same bit for bit).  Importing ``scipy.linalg``
costs about 0.2 s of start-up (it pulls in ``numpy.f2py`` and ``numpy.testing``), most of an
``attnsvm solve --norm spec`` process at (40, 12, 24); the spectral solver therefore runs the
Frobenius stages of small problems (those of its dense interior point) inside
:func:`numpy_backend`, where the same functions use NumPy alone:
``numpy.linalg.cholesky`` and a blocked substitution whose diagonal blocks are solved by
``numpy.linalg.solve`` (backward stable; agrees with LAPACK's ``trtrs`` to rounding).

The SciPy import below stays inside the functions on purpose: the spectral solve process must
not import SciPy (``tests/test_spec_speed_path.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

__all__ = ["CholeskyFactor", "cho_solve", "cholesky", "numpy_backend", "solve_triangular",
           "tri_solve"]

_NUMPY: ContextVar[bool] = ContextVar("attnsvm_numpy_linalg", default=False)

#: diagonal block size of the blocked substitution
_BLOCK = 64


@contextmanager
def numpy_backend() -> Iterator[None]:
    """Within this block the functions of this module use NumPy only (never import SciPy)."""
    token = _NUMPY.set(True)
    try:
        yield
    finally:
        _NUMPY.reset(token)


def tri_solve(T: np.ndarray, B: np.ndarray, lower: bool) -> np.ndarray:
    """``T^-1 B`` for a triangular ``T`` (n, n) and ``B`` (n,) or (n, k), NumPy only.

    Blocked substitution: each diagonal block of at most :data:`_BLOCK` rows is solved by
    ``numpy.linalg.solve``, the rest are matrix products.  Raises ``LinAlgError`` when ``T``
    is singular.
    """
    n = T.shape[0]
    if n <= _BLOCK:
        return np.linalg.solve(T, B)
    X = np.empty(B.shape, dtype=np.result_type(T, B, 1.0))
    starts = list(range(0, n, _BLOCK))
    if not lower:
        starts.reverse()
    for i0 in starts:
        i1 = min(i0 + _BLOCK, n)
        if lower:
            rhs = B[i0:i1] - T[i0:i1, :i0] @ X[:i0] if i0 else B[i0:i1]
        else:
            rhs = B[i0:i1] - T[i0:i1, i1:] @ X[i1:] if i1 < n else B[i0:i1]
        X[i0:i1] = np.linalg.solve(T[i0:i1, i0:i1], rhs)
    return X


class CholeskyFactor:
    """``M = L L^T`` by a blocked, left-looking factorization, NumPy only.

    Each diagonal block is ``numpy.linalg.cholesky`` of its updated block; the block column
    below it solves ``L_kk X^T = panel^T`` (``numpy.linalg.solve``, backward stable); solves
    with ``M`` are blocked substitutions (:func:`tri_solve`'s scheme).  Every step is a
    backward-stable one, as in LAPACK's ``potrf``/``potrs`` (explicit inverses of the diagonal
    blocks, tried first, lost the interior point's last digits on ill-conditioned Newton
    matrices).  It writes into ``out`` when given: a buffer kept across calls avoids the page
    faults of fresh arrays, which on this sandbox cost as much as
    ``numpy.linalg.cholesky``'s arithmetic.

    Parameters
    ----------
    M : ndarray, shape (n, n)
        Symmetric positive definite (its lower triangle is read); raises ``LinAlgError``.
    out : ndarray, shape (n, n), optional
        Buffer for ``L`` (overwritten; must not be ``M``).
    """

    def __init__(self, M: np.ndarray, out: np.ndarray | None = None) -> None:
        n = M.shape[0]
        L = np.empty((n, n)) if out is None else out
        for i0 in range(0, n, _BLOCK):
            i1 = min(i0 + _BLOCK, n)
            left = L[i0:i1, :i0]
            Lkk = np.linalg.cholesky(M[i0:i1, i0:i1] - left @ left.T if i0 else M[i0:i1, i0:i1])
            L[i0:i1, i0:i1] = Lkk
            L[i0:i1, i1:] = 0.0
            if i1 < n:
                panel = M[i1:, i0:i1] - L[i1:, :i0] @ left.T if i0 else M[i1:, i0:i1]
                L[i1:, i0:i1] = np.linalg.solve(Lkk, panel.T).T
        self.L = L

    def solve(self, B: np.ndarray) -> np.ndarray:
        """``M^-1 B`` for ``B`` (n,) or (n, k)."""
        return tri_solve(self.L.T, tri_solve(self.L, B, True), False)


def _trans(trans: int | str) -> bool:
    return trans in (1, 2, "T", "C")


def solve_triangular(a: np.ndarray, b: np.ndarray, *, lower: bool = False,
                     trans: int | str = 0) -> np.ndarray:
    """``op(a)^-1 b`` for a triangular ``a`` (n, n) (``op`` = transpose when ``trans`` is 1
    or "T"); ``b`` (n,) or (n, k).  SciPy's ``solve_triangular`` unless in
    :func:`numpy_backend`."""
    if _NUMPY.get():
        t = _trans(trans)
        return tri_solve(a.T if t else a, b, lower != t)
    from scipy.linalg import solve_triangular as sp_solve_triangular

    return sp_solve_triangular(a, b, lower=lower, trans=trans,  # type: ignore[no-any-return]
                               check_finite=False)


def cholesky(a: np.ndarray, *, lower: bool = False) -> np.ndarray:
    """Cholesky factor (lower ``L`` with ``a = L L^T``, else upper ``R = L^T``) of a symmetric
    positive definite ``a`` (n, n), read from that triangle; raises ``LinAlgError``."""
    if _NUMPY.get():
        L = np.linalg.cholesky(a if lower else a.T)  # the upper triangle of a is a.T's lower
        return L if lower else L.T
    from scipy.linalg import cholesky as sp_cholesky

    return sp_cholesky(a, lower=lower, check_finite=False)  # type: ignore[no-any-return]


def cho_solve(fac: tuple[np.ndarray, bool], b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` from ``fac = (c, lower)``, the factor of :func:`cholesky`."""
    if _NUMPY.get():
        c, low = fac
        if low:
            return tri_solve(c.T, tri_solve(c, b, True), False)
        return tri_solve(c, tri_solve(c.T, b, True), False)
    from scipy.linalg import cho_solve as sp_cho_solve

    return sp_cho_solve(fac, b, check_finite=False)  # type: ignore[no-any-return]
