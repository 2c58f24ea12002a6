"""One entry point for every norm: ``solve(problem, norm=...)`` over a plain registry.

The command line, the estimator, the experiments and the trainers' comparisons all choose a
solver by norm here, so the choice is written once.  Next to each solver: what a requested
accuracy ``tol`` means for it (:data:`TOLERANCES`, :func:`solver_tol`).  ``warm_start`` and
``solver`` (a backend choice) reach every solver whose signature takes them, and no other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from .._validation import check_choice
from ..constraints import ConstraintSet
from ..instance import Instance
from ._instance import solve_on_instance
from .frobenius import solve_fro_constraints
from .norms import NORMS, check_norm
from .solution import SVMSolution

__all__ = ["solve", "SOLVERS", "TOLERANCES", "solver_tol"]


# The solvers, imported on first use (a solve in one norm loads only its own modules)
def _lp(constraints: ConstraintSet, *, p: float | None = None, tol: float = 1e-6,
        solver: str = "CLARABEL", **options: Any) -> SVMSolution:
    from .conic import solve_conic

    return solve_conic(constraints, norm="lp", p=p, tol=tol, solver=solver, **options)


def _nuc(constraints: ConstraintSet, *, warm_start: Any = None, **options: Any) -> SVMSolution:
    from .nuclear import solve_nuc_constraints

    return solve_nuc_constraints(constraints, warm_start=warm_start, **options)


def _linf(constraints: ConstraintSet, *, warm_start: Any = None, **options: Any
          ) -> SVMSolution:
    from .linf import solve_linf_constraints

    return solve_linf_constraints(constraints, warm_start=warm_start, **options)


def _spec(constraints: ConstraintSet, *, warm_start: Any = None, **options: Any
          ) -> SVMSolution:
    from .spectral import solve_spec_constraints

    return solve_spec_constraints(constraints, warm_start=warm_start, **options)


#: norm -> function(constraints, **options) -> SVMSolution
SOLVERS: dict[str, Callable[..., SVMSolution]] = {
    "fro": solve_fro_constraints,
    "nuc": _nuc,
    "lp": _lp,
    "linf": _linf,
    "spec": _spec,
}

#: norm -> its solver's ``tol`` for a requested accuracy ``tol`` (the estimator's); norms not
#: listed take ``tol`` as it is (``fro``: the active-set feasibility tolerance).
TOLERANCES: dict[str, Callable[[float], float]] = {
    # a certified relative gap: the interior point's accuracy ends near 1e-10
    "nuc": lambda tol: max(tol, 1e-9),
    # the conic reference's KKT accuracy, not a feasibility tolerance
    "lp": lambda tol: max(1e4 * tol, 1e-8),
}

#: options passed only to the solvers whose signature takes them
_OPTIONAL = ("warm_start", "solver")


def solver_tol(norm: str, tol: float) -> float:
    """The ``tol`` that the solver of ``norm`` is given for a requested accuracy ``tol``."""
    return TOLERANCES.get(norm, float)(tol)


@cache
def _takes(fn: Callable[..., SVMSolution], name: str) -> bool:
    return name in inspect.signature(fn).parameters


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
        Passed to the norm's solver (``tol``, ...); ``warm_start`` and ``solver`` only to a
        solver that takes them.

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
    for name in _OPTIONAL:
        if name in options and not _takes(fn, name):
            del options[name]
    if isinstance(problem, Instance):
        return solve_on_instance(fn, problem, alpha, **options)
    return fn(problem, **options)
