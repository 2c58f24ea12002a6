"""A scikit-learn style estimator over the Att-SVM solvers.

Examples
--------
>>> from attnsvm.instance import random_instance
>>> est = AttSVM(norm="fro").fit(random_instance(6, 8, 10, seed=0))
>>> est.status_, est.W_.shape, bool(est.margin_ > 0)
('optimal', (10, 10), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_choice, check_positive
from ..instance import Instance
from .norms import NORMS, check_norm
from .registry import solve
from .solution import SVMSolution

__all__ = ["AttSVM"]


class AttSVM:
    """Att-SVM ``min ||W|| s.t. (x_{i,alpha_i} - x_it)^T W z_i >= 1`` as an estimator.

    Parameters
    ----------
    norm : {"fro", "nuc", "lp"}, default "fro"
        Frobenius and nuclear use the dedicated exact solvers; ``lp`` cvxpy + ``solver``.
    p : float, optional
        Exponent of the ``lp`` norm.
    tol : float, default 1e-10
        Solver tolerance: feasibility for ``fro``; the certified relative gap for ``nuc``
        (at least 1e-9); the KKT accuracy ``max(1e4 tol, 1e-8)`` for ``lp``.
    solver : str, default "CLARABEL"
        cvxpy solver for the ``lp`` norm.

    Attributes
    ----------
    W_ : ndarray, shape (d, d), or None when infeasible
    status_ : str
    alpha_ : ndarray, shape (n,)
    support_ : ndarray, shape (s, 2)
        ``(i, t)`` of the active constraints.
    dual_ : ndarray, shape (n, T)
        Multipliers on the token grid.
    margin_ : float
        ``min (x_{i,alpha_i} - x_it)^T W z_i / ||W||_F``.
    certificate_ : ndarray, shape (n, T), or None
    solution_ : SVMSolution
    """

    def __init__(self, norm: str = "fro", p: float | None = None, tol: float = 1e-10,
                 solver: str = "CLARABEL") -> None:
        self.norm = norm
        self.p = p
        self.tol = tol
        self.solver = solver

    def fit(self, instance: Instance, alpha: np.ndarray | None = None) -> AttSVM:
        """Solve for the instance's token choice (or ``alpha``); returns ``self``."""
        check_choice("norm", self.norm, NORMS)
        check_positive("tol", self.tol)
        norm, p = check_norm(self.norm, self.p)
        opts: dict[str, Any] = {"tol": self.tol}
        if norm == "nuc":  # a certified relative gap: interior-point accuracy ends near 1e-10
            opts = {"tol": max(self.tol, 1e-9)}
        elif norm == "lp":  # the conic reference: KKT accuracy, not a feasibility tolerance
            opts = {"tol": max(1e4 * self.tol, 1e-8), "solver": self.solver}
        sol = solve(instance, norm, alpha=alpha, p=p, **opts)
        self.solution_: SVMSolution = sol
        self.status_ = sol.status
        self.W_ = sol.W
        self.alpha_ = sol.alpha
        self.support_ = sol.support()
        self.dual_ = sol.dual_matrix()
        self.certificate_ = sol.certificate_matrix() if sol.certificate is not None else None
        self.margin_ = (instance.margin(sol.W, sol.alpha) if sol.W is not None
                        else float("nan"))
        return self
