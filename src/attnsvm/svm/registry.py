"""One entry point for every norm: ``solve(problem, norm=...)`` over a plain registry.

The command line, the estimator, the experiments and the trainers' comparisons all choose a
solver by norm here, so the choice is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_choice
from ..constraints import ConstraintSet
from ..instance import Instance
from ._instance import solve_on_instance
from .conic import solve_conic
from .frobenius import solve_fro_constraints
from .linf import solve_linf_constraints
from .norms import NORMS, check_norm
from .nuclear import solve_nuc_constraints
from .solution import SVMSolution
from .spectral import solve_spec_constraints

__all__ = ["solve", "SOLVERS"]


def _lp(constraints: ConstraintSet, *, p: float | None = None, tol: float = 1e-6,
        warm_start: SVMSolution | None = None, **options: Any) -> SVMSolution:
    return solve_conic(constraints, norm="lp", p=p, tol=tol, **options)


#: norm -> function(constraints, **options) -> SVMSolution
SOLVERS: dict[str, Callable[..., SVMSolution]] = {
    "fro": solve_fro_constraints,
    "nuc": solve_nuc_constraints,
    "lp": _lp,
    "linf": solve_linf_constraints,
    "spec": solve_spec_constraints,
}


def solve(problem: Instance | ConstraintSet, norm: str = "fro", *,
          alpha: np.ndarray | None = None, p: float | None = None,
          **options: Any) -> SVMSolution:
    """Solve the attention SVM of an instance (or of a constraint set) in the named norm.

    Parameters
    ----------
    problem : Instance or ConstraintSet
        An instance (its Att-SVM for ``alpha``) or explicit constraints.
    norm : {"fro", "nuc", "lp", "linf", "spec"}
        Frobenius (W parametrization), nuclear ((K, Q)), entrywise l_p (mirror descent),
        entrywise max norm (sign descent), spectral (spectral descent, Muon).
    alpha : ndarray of int, shape (n,), optional
        Token choice for an instance (default: its ``alpha``, else the optimal tokens).
    p : float, optional
        Exponent of the ``lp`` norm.
    **options
        Passed to the norm's solver (``tol``, ``warm_start``, ...).

    Returns
    -------
    SVMSolution

    Examples
    --------
    >>> from attnsvm import random_instance
    >>> sol = solve(random_instance(4, 5, 6, seed=0), norm="fro")
    >>> sol.status, sol.is_optimal(1e-8)
    ('optimal', True)
    """
    check_choice("norm", norm, NORMS)
    norm, p = check_norm(norm, p)
    if norm == "lp":
        options["p"] = p
    fn = SOLVERS[norm]
    if isinstance(problem, Instance):
        return solve_on_instance(fn, problem, alpha, **options)
    return fn(problem, **options)
