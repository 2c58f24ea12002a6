"""SVM-neighbours, local optimality, and the landscape of locally optimal token choices.

``T_i = {t != alpha_i : (x_{i,alpha_i} - x_it)^T W^mm_alpha z_i = 1}`` (active constraints);
``alpha`` is locally optimal when ``W^mm_alpha`` exists and
``gamma_{i,alpha_i} > gamma_it`` for all ``t in T_i`` (TF-SVM).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import InvalidInputError, InvalidParameterError
from ..instance import Instance
from .frobenius import solve_fro
from .solution import SUPPORT_TOL, SVMSolution

__all__ = ["svm_neighbors", "LocalOptimality", "local_optimality", "enumerate_local_optima"]


def svm_neighbors(solution: SVMSolution, tol: float = SUPPORT_TOL) -> dict[int, list[int]]:
    """``{i: T_i}``, the support tokens of every sequence (empty lists included)."""
    if solution.shape is None:
        raise InvalidInputError("The solution must come from an instance (it has no (n, T) grid).")
    out: dict[int, list[int]] = {i: [] for i in range(solution.shape[0])}
    for i, t in solution.support(tol):
        out[int(i)].append(int(t))
    return out


@dataclass
class LocalOptimality:
    """Verdict of the local-optimality test.

    Attributes
    ----------
    locally_optimal : bool
    feasible : bool
    neighbors : dict of int to list of int
        ``T_i`` per sequence.
    violations : list of (i, t)
        Support tokens with ``gamma_it >= gamma_{i,alpha_i}``.
    solution : SVMSolution
    """

    locally_optimal: bool
    feasible: bool
    neighbors: dict[int, list[int]] = field(default_factory=dict)
    violations: list[tuple[int, int]] = field(default_factory=list)
    solution: SVMSolution | None = None


def local_optimality(instance: Instance, alpha: np.ndarray | None = None,
                     solution: SVMSolution | None = None, tol: float = SUPPORT_TOL
                     ) -> LocalOptimality:
    """Test whether ``alpha`` is a locally optimal token choice (needs ``Y`` and ``v``).

    Parameters
    ----------
    instance : Instance
    alpha : ndarray, shape (n,), optional
    solution : SVMSolution, optional
        A Frobenius solution for ``alpha`` already computed.
    tol : float
        Support tolerance for ``T_i``.
    """
    gamma = instance.token_scores()
    sol = solution if solution is not None else solve_fro(instance, alpha)
    if sol.W is None:
        return LocalOptimality(False, False, {}, [], sol)
    a = sol.alpha if sol.alpha is not None else instance.token_choice()
    nb = svm_neighbors(sol, tol)
    viol = [(i, t) for i, ts in nb.items() for t in ts if not gamma[i, a[i]] > gamma[i, t]]
    return LocalOptimality(not viol, True, nb, viol, sol)


def enumerate_local_optima(instance: Instance, max_choices: int = 50_000
                           ) -> list[LocalOptimality]:
    """Every locally optimal token choice of a small instance (all ``T^n`` choices tried).

    Raises
    ------
    InvalidParameterError
        When ``T^n`` exceeds ``max_choices``.
    """
    total = instance.T ** instance.n
    if total > max_choices:
        raise InvalidParameterError(
            f"The instance has T^n = {total} token choices, more than max_choices={max_choices}.")
    found = []
    for choice in itertools.product(range(instance.T), repeat=instance.n):
        alpha = np.array(choice, dtype=np.int64)
        sol = solve_fro(instance, alpha)
        res = local_optimality(instance, alpha, sol)
        if res.locally_optimal:
            found.append(res)
    return found
