"""Margin ratios: how close any ``W`` is to the max margin of a geometry.

    ratio_norm(W) = [min_k <W, G_k> / ||W||] / [1 / ||W*||] = ||W*|| min_k <W, G_k> / ||W||,

with ``W*`` the Att-SVM optimum in that norm (``||W*||`` its optimal value).  The ratio is at
most 1 for every ``W`` and equals 1 exactly at the max-margin directions of that norm, so it
compares geometries where correlations cannot (the max-norm and spectral optima are often
faces, not points).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..constraints import ConstraintSet
from ..exceptions import InvalidInputError
from ..instance import Instance
from .norms import norm_value
from .registry import solve
from .solution import SVMSolution

__all__ = ["margin_ratio", "margin_ratios", "MARGIN_NORMS"]

#: the four geometries of the optimizer study
MARGIN_NORMS = ("fro", "nuc", "linf", "spec")


def _constraints(problem: Instance | ConstraintSet, alpha: np.ndarray | None
                 ) -> ConstraintSet:
    if isinstance(problem, Instance):
        return problem.constraints(alpha)
    if isinstance(problem, ConstraintSet):
        return problem
    raise InvalidInputError(f"The 'problem' parameter must be an Instance or a ConstraintSet. "
                            f"Got {type(problem).__name__} instead.")


def margin_ratio(W: np.ndarray, problem: Instance | ConstraintSet, norm: str = "fro", *,
                 alpha: np.ndarray | None = None,
                 solution: SVMSolution | None = None) -> float | None:
    """Normalized margin of ``W`` in ``norm`` over that norm's max margin.

    Parameters
    ----------
    W : ndarray, shape (d, d)
    problem : Instance or ConstraintSet
        The Att-SVM (an instance with token choice ``alpha``, or explicit constraints).
    norm : {"fro", "nuc", "linf", "spec"}
    alpha : ndarray of int, shape (n,), optional
        Token choice for an instance (default: its ``alpha``, else the optimal tokens).
    solution : SVMSolution, optional
        The Att-SVM already solved in ``norm`` (skips the solve).

    Returns
    -------
    float or None
        ``||W*|| min_k <W, G_k> / ||W||`` (None when the Att-SVM is infeasible; 0 for W = 0).

    Examples
    --------
    >>> from attnsvm import random_instance
    >>> from attnsvm.svm import solve
    >>> inst = random_instance(4, 5, 6, seed=0)
    >>> round(margin_ratio(solve(inst, "linf").W, inst, "linf"), 9)
    1.0
    """
    cons = _constraints(problem, alpha)
    sol = solution if solution is not None else solve(cons, norm)
    if sol.W is None:
        return None
    W = np.asarray(W, dtype=np.float64)
    nrm = norm_value(W, norm)
    if nrm == 0:
        return 0.0
    v = cons.values(W)[cons.n_eq:]
    return float(sol.objective * float(v.min()) / nrm)


def margin_ratios(W: np.ndarray, problem: Instance | ConstraintSet, *,
                  alpha: np.ndarray | None = None,
                  norms: Iterable[str] = MARGIN_NORMS) -> dict[str, float | None]:
    """:func:`margin_ratio` in each of ``norms`` (one dict, None where infeasible)."""
    cons = _constraints(problem, alpha)
    return {nm: margin_ratio(W, cons, nm) for nm in norms}
