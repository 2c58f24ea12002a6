"""Nuclear-norm Att-SVM ``W_*^mm`` (the limit direction of the (K, Q) parametrization).

    W_*^mm = argmin ||W||_*  s.t.  A[k]^T W Zc[k] >= b_k   (= b_k for k < n_eq).
"""

from __future__ import annotations

import time

import numpy as np

from ..constraints import ConstraintSet
from ..instance import Instance
from .conic import solve_conic
from .solution import SVMSolution

__all__ = ["solve_nuc", "solve_nuc_constraints"]


def solve_nuc_constraints(constraints: ConstraintSet, *, tol: float = 1e-6,
                          warm_start: SVMSolution | None = None) -> SVMSolution:
    """Nuclear-norm SVM over a constraint set.

    Parameters
    ----------
    constraints : ConstraintSet
    tol : float
        KKT tolerance for status ``optimal``.
    warm_start : SVMSolution, optional
        A related problem's solution.
    """
    return solve_conic(constraints, norm="nuc", tol=tol)


def solve_nuc(instance: Instance, alpha: np.ndarray | None = None, *, tol: float = 1e-6,
              warm_start: SVMSolution | None = None) -> SVMSolution:
    """Nuclear-norm Att-SVM ``W_*^mm`` of an instance for token choice ``alpha``.

    Parameters
    ----------
    instance : Instance
    alpha : ndarray of int, shape (n,), optional
        Default :meth:`Instance.token_choice`.
    tol : float
    warm_start : SVMSolution, optional

    Returns
    -------
    SVMSolution
        ``W`` of shape (d, d), ``alpha`` and ``shape = (n, T)``.
    """
    t0 = time.perf_counter()
    a = instance.token_choice() if alpha is None else np.asarray(alpha, dtype=np.int64)
    sol = solve_nuc_constraints(instance.constraints(a), tol=tol, warm_start=warm_start)
    sol.alpha = a.copy()
    sol.shape = (instance.n, instance.T)
    sol.seconds = time.perf_counter() - t0
    return sol
