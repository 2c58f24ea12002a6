"""A scikit-learn style estimator over the Att-SVM solvers.

Examples
--------
>>> from attnsvm.instance import random_instance
>>> est = AttSVM(norm="fro").fit(random_instance(6, 8, 10, seed=0))
>>> est.status_, est.W_.shape, bool(est.margin_ > 0)
('optimal', (10, 10), True)
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from .._validation import check_choice, check_positive
from ..exceptions import InvalidParameterError
from ..instance import Instance
from .norms import NORMS, check_norm
from .registry import solve, solver_tol
from .solution import SVMSolution

__all__ = ["AttSVM"]


class AttSVM:
    """Att-SVM ``min ||W|| s.t. (x_{i,alpha_i} - x_it)^T W z_i >= 1`` as an estimator.

    A scikit-learn estimator: ``__init__`` stores its parameters, :meth:`get_params` and
    :meth:`set_params` read and change them (``sklearn.base.clone`` works), :meth:`fit`
    returns ``self`` with the learned values in attributes ending in ``_``.

    Parameters
    ----------
    norm : {"fro", "nuc", "lp"}, default "fro"
        Frobenius and nuclear use the dedicated exact solvers; ``lp`` cvxpy + ``solver``.
    p : float, optional
        Exponent of the ``lp`` norm.
    tol : float, default 1e-10
        Requested accuracy; each norm's solver reads it as the registry says
        (:func:`attnsvm.svm.registry.solver_tol`): feasibility for ``fro``, the certified
        relative gap for ``nuc`` (at least 1e-9), KKT accuracy ``max(1e4 tol, 1e-8)`` for
        ``lp``.
    solver : str, default "CLARABEL"
        cvxpy solver, for the norms solved by cvxpy (``lp``).

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

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [name for name in sig.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters by name (``deep``: accepted; no sub-estimators)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> AttSVM:
        """Set constructor parameters by name; returns ``self``.  Checked when fitting."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise InvalidParameterError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {sorted(valid)!r}.")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        default = {name: p.default for name, p in inspect.signature(
            type(self).__init__).parameters.items() if name != "self"}
        shown = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != default[k])
        return f"{type(self).__name__}({shown})"

    def fit(self, instance: Instance, alpha: np.ndarray | None = None) -> AttSVM:
        """Solve for the instance's token choice (or ``alpha``); returns ``self``."""
        check_choice("norm", self.norm, NORMS)
        check_positive("tol", self.tol)
        norm, p = check_norm(self.norm, self.p)
        sol = solve(instance, norm, alpha=alpha, p=p, tol=solver_tol(norm, self.tol),
                    solver=self.solver)
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
