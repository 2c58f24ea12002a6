"""An instance's Att-SVM through any constraint-set solver (the one place this is written)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import as_float_array
from ..constraints import ConstraintSet
from ..exceptions import InvalidInputError
from ..instance import Instance
from .solution import INFEASIBLE, SVMSolution

__all__ = ["solve_on_instance", "validated_constraints", "infeasible_answer"]


def validated_constraints(constraints: ConstraintSet) -> ConstraintSet:
    """The constraint set with float arrays ``A`` (m, d1), ``Zc`` (m, d2), ``b`` (m,), checked
    (one-line :class:`InvalidInputError` naming the field otherwise; ``m >= 1``)."""
    A = as_float_array("A", constraints.A, 2)
    Zc = as_float_array("Zc", constraints.Zc, 2, (A.shape[0], None))
    m = A.shape[0]
    if m == 0:
        raise InvalidInputError("The constraint set must hold at least one constraint. Got m=0.")
    bb = as_float_array("b", constraints.rhs, 1, (m,))
    idx = np.asarray(constraints.index, dtype=np.int64)
    return ConstraintSet(A=A, Zc=Zc, index=idx, b=bb, n_eq=int(constraints.n_eq))


def infeasible_answer(fro: SVMSolution, norm: str, cset: ConstraintSet, solver: str,
                      start: float) -> SVMSolution:
    """The ``norm`` SVM of ``cset`` that the Frobenius solution ``fro`` proved infeasible:
    feasibility does not depend on the norm, so its Farkas certificate stands."""
    sol = SVMSolution(INFEASIBLE, norm, None, cset, cset.rhs, np.zeros(cset.m),
                      certificate=fro.certificate, n_eq=int(cset.n_eq), solver=solver)
    sol.seconds = time.perf_counter() - start
    return sol


def solve_on_instance(fn: Callable[..., SVMSolution], instance: Instance,
                      alpha: np.ndarray | None, /, **options: Any) -> SVMSolution:
    """Run ``fn(instance.constraints(alpha), **options)`` and attach the token grid.

    Parameters
    ----------
    fn : callable
        A constraint-set solver (``solve_fro_constraints``, ``solve_nuc_constraints``, ...).
    instance : Instance
    alpha : ndarray of int, shape (n,), optional
        Token choice; default the instance's ``alpha``, else its optimal tokens (validated).
    **options
        Passed to ``fn``.

    Returns
    -------
    SVMSolution
        With ``alpha``, ``shape = (n, T)`` and ``seconds`` covering the whole call.
    """
    t0 = time.perf_counter()
    a = instance.token_choice() if alpha is None else instance.check_alpha(alpha)
    sol = fn(instance.constraints(a), **options)
    sol.alpha = np.asarray(a, dtype=np.int64).copy()
    sol.shape = (instance.n, instance.T)
    sol.seconds = time.perf_counter() - t0
    return sol
