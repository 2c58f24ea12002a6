"""Spectral-norm Att-SVM, the limit direction of spectral descent and Muon.

    W_2^mm = argmin ||W||_2  s.t.  a_k^T W z_k >= b_k  (= b_k for k < n_eq).

Method, certified:

1. The exact Frobenius solver runs first: an infeasible problem is returned with its Farkas
   certificate; otherwise its solution starts the interior point.
2. ``W = U M V^T`` with ``U``, ``V`` orthonormal bases of the ranges of the factors (exact:
   projecting a feasible ``W`` onto them keeps every constraint and does not raise
   ``||W||_2``); the semidefinite program in ``M`` runs through a dedicated primal-dual
   interior point (:mod:`._spectral_ipm`) whose Newton system exploits the rank-one rows.
3. Certificate: ``lam >= 0`` gives ``G = sum lam_k a_k z_k^T`` and the lower bound
   ``lam . b / ||G||_*``; ``W`` rescaled to meet every row gives the upper bound.
4. Least Frobenius norm among the optima (often a face, not a point): every optimum is
   ``t U_r V_r^T + U_perp B V_perp^T`` with ``||B||_2 <= t`` on the top singular space of the
   optimum (``<G, W> = t ||G||_*`` forces ``W v_i = t u_i``), so the least-Frobenius one
   solves an exact Frobenius SVM in ``B`` (the working-set solver, shifted right-hand sides);
   it is kept when ``||B||_2 <= t`` and it certifies as well.  The top space is read from the
   interior point's ``W``, not from the dual's singular vectors: those carry errors of the
   order of the square root of the gap, and the face, thin in most directions, then has no
   point.
"""

from __future__ import annotations

import time
import warnings
from contextlib import AbstractContextManager, nullcontext

import numpy as np

from .._numerics import row_space_basis
from .._validation import check_choice, check_positive
from ..constraints import ConstraintSet
from ..exceptions import ConvergenceWarning, InvalidInputError
from ..instance import Instance
from ._bounds import certified_solution, certify, least_frobenius_stage
from ._instance import infeasible_answer, solve_on_instance, validated_constraints
from ._linalg import numpy_backend
from ._row_working_set import spectral_rows
from ._spectral_ipm import _DENSE_MAX
from .frobenius import solve_fro_constraints
from .norms import row_scale
from .solution import INFEASIBLE, OPTIMAL, SVMSolution

__all__ = ["solve_spec", "solve_spec_constraints"]


#: singular values of the optimum within this relative distance of ||W||_2 span its top space
_TOP = 1e-7


def _small_linalg(cons: ConstraintSet) -> AbstractContextManager[None]:
    """NumPy linear algebra for the Frobenius stages of a small problem (at most
    ``_DENSE_MAX`` entries of W, the dense interior point's range): the solve process then never
    imports SciPy, whose import costs more than such a solve.  Larger problems keep SciPy's."""
    small = cons.A.shape[1] * cons.Zc.shape[1] <= _DENSE_MAX
    return numpy_backend() if small else nullcontext()


def _least_frobenius(red: ConstraintSet, t: float, W: np.ndarray) -> np.ndarray | None:
    """``t U_r V_r^T + U_perp B V_perp^T`` with ``B`` of least Frobenius norm, or None.

    ``U_r``, ``V_r`` span the top singular space of the optimum ``W`` (singular values equal
    to ``t``); ``B`` solves the exact Frobenius SVM with the shifted right-hand sides
    ``b_k - t a_k^T U_r V_r^T z_k`` and must keep ``||B||_2 <= t``.
    """
    U, sw, Vt = np.linalg.svd(W)
    r = int(np.sum(sw >= t * (1.0 - _TOP)))
    W0 = t * U[:, :r] @ Vt[:r]
    Up, Vp = U[:, r:], Vt[r:].T
    b2 = red.rhs - red.values(W0)
    n_eq = red.n_eq
    if Up.shape[1] == 0 or Vp.shape[1] == 0 or (
            not np.any(b2[n_eq:] > 0) and not np.any(b2[:n_eq] != 0)):
        return W0
    cons = ConstraintSet(A=red.A @ Up, Zc=red.Zc @ Vp, index=red.index, b=b2, n_eq=n_eq)
    with warnings.catch_warnings(), _small_linalg(cons):
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = solve_fro_constraints(cons, tol=1e-12)
    if sol.status != OPTIMAL or sol.W is None or np.linalg.norm(sol.W, 2) > t:
        return None
    return W0 + Up @ sol.W @ Vp.T


def solve_spec_constraints(
    constraints: ConstraintSet,
    *,
    tol: float = 1e-8,
    warm_start: SVMSolution | None = None,
    least_frobenius: bool = True,
    max_iter: int = 80,
    newton: str = "auto",
) -> SVMSolution:
    """Solve ``min ||W||_2 s.t. A[k]^T W Zc[k] >= b_k`` (``= b_k`` for ``k < n_eq``).

    Parameters
    ----------
    constraints : ConstraintSet
        Factors ``A`` (m, d1), ``Zc`` (m, d2), ``index`` (m, 2), ``b`` and ``n_eq``.
    tol : float
        Largest certified relative gap for status ``optimal``.
    warm_start : SVMSolution, optional
        A related solution whose ``W`` (made feasible for these rows) starts the interior
        point instead of the Frobenius solution.
    least_frobenius : bool
        Return the optimum of least Frobenius norm (``info["least_frobenius"]``).
    max_iter : int
        Cap on interior-point iterations.
    newton : {"auto", "rows", "dense"}
        The HKM Newton system as the dense ``(1 + r1 r2)`` square matrix, or by conjugate
        gradients with a row-space preconditioner (``rows``; "auto" above 1600 entries of the
        reduced W, without equality rows).

    Returns
    -------
    SVMSolution
        ``norm = "spec"``; ``dual`` = ``mu >= 0`` with ``||sum mu_k G_k||_* = 1`` and
        ``mu . b`` the certified lower bound; ``info["certified_gap"]``.

    Examples
    --------
    >>> import numpy as np
    >>> from attnsvm.constraints import ConstraintSet
    >>> c = ConstraintSet.from_arrays(np.eye(2), np.eye(2))   # W_11 >= 1, W_22 >= 1
    >>> sol = solve_spec_constraints(c)
    >>> np.round(sol.W, 6).tolist(), round(sol.objective, 6)
    ([[1.0, 0.0], [0.0, 1.0]], 1.0)
    """
    start = time.perf_counter()
    cset = validated_constraints(constraints)
    check_positive("tol", tol)
    check_choice("newton", newton, ("auto", "rows", "dense"))
    A, Zc, bb, n_eq = cset.A, cset.Zc, cset.rhs, int(cset.n_eq)
    with _small_linalg(cset):
        fro = solve_fro_constraints(cset)
    if fro.status == INFEASIBLE or fro.W is None:
        return infeasible_answer(fro, "spec", cset, "exact Frobenius working set (certificate)",
                                 start)
    if not np.any(bb[n_eq:] > 0) and not np.any(bb[:n_eq] != 0):
        raise InvalidInputError("The spectral SVM needs a positive right-hand side: with all "
                                "b <= 0, W = 0 is optimal.")
    sA, sZ = row_scale(A), row_scale(Zc)
    U, V = row_space_basis(A), row_space_basis(Zc)
    red = ConstraintSet(A=(A / sA) @ U, Zc=(Zc / sZ) @ V, index=cset.index, b=bb, n_eq=n_eq)
    start_W = fro.W
    if (isinstance(warm_start, SVMSolution) and warm_start.W is not None
            and warm_start.W.shape == fro.W.shape):
        vals = cset.values(warm_start.W)[n_eq:]
        if vals.size and np.all(vals > 0):
            start_W = warm_start.W * max(1.0, float(np.max(bb[n_eq:] / vals)))
    W0 = U.T @ (start_W * (sA * sZ)) @ V

    # a working set of rows where the Newton systems are in the row space (m >= 1000);
    # the dense interior point starts its dual from the Frobenius multipliers
    lam0 = None if start_W is not fro.W else np.asarray(fro.dual)
    W_ipm, lam_ipm, iterations, used, ws = spectral_rows(red, W0, target=tol / 10,
                                                         max_iter=max_iter, newton=newton,
                                                         lam0=lam0)
    bounds = certify(red, W_ipm, lam_ipm, "spec")
    info: dict[str, object] = {"frobenius_solution": fro, "least_frobenius": False,
                               "ipm_iterations": iterations, "newton": used}
    if ws is not None:
        info["working_set"] = ws
    if least_frobenius and bounds.gap <= tol:
        bounds = least_frobenius_stage(red, bounds, lam_ipm,
                                       _least_frobenius(red, bounds.upper, bounds.W), "spec",
                                       tol, info, "the interior point's optimum")
    return certified_solution(
        "spec", U @ bounds.W @ V.T / (sA * sZ), cset, bounds.mu / (sA * sZ), bounds.gap, tol,
        info, iterations, "spectral interior point (HKM, rank-one Newton system), certified",
        "spectral interior point", start)


def solve_spec(instance: Instance, alpha: np.ndarray | None = None,
               tol: float = 1e-8) -> SVMSolution:
    """Spectral-norm Att-SVM of an instance (see :func:`solve_spec_constraints`).

    Examples
    --------
    >>> from attnsvm.instance import random_instance
    >>> sol = solve_spec(random_instance(6, 8, 10, seed=0))
    >>> sol.status, sol.info["certified_gap"] <= 1e-8
    ('optimal', True)
    """
    return solve_on_instance(solve_spec_constraints, instance, alpha, tol=tol)
