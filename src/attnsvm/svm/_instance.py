"""An instance's Att-SVM through any constraint-set solver (the one place this is written)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..instance import Instance
from .solution import SVMSolution

__all__ = ["solve_on_instance"]


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
