"""An SVM solution as data that can show it is right.

Every solver returns an :class:`SVMSolution`.  For the norm-minimisation problem

    min ||W||  s.t.  <W, G_k> >= b_k  (k >= n_eq),   <W, G_k> = b_k  (k < n_eq),

the dual is ``max sum_k mu_k b_k`` s.t. ``||sum_k mu_k G_k||_* <= 1`` and ``mu_k >= 0`` on
inequalities, and at an optimum ``M = sum_k mu_k G_k`` is a subgradient of ``||.||`` at ``W``:
``||M||_* = 1`` and ``<M, W> = ||W||``.  The checks below measure exactly these conditions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..constraints import ConstraintSet, VectorConstraints
from ..exceptions import InfeasibleProblemError, InvalidInputError
from .norms import dual_norm_value, norm_value

__all__ = ["SVMSolution", "OPTIMAL", "INFEASIBLE", "INACCURATE"]

OPTIMAL = "optimal"
INFEASIBLE = "infeasible"
INACCURATE = "inaccurate"

#: Default relative tolerance for support (active) constraints: value <= b (1 + SUPPORT_TOL).
SUPPORT_TOL = 1e-6


@dataclass
class SVMSolution:
    """Solution of an attention SVM.

    Attributes
    ----------
    status : {"optimal", "infeasible", "inaccurate"}
    norm : {"fro", "nuc", "lp"}
    W : ndarray, shape (d1, d2) or (p,), or None when infeasible
    constraints : ConstraintSet or VectorConstraints
    b : ndarray, shape (m,)
        Right-hand sides (1 for Att-SVM).
    dual : ndarray, shape (m,)
        Norm-minimisation multipliers ``mu`` (see module docstring); ``sum mu b = ||W||``.
    certificate : ndarray, shape (m,), or None
        Infeasible problems: ``c >= 0`` (on inequalities), ``sum |c| = 1``,
        ``sum_k c_k G_k = 0`` and ``sum_k c_k b_k > 0``.
    solver : str
        Which method ran (e.g. ``"working-set"``, ``"cvxpy:CLARABEL"``).
    seconds : float
    iterations : int
    n_eq : int
    p : float or None
        Exponent for the ``lp`` norm.
    alpha : ndarray, shape (n,), or None
        The token choice (Att-SVM).
    shape : tuple (n, T), or None
        For mapping constraints back to tokens.
    info : dict
        Solver-specific extras.
    """

    status: str
    norm: str
    W: np.ndarray | None
    constraints: ConstraintSet | VectorConstraints
    b: np.ndarray
    dual: np.ndarray
    certificate: np.ndarray | None = None
    solver: str = ""
    seconds: float = 0.0
    iterations: int = 0
    n_eq: int = 0
    p: float | None = None
    alpha: np.ndarray | None = None
    shape: tuple[int, int] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # derived quantities, recomputed only when W or dual is replaced (see _memo)
    _memo_store: dict[str, Any] = field(default_factory=dict, init=False, repr=False,
                                        compare=False)
    _memo_key: tuple[Any, Any] = field(default=(None, None), init=False, repr=False,
                                       compare=False)

    def _memo(self, name: str, compute: Any) -> Any:
        """``compute()`` once per (W, dual) pair: the figures and the command line read the
        same residual, norm and rank several times (each a few SVDs for the nuclear norm).
        Assigning a new ``W`` or ``dual`` discards the stored values."""
        key = self._memo_key
        if key[0] is not self.W or key[1] is not self.dual:
            self._memo_store = {}
            self._memo_key = (self.W, self.dual)
        store = self._memo_store
        if name not in store:
            store[name] = compute()
        return store[name]

    # ----------------------------------------------------------- basic values
    @property
    def feasible(self) -> bool:
        return self.status != INFEASIBLE

    @property
    def values(self) -> np.ndarray:
        """Constraint values ``<W, G_k>``, shape (m,) (NaN when infeasible)."""
        if self.W is None:
            return np.full(self.constraints.m, np.nan)
        W = self.W
        return self._memo("values", lambda: self.constraints.values(W))

    def singular_values(self) -> np.ndarray:
        """Singular values of a matrix ``W`` in decreasing order, shape (min(d1, d2),)
        (computed once; empty when infeasible or ``W`` is a vector)."""
        if self.W is None or self.W.ndim != 2:
            return np.zeros(0)
        W = self.W
        return self._memo("sv", lambda: np.linalg.svd(W, compute_uv=False))

    @property
    def objective(self) -> float:
        """``||W||`` in the solution's norm (NaN when infeasible)."""
        if self.W is None:
            return float("nan")
        if self.norm == "nuc" and self.W.ndim == 2:  # norm_value's nuclear norm, SVD shared
            return self._memo("objective", lambda: float(self.singular_values().sum()))
        W = self.W
        return self._memo("objective", lambda: norm_value(W, self.norm, self.p))

    @property
    def margin(self) -> float:
        """``min_k <W, G_k>`` over the inequality constraints (NaN when infeasible)."""
        v = self.values[self.n_eq:]
        return float(v.min()) if v.size else float("nan")

    @property
    def rank(self) -> int:
        """Rank of W: the certified one when the solver gives it (``info["rank"]``, nuclear
        norm), else numerical with a tolerance tied to the solution's accuracy: singular values
        above ``10 acc sigma_1`` (``acc`` the larger residual) count, so a perturbation of W
        of that relative size could not have made them (Weyl).  (A factor of 1e3 read rank 3 on
        ill-conditioned rank-4 solutions of the rank figure, sigma_4 / sigma_1 = 4e-6 with a
        primal residual of 5e-9.)"""
        if self.W is None or self.W.ndim != 2:
            return 0
        if "rank" in self.info:
            return int(self.info["rank"])
        sv = self.singular_values()
        acc = max(self.primal_residual(), self.stationarity_residual(), 1e-12)
        return int(np.sum(sv > max(10.0 * acc, 1e-9) * sv[0])) if sv.size and sv[0] > 0 else 0

    # --------------------------------------------------------------- support
    def support_mask(self, tol: float = SUPPORT_TOL) -> np.ndarray:
        """Active inequality constraints: ``<W, G_k> <= b_k + tol * max(1, |b_k|)``; (m,) bool."""
        mask = np.zeros(self.constraints.m, dtype=bool)
        if self.W is None:
            return mask
        v, b = self.values, self.b
        mask[self.n_eq:] = (v - b)[self.n_eq:] <= tol * np.maximum(1.0, np.abs(b[self.n_eq:]))
        return mask

    def support(self, tol: float = SUPPORT_TOL) -> np.ndarray:
        """``(i, t)`` of the active constraints, shape (s, 2)."""
        return self.constraints.index[self.support_mask(tol)]

    # ---------------------------------------------------------- verification
    def primal_residual(self) -> float:
        """Largest constraint violation, relative to ``max(1, |b|)``."""
        if self.W is None:
            return float("nan")
        return float(self._memo("primal_residual", self._primal_residual))

    def _primal_residual(self) -> float:
        r = (self.b - self.values) / np.maximum(1.0, np.abs(self.b))
        r[self.n_eq:] = np.maximum(r[self.n_eq:], 0.0)
        return float(np.max(np.abs(r))) if r.size else 0.0

    def dual_residual(self) -> float:
        """Largest negative multiplier on an inequality, relative to ``max |mu|``."""
        mu = self.dual[self.n_eq:]
        if mu.size == 0:
            return 0.0
        return float(max(0.0, -mu.min()) / max(np.abs(self.dual).max(), 1e-300))

    def stationarity_residual(self) -> float:
        """``max(0, ||M||_* - 1) + |<M, W>/||W|| - 1|`` with ``M = sum mu_k G_k``."""
        if self.W is None:
            return float("nan")
        return float(self._memo("stationarity_residual", self._stationarity_residual))

    def _stationarity_residual(self) -> float:
        assert self.W is not None
        M = self.constraints.combine(self.dual)
        nrm = self.objective
        if nrm == 0:
            return float(dual_norm_value(M, self.norm, self.p))
        return float(max(0.0, dual_norm_value(M, self.norm, self.p) - 1.0)
                     + abs(float(np.vdot(M, self.W)) / nrm - 1.0))

    def complementarity(self) -> float:
        """``max_k |mu_k (<W, G_k> - b_k)|`` relative to ``||W||``."""
        if self.W is None:
            return float("nan")
        gap = self.dual * (self.values - self.b)
        return float(np.max(np.abs(gap)) / max(self.objective, 1e-300)) if gap.size else 0.0

    def duality_gap(self) -> float:
        """``| ||W|| - sum_k mu_k b_k | / ||W||``, the relative duality gap."""
        if self.W is None:
            return float("nan")
        nrm = self.objective
        return float(abs(nrm - float(self.dual @ self.b)) / max(nrm, 1e-300))

    def certificate_residual(self) -> float:
        """``||sum c_k G_k|| / (sum |c_k| ||G_k||)`` for an infeasible problem (0 is exact)."""
        if self.certificate is None:
            return float("nan")
        c = self.certificate
        M = self.constraints.combine(c)
        G_norms = self.constraints.normal_norms()
        denom = float(np.abs(c) @ G_norms)
        return float(np.linalg.norm(M) / max(denom, 1e-300))

    def kkt_residuals(self) -> dict[str, float]:
        """Every optimality residual by name: ``primal_residual``, ``dual_residual``,
        ``stationarity_residual``, ``complementarity``, ``duality_gap`` (NaN without ``W``)."""
        return dict(self._memo("kkt_residuals", self._kkt_residuals))

    def _kkt_residuals(self) -> dict[str, float]:
        with np.errstate(all="ignore"):
            return {
                "primal_residual": self.primal_residual(),
                "dual_residual": self.dual_residual(),
                "stationarity_residual": self.stationarity_residual(),
                "complementarity": self.complementarity(),
                "duality_gap": self.duality_gap(),
            }

    def is_optimal(self, tol: float = 1e-6) -> bool:
        """True when status is optimal and every KKT residual is below ``tol``."""
        if self.status != OPTIMAL or self.W is None or not np.all(np.isfinite(self.W)):
            return False
        res = np.array(list(self.kkt_residuals().values()))
        return bool(np.all(np.isfinite(res)) and res.max() <= tol)

    def is_certified_infeasible(self, tol: float = 1e-8) -> bool:
        """True when the certificate is non-negative on inequalities and cancels to ``tol``."""
        if self.status != INFEASIBLE or self.certificate is None:
            return False
        c = self.certificate
        return bool(c[self.n_eq:].min(initial=0.0) >= -tol and float(c @ self.b) > 0
                    and self.certificate_residual() <= tol)

    def raise_if_infeasible(self) -> SVMSolution:
        """Return self, or raise :class:`InfeasibleProblemError` when infeasible."""
        if self.status == INFEASIBLE:
            raise InfeasibleProblemError(
                f"The {self.norm} attention SVM is infeasible (certificate residual "
                f"{self.certificate_residual():.1e}); see solution.certificate."
            )
        return self

    # -------------------------------------------------------------- mappings
    def _to_grid(self, values: np.ndarray) -> np.ndarray:
        if self.shape is None:
            raise InvalidInputError(
                "This solution has no (n, T) token grid (built from raw constraints).")
        out = np.zeros(self.shape)
        idx = self.constraints.index
        out[idx[:, 0], idx[:, 1]] = values
        return out

    def dual_matrix(self) -> np.ndarray:
        """The multipliers on the (n, T) token grid (0 at ``alpha_i``)."""
        return self._to_grid(self.dual)

    def certificate_matrix(self) -> np.ndarray:
        """The infeasibility certificate on the (n, T) token grid."""
        if self.certificate is None:
            raise InvalidInputError(
                "This solution has no certificate: the problem is not infeasible.")
        return self._to_grid(self.certificate)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (status, norm, objective, margin, residuals, support, ...)."""
        feas = self.W is not None
        return {
            "status": self.status,
            "norm": self.norm if self.norm != "lp" else f"l{self.p:g}",
            "objective": self.objective if feas else None,
            "margin": self.margin if feas else None,
            "alpha": None if self.alpha is None else [int(a) for a in self.alpha],
            "support": self.support().tolist() if feas else [],
            "n_constraints": int(self.constraints.m),
            "primal_residual": self.primal_residual() if feas else None,
            "stationarity_residual": self.stationarity_residual() if feas else None,
            "duality_gap": self.duality_gap() if feas else None,
            "kkt_max_residual": (float(np.max(list(self.kkt_residuals().values())))
                                 if feas else None),
            "certificate_residual": (self.certificate_residual()
                                     if self.certificate is not None else None),
            "certified_gap": (float(self.info["certified_gap"])
                              if "certified_gap" in self.info else None),
            "rank_certified": (bool(self.info["rank_certified"])
                               if "rank_certified" in self.info else None),
            "solver": self.solver,
            "iterations": int(self.iterations),
            "seconds": float(self.seconds),
        }
