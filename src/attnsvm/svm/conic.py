"""Att-SVM in any norm through cvxpy (Clarabel by default): nuclear, entrywise l_p, Frobenius.

    min ||W||  s.t.  A[k]^T W Zc[k] >= b_k   (all constraints in one vectorised expression)

The nuclear norm is the limit direction of the (K, Q) parametrisation, the entrywise l_p norm
that of l_p mirror descent (THEORY.md).  No dedicated method is faster here, so the solution
records which conic solver ran and checks its own accuracy (KKT residuals of
:class:`~.solution.SVMSolution`); an answer outside ``accuracy`` is marked ``inaccurate`` and a
:class:`~attnsvm.exceptions.ConvergenceWarning` is issued.

Both W and the problem are first reduced to the ranges of the constraint factors: with
``U`` an orthonormal basis of span{a_k} and ``V`` one of span{z_k}, ``U U^T W V V^T`` is feasible
whenever ``W`` is and has no larger Frobenius or nuclear norm, so ``W = U M V^T`` loses nothing
(not used for ``lp``, which is not rotation invariant).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from .._numerics import row_space_basis
from .._validation import as_float_array, check_choice
from ..exceptions import ConvergenceWarning, SolverError
from ..instance import ConstraintSet, Instance
from ._instance import solve_on_instance
from ._scale import UnitScale
from .frobenius import solve_fro_constraints
from .norms import check_norm, norm_value
from .solution import INACCURATE, INFEASIBLE, OPTIMAL, SVMSolution

__all__ = ["solve_conic", "solve_lp"]


def solve_conic(
    constraints: ConstraintSet,
    norm: str = "nuc",
    p: float | None = None,
    *,
    solver: str = "CLARABEL",
    tol: float = 1e-6,
    reduce: bool = True,
    solver_options: dict[str, Any] | None = None,
) -> SVMSolution:
    """Solve ``min ||W|| s.t. A[k]^T W Zc[k] >= b_k`` (``= b_k`` for ``k < n_eq``) with cvxpy.

    Parameters
    ----------
    constraints : ConstraintSet
        Factors ``A`` (m, d1), ``Zc`` (m, d2), ``index`` (m, 2), ``b`` and ``n_eq``.
    norm : {"fro", "nuc", "lp"}
    p : float, optional
        Exponent for ``lp`` (> 1).
    solver : str
        cvxpy solver name (``"CLARABEL"``, ``"SCS"``, ...).
    tol : float
        KKT tolerance under which the answer is reported ``optimal``.
    reduce : bool
        Restrict W to the factor ranges (exact for fro and nuc).
    solver_options : dict, optional
        Passed to ``problem.solve``.

    Returns
    -------
    SVMSolution
    """
    import cvxpy as cp

    t0 = time.perf_counter()
    norm, p = check_norm(norm, p)
    A = as_float_array("A", constraints.A, 2)
    Zc = as_float_array("Zc", constraints.Zc, 2, (A.shape[0], None))
    m, d1 = A.shape
    d2 = Zc.shape[1]
    idx = np.asarray(constraints.index, dtype=np.int64)
    bb = as_float_array("b", constraints.rhs, 1, (m,))
    n_eq = int(constraints.n_eq)
    if reduce and norm != "lp":
        U = row_space_basis(A)
        V = row_space_basis(Zc)
    else:
        U, V = np.eye(d1), np.eye(d2)
    # scale-covariant: solve at unit scale (W = W' / (sA sZ)) so the conic solver sees O(1) data
    cset = ConstraintSet(A=A, Zc=Zc, index=idx, b=bb, n_eq=n_eq)
    scale = UnitScale.of(A, Zc)
    unit = scale.apply(cset)
    Ar, Zr = unit.A @ U, unit.Zc @ V  # (m, r1), (m, r2)
    if U.shape[1] == 0 or V.shape[1] == 0:
        M = cp.Variable((max(U.shape[1], 1), max(V.shape[1], 1)))
        cons = [cp.Constant(np.zeros(m)) >= bb]
    else:
        M = cp.Variable((U.shape[1], V.shape[1]))
        vals = cp.sum(cp.multiply(Ar @ M, Zr), axis=1)
        cons = [vals[n_eq:] >= bb[n_eq:]] if n_eq < m else []
        if n_eq:
            cons.append(vals[:n_eq] == bb[:n_eq])
    if norm == "fro":
        objective = cp.Minimize(cp.sum_squares(M))
    elif norm == "nuc":
        objective = cp.Minimize(cp.normNuc(M))
    else:
        objective = cp.Minimize(cp.pnorm(cp.vec(M, order="C"), p))  # type: ignore[arg-type]
    prob = cp.Problem(objective, cons)
    check_choice("solver", solver, cp.installed_solvers())
    try:
        with warnings.catch_warnings():
            # cvxpy's "may be inaccurate" notice: the KKT check below is the verdict
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            prob.solve(solver=solver, **(solver_options or {}))
    except cp.error.SolverError as exc:
        raise SolverError(f"the conic solver {solver} failed: {exc}") from exc
    name = f"cvxpy:{solver}"
    if prob.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        # Feasibility does not depend on the norm: the exact working-set solver gives a Farkas
        # certificate that cancels to rounding, where the conic dual ray is only approximate.
        exact = solve_fro_constraints(cset)
        if exact.certificate is None:
            raise SolverError(
                f"the conic solver {solver} reported the {norm} Att-SVM infeasible, but the "
                f"exact solver finds it feasible (||W||_F = {exact.objective:.3g}); retry with "
                "another solver")
        sol = SVMSolution(INFEASIBLE, norm, None, cset, bb, np.zeros(m),
                          certificate=exact.certificate, solver=name + " (certificate: exact)",
                          p=p, n_eq=n_eq)
    elif prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and M.value is not None:
        W = scale.lift(U @ M.value @ V.T)
        parts = [np.asarray(c.dual_value, dtype=float).ravel() for c in cons]
        y = np.concatenate(parts[1:] + parts[:1]) if n_eq and n_eq < m else np.concatenate(parts)
        if n_eq:  # cvxpy's equality multipliers carry the opposite sign convention
            y[:n_eq] = -y[:n_eq]
        # normalise the multipliers to the norm-minimisation dual: sum mu b = ||W||
        scale_y = float(y @ bb)
        nrm = norm_value(W, norm, p)
        mu = y * (nrm / scale_y) if scale_y > 0 else y
        sol = SVMSolution(OPTIMAL, norm, W, cset, bb, mu, solver=name, p=p, n_eq=n_eq)
        worst = max(sol.primal_residual(), sol.stationarity_residual(), sol.duality_gap())
        sol.info["kkt_max_residual"] = worst
        # the answer's own KKT residuals decide, not the backend's flag: Clarabel often says
        # "optimal_inaccurate" for solutions that verify to 1e-8
        if worst > tol:
            sol.status = INACCURATE
            warnings.warn(
                f"{name} returned a {norm} Att-SVM solution with KKT residual {worst:.1e} "
                f"> tol {tol:g}", ConvergenceWarning, stacklevel=2)
    else:
        raise SolverError(f"the conic solver {solver} ended with status '{prob.status}'")
    sol.info["cvxpy_status"] = prob.status
    sol.seconds = time.perf_counter() - t0
    return sol


def solve_lp(instance: Instance, p: float, alpha: np.ndarray | None = None,
             solver: str = "CLARABEL", tol: float = 1e-6) -> SVMSolution:
    """Entrywise l_p Att-SVM (the limit direction of l_p mirror descent), ``p > 1``.

    Parameters
    ----------
    instance : Instance
    p : float
        Exponent, ``p > 1``.
    alpha : ndarray of int, shape (n,), optional
    solver : str
        cvxpy solver.
    tol : float
        KKT tolerance for status ``optimal``.
    """
    return solve_on_instance(solve_conic, instance, alpha, norm="lp", p=p, solver=solver,
                             tol=tol)
