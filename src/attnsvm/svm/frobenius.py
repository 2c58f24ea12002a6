"""Frobenius-norm Att-SVM by the exact working-set dual method.

    W^mm_alpha = argmin ||W||_F  s.t.  (x_{i,alpha_i} - x_it)^T W z_i >= 1,  t != alpha_i.

Each constraint is ``<W, a_k z_k^T> >= 1``; the dual has one variable per constraint and Gram
matrix ``K_kl = (a_k . a_l)(z_k . z_l)``.  :func:`~._working_set.solve_hard_margin` solves it
exactly (no slack) with ``W = sum_k lambda_k a_k z_k^T``.  The norm-minimisation multipliers
stored in the solution are ``mu = lambda / ||W||_F``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .._validation import as_float_array, check_choice, check_positive
from ..constraints import ConstraintSet
from ..exceptions import ConvergenceWarning, InvalidInputError
from ..instance import Instance
from ._instance import solve_on_instance
from ._scale import UnitScale
from ._working_set import solve_hard_margin
from .norms import safe_norm
from .solution import INACCURATE, INFEASIBLE, OPTIMAL, SVMSolution

__all__ = ["solve_fro", "solve_fro_constraints"]


def solve_fro_constraints(
    constraints: ConstraintSet,
    *,
    tol: float = 1e-10,
    warm_start: SVMSolution | np.ndarray | None = None,
    chunk: int | None = None,
    max_iter: int | None = None,
    method: str = "auto",
) -> SVMSolution:
    """Solve ``min ||W||_F s.t. A[k]^T W Zc[k] >= b_k`` (``= b_k`` for ``k < n_eq``) exactly.

    Parameters
    ----------
    constraints : ConstraintSet
        Factors ``A`` (m, d1) and ``Zc`` (m, d2), ``index`` (m, 2) (rows with equal ``i`` share
        ``Zc``), right-hand sides ``b`` (default ones) and ``n_eq`` leading equalities.
        ``ConstraintSet.from_arrays(A, Zc, index, b, n_eq)`` builds one from raw arrays.
    tol : float
        Feasibility tolerance of the active-set method (relative to ``max(1, |b|)``).
    warm_start : SVMSolution or ndarray of int, optional
        A related problem's solution (or constraint indices) whose active set is tried first.
    chunk, max_iter : int, optional
        Working-set additions per round and the cap on steps.
    method : {"auto", "active-set", "block"}
        Active-set (Goldfarb-Idnani) alone, or block pivoting first (default above 64
        constraints); both end in an exactly KKT-satisfying answer.

    Returns
    -------
    SVMSolution
        Status ``optimal`` (KKT-verifiable), ``infeasible`` (with a certificate) or
        ``inaccurate`` (iteration cap; a :class:`ConvergenceWarning` is issued).

    Examples
    --------
    >>> import numpy as np
    >>> from attnsvm.constraints import ConstraintSet
    >>> c = ConstraintSet.from_arrays(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]]))
    >>> np.round(solve_fro_constraints(c).W, 6).tolist()   # a z^T / (|a|^2 |z|^2)
    [[0.0, 0.5], [0.0, 0.0]]
    """
    start = time.perf_counter()
    A = as_float_array("A", constraints.A, 2)
    Zc = as_float_array("Zc", constraints.Zc, 2, (A.shape[0], None))
    m = A.shape[0]
    if m == 0:
        raise InvalidInputError("The constraint set must hold at least one constraint. Got m=0.")
    check_positive("tol", tol)
    n_eq = int(constraints.n_eq)
    idx = np.asarray(constraints.index, dtype=np.int64)
    bb = as_float_array("b", constraints.rhs, 1, (m,))
    # The problem is scale-covariant (A -> A / sA, Zc -> Zc / sZ gives W -> sA sZ W): solve it
    # at unit scale so that extreme magnitudes neither overflow nor underflow the kernel.
    scale = UnitScale.of(A, Zc)
    sA, sZ = scale.sA, scale.sZ
    cons = ConstraintSet(A=A, Zc=Zc, index=idx, b=bb, n_eq=n_eq)
    kernel = scale.apply(cons)
    warm = None
    if isinstance(warm_start, SVMSolution):
        warm = np.flatnonzero(warm_start.dual != 0) if warm_start.dual.size == m else None
    elif warm_start is not None:
        warm = np.asarray(warm_start, dtype=np.int64)
    check_choice("method", method, ("auto", "active-set", "block"))
    res = solve_hard_margin(kernel, bb, n_eq=n_eq, tol=tol, chunk=chunk, max_iter=max_iter,
                            warm_active=warm, method=method)
    lam = np.zeros(m)
    lam[res.active] = res.lam
    if res.status == "infeasible":
        sol = SVMSolution(status=INFEASIBLE, norm="fro", W=None, constraints=cons, b=bb,
                          dual=np.zeros(m), certificate=res.certificate, n_eq=n_eq)
    else:
        W_unit = res.point(kernel)  # solution at unit scale
        W = scale.lift(W_unit)
        nrm_unit = safe_norm(W_unit)
        # norm-minimisation multipliers of the original constraints: mu = lambda / (||W'|| sA sZ)
        mu = lam / (nrm_unit * sA * sZ) if nrm_unit > 0 else lam
        status = OPTIMAL if res.status == "optimal" else INACCURATE
        sol = SVMSolution(status=status, norm="fro", W=W, constraints=cons, b=bb, dual=mu,
                          n_eq=n_eq)
        if status == INACCURATE:
            warnings.warn(
                f"the working-set solver {res.shortfall} before reaching tol={tol:g}; primal "
                f"residual {sol.primal_residual():.2e}", ConvergenceWarning, stacklevel=2)
    sol.solver = {
        "block-pivoting": "working-set: block pivoting (primal-dual active set), KKT exact",
        "block-pivoting+goldfarb-idnani": "working-set: block pivoting, then Goldfarb-Idnani dual",
        "goldfarb-idnani": "working-set: Goldfarb-Idnani dual, kernel form",
    }[res.method]
    sol.iterations = res.iterations
    sol.info["rounds"] = res.rounds
    sol.seconds = time.perf_counter() - start
    return sol


def solve_fro(
    instance: Instance,
    alpha: np.ndarray | None = None,
    tol: float = 1e-10,
    warm_start: SVMSolution | np.ndarray | None = None,
) -> SVMSolution:
    """Frobenius Att-SVM ``W^mm_alpha`` of an instance for token choice ``alpha``.

    Parameters
    ----------
    instance : Instance
    alpha : ndarray of int, shape (n,), optional
        Default :meth:`Instance.token_choice` (given alpha, else the optimal tokens).
    tol : float
        Feasibility tolerance.
    warm_start : SVMSolution or ndarray, optional
        Active set of a related problem to try first.

    Returns
    -------
    SVMSolution
        With ``W`` of shape (d, d), ``alpha`` and ``shape = (n, T)``.

    Examples
    --------
    >>> from attnsvm.instance import random_instance
    >>> sol = solve_fro(random_instance(6, 8, 10, seed=0))
    >>> sol.status, sol.is_optimal(1e-8)
    ('optimal', True)
    """
    return solve_on_instance(solve_fro_constraints, instance, alpha, tol=tol,
                             warm_start=warm_start)
