"""Max-norm (entrywise l_inf) Att-SVM, the limit direction of sign descent.

    W_inf^mm = argmin max_ij |W_ij|  s.t.  a_k^T W z_k >= b_k  (= b_k for k < n_eq).

Method, exact and certified:

1. The exact Frobenius solver runs first: feasibility does not depend on the norm, so an
   infeasible problem is returned at once with its Farkas certificate.
2. The linear program, by a dedicated interior point (:mod:`._linf_ipm`: Newton system in
   ``(t, W)`` from the rank-one rows grouped by query, started from the Frobenius solution);
   or (``method="highs"``) in max-margin form, ``max s`` s.t. ``<W, G_k> >= s b_k``,
   ``-1 <= W_ij <= 1`` (the box as variable bounds), by HiGHS' dual simplex on a working set
   of rows (the Frobenius support first, then every row the vertex violates); ``W = w / s``.
3. Certificate: the rows' multipliers ``lam >= 0`` give ``G = sum lam_k G_k`` and the lower
   bound ``lam . b / ||G||_1``; ``W`` rescaled to meet every row gives the upper bound.
4. Least Frobenius norm among the optima (the optimum is often a face, not a point): every
   optimum has ``W_ij = t sign(G_ij)`` where ``G_ij != 0`` (read from the simplex's dual, or
   as the entries at the bound of the interior point's optimum, which lies in the relative
   interior of the optimal face), so the remaining entries solve
   ``min ||w_F||_2`` s.t. the rows and ``|w_F| <= t``, an exact hard-margin problem over the
   free entries (the working-set solver); it is kept when it certifies as well.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .._validation import check_choice, check_positive
from ..constraints import ConstraintSet
from ..exceptions import ConvergenceWarning, InvalidInputError, SolverError
from ..instance import Instance
from . import _row_working_set
from ._bounds import certified_solution, certify, least_frobenius_stage, make_feasible
from ._instance import infeasible_answer, solve_on_instance, validated_constraints
from ._linf_ipm import linf_ipm
from ._row_working_set import on_working_set
from .frobenius import solve_fro_constraints
from .norms import row_scale
from .solution import INFEASIBLE, OPTIMAL, SVMSolution
from .vector import solve_vector_svm

__all__ = ["solve_linf", "solve_linf_constraints"]

#: relative size under which an entry of the dual matrix G counts as zero (a free entry)
_G_ZERO = 1e-9
#: relative distance to the bound under which an interior-point entry counts as at the bound
_AT_BOUND = 1e-7
#: relative relaxation of the rows in the least-Frobenius stage's second try
_RELAX = 1e-11
#: violation (relative) above which a row joins the LP's working set
_VIOLATION = 1e-12


def _row_matrix(cons: ConstraintSet, rows: np.ndarray) -> np.ndarray:
    """Dense ``vec(a_k z_k^T)`` of the given rows, shape (len(rows), d1 d2)."""
    return np.einsum("ki,kj->kij", cons.A[rows], cons.Zc[rows]).reshape(len(rows), -1)


def _lp(cons: ConstraintSet, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Max-margin LP on ``rows``: ``(W, lam, s)`` with ``W = w / s`` (d1, d2) and the rows'
    multipliers ``lam >= 0`` (equalities: either sign)."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix

    d1, d2 = cons.A.shape[1], cons.Zc.shape[1]
    N = d1 * d2
    b = cons.rhs
    eq = rows[rows < cons.n_eq]
    ineq = rows[rows >= cons.n_eq]
    cost = np.zeros(N + 1)
    cost[-1] = -1.0
    kw: dict[str, object] = {}
    if ineq.size:
        kw["A_ub"] = csr_matrix(np.hstack([-_row_matrix(cons, ineq), b[ineq, None]]))
        kw["b_ub"] = np.zeros(ineq.size)
    if eq.size:
        kw["A_eq"] = csr_matrix(np.hstack([_row_matrix(cons, eq), -b[eq, None]]))
        kw["b_eq"] = np.zeros(eq.size)
    bounds = np.tile([-1.0, 1.0], (N + 1, 1))
    bounds[-1] = [-np.inf, np.inf]
    res = linprog(cost, bounds=bounds, method="highs-ds",
                  options={"primal_feasibility_tolerance": 1e-10,
                           "dual_feasibility_tolerance": 1e-10}, **kw)
    if res.status != 0 or res.x is None:
        raise SolverError(f"HiGHS ended the max-norm LP with status {res.status}: "
                          f"{res.message}")
    s = float(res.x[-1])
    lam = np.zeros(cons.m)
    if ineq.size:
        lam[ineq] = -np.asarray(res.ineqlin.marginals)
    if eq.size:
        lam[eq] = np.asarray(res.eqlin.marginals)
    W = res.x[:N].reshape(d1, d2) / s if s > 0 else res.x[:N].reshape(d1, d2)
    return W, lam, s


def _face_from_dual(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries every optimum fixes at ``t sign(G_ij)`` (``G_ij != 0``) and their signs."""
    scale = float(np.max(np.abs(G)))
    return np.abs(G).ravel() > _G_ZERO * scale, np.sign(G.ravel())


def _face_from_primal(W: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Entries at the bound in an interior-point optimum (the relative interior of the optimal
    face: an entry at the bound there is at the bound on the whole face) and their signs."""
    return np.abs(W).ravel() >= t * (1.0 - _AT_BOUND), np.sign(W.ravel())


def _least_frobenius(cons: ConstraintSet, t: float, fixed: np.ndarray, sign: np.ndarray,
                     shape: tuple[int, int], at: np.ndarray | None = None
                     ) -> np.ndarray | None:
    """The optimum of least Frobenius norm on the face ``W_ij = t sign_ij`` (``fixed``),
    ``|W_ij| <= t`` elsewhere, rows met; None when that problem has no answer."""
    d1, d2 = shape
    # the fixed entries at t sign, or at the interior point's own values (within 1e-7 of the
    # bound: snapping them to it can cost the rows more than the face's width)
    Wfix = np.where(fixed, t * sign if at is None else np.clip(at.ravel(), -t, t), 0.0)
    free = np.flatnonzero(~fixed)
    b = cons.rhs
    rhs_rows = b - cons.values(Wfix.reshape(d1, d2))
    if free.size == 0:
        return Wfix.reshape(d1, d2)
    fi, fj = np.divmod(free, d2)
    Cf = cons.A[:, fi] * cons.Zc[:, fj]          # the rows on the free entries, (m, |free|)
    eye = np.eye(free.size)
    rows = np.vstack([Cf[:cons.n_eq], -Cf[:cons.n_eq], Cf[cons.n_eq:], eye, -eye])
    rhs = np.concatenate([rhs_rows[:cons.n_eq], -rhs_rows[:cons.n_eq], rhs_rows[cons.n_eq:],
                          np.full(2 * free.size, -t)])
    keep = np.linalg.norm(rows, axis=1) > 0
    if np.any(~keep & (rhs > 1e-12 * max(1.0, t))):
        return None
    n_row = rows.shape[0] - 2 * free.size
    for relax in (0.0, _RELAX):
        # a degenerate face (more rows tight than free entries) can read as infeasible to
        # the exact solver: the rows relaxed by 1e-11 then; the certificate rescales W
        r = rhs.copy()
        r[:n_row] -= relax * np.maximum(1.0, np.abs(r[:n_row]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sol = solve_vector_svm(rows[keep], r[keep], tol=1e-12)
        if sol.status == OPTIMAL and sol.W is not None:
            break
    if sol.status != OPTIMAL or sol.W is None:
        return None
    W = Wfix.copy()
    W[free] = np.clip(sol.W, -t, t)
    return W.reshape(d1, d2)


def solve_linf_constraints(
    constraints: ConstraintSet,
    *,
    tol: float = 1e-9,
    warm_start: SVMSolution | np.ndarray | None = None,
    least_frobenius: bool = True,
    max_rounds: int = 50,
    method: str = "ipm",
    newton: str = "auto",
) -> SVMSolution:
    """Solve ``min max_ij |W_ij| s.t. A[k]^T W Zc[k] >= b_k`` (``= b_k`` for ``k < n_eq``).

    Parameters
    ----------
    constraints : ConstraintSet
        Factors ``A`` (m, d1), ``Zc`` (m, d2), ``index`` (m, 2), ``b`` and ``n_eq``.
    tol : float
        Largest certified relative gap for status ``optimal``.
    warm_start : SVMSolution or ndarray of int, optional
        A related solution: its ``W`` (made feasible) starts the interior point; with
        ``highs`` its support (or the given row indices) is the first working set.
    least_frobenius : bool
        Return the optimum of least Frobenius norm (``info["least_frobenius"]`` says whether
        it was reached); otherwise the LP's vertex.
    max_rounds : int
        Cap on the working-set rounds (``highs``; the interior point gets 30 more iterations).
    method : {"ipm", "highs"}
        The dedicated interior point (:mod:`._linf_ipm`, default) or HiGHS' dual simplex on a
        working set of rows; both certified the same way.
    newton : {"auto", "rows", "dense"}
        The interior point's Newton system: in the row space (``m x m``, Woodbury; "auto"
        where ``m < d1 d2``) or the dense ``(1 + d1 d2)`` square matrix.

    Returns
    -------
    SVMSolution
        ``norm = "linf"``; ``dual`` = ``mu >= 0`` with ``||sum mu_k G_k||_1 = 1`` and
        ``mu . b`` the certified lower bound; ``info["certified_gap"]``.

    Examples
    --------
    >>> import numpy as np
    >>> from attnsvm.constraints import ConstraintSet
    >>> c = ConstraintSet.from_arrays(np.array([[1.0, 1.0]]), np.array([[1.0, 0.0]]))
    >>> sol = solve_linf_constraints(c)
    >>> sol.W.round(6).tolist(), round(sol.objective, 6)   # W z = (1/2, 1/2), least Frobenius
    ([[0.5, 0.0], [0.5, 0.0]], 0.5)
    """
    start = time.perf_counter()
    cset = validated_constraints(constraints)
    check_positive("tol", tol)
    A, Zc, bb, m, n_eq = cset.A, cset.Zc, cset.rhs, cset.m, int(cset.n_eq)
    fro = solve_fro_constraints(cset)
    if fro.status == INFEASIBLE or fro.W is None:
        return infeasible_answer(fro, "linf", cset, "exact Frobenius working set (certificate)",
                                 start)
    if not np.any(bb[n_eq:] > 0) and not np.any(bb[:n_eq] != 0):
        raise InvalidInputError("The max-norm SVM needs a positive right-hand side: with all "
                                "b <= 0, W = 0 is optimal.")
    # scale-covariant: solve at unit scale, W = W' / (sA sZ)
    sA, sZ = row_scale(A), row_scale(Zc)
    unit = cset.scaled(sA, sZ)
    check_choice("method", method, ("ipm", "highs"))
    check_choice("newton", newton, ("auto", "rows", "dense"))
    info: dict[str, object] = {"frobenius_solution": fro, "least_frobenius": False,
                               "method": method}
    if method == "ipm":
        start_W: np.ndarray = fro.W
        if (isinstance(warm_start, SVMSolution) and warm_start.W is not None
                and warm_start.W.shape == fro.W.shape):
            start_W = make_feasible(cset, warm_start.W)

        def run(sub: ConstraintSet, W0: np.ndarray, target: float | None = None
                ) -> tuple[np.ndarray, np.ndarray, int]:
            Zq, inv = sub.groups
            res = linf_ipm(sub.A, sub.Zc, inv, Zq, sub.rhs, int(sub.n_eq), W0,
                           certify=lambda W, lam: certify(sub, W, lam, "linf").gap,
                           target=target or min(1e-12, tol / 100), max_iter=max_rounds + 30,
                           newton=newton)
            info["newton"] = res.newton
            return res.W, res.lam, res.iterations

        W0 = start_W * (sA * sZ)
        # a working set of rows where the Newton systems are in the row space
        rows_newton = newton == "rows" or (newton == "auto" and m < W0.size)
        if rows_newton and m >= _row_working_set.MIN_ROWS:
            W, lam, ws = on_working_set(unit, run, W0)
            rounds = ws["iterations"]
            info["working_set"] = ws
        else:
            W, lam, rounds = run(unit, W0)
        info["ipm_iterations"] = rounds
    else:
        rows = np.union1d(np.arange(n_eq), np.flatnonzero(fro.dual != 0))
        if isinstance(warm_start, SVMSolution) and warm_start.dual.size == m:
            rows = np.union1d(rows, np.flatnonzero(warm_start.dual != 0))
        elif warm_start is not None and not isinstance(warm_start, SVMSolution):
            rows = np.union1d(rows, np.asarray(warm_start, dtype=np.int64))
        rounds = 0
        while True:
            rounds += 1
            W, lam, s = _lp(unit, rows)
            gap = bb - unit.values(W)
            viol = np.setdiff1d(np.flatnonzero(gap > _VIOLATION * np.maximum(1.0, np.abs(bb))),
                                rows)
            if viol.size == 0 or rounds >= max_rounds or s <= 0:
                break
            rows = np.union1d(rows, viol)
        info["rounds"], info["lp_rows"] = rounds, int(rows.size)
    bounds = certify(unit, W, lam, "linf")
    if least_frobenius and bounds.gap <= tol:
        fixed, sign = (_face_from_primal(bounds.W, bounds.upper) if method == "ipm"
                       else _face_from_dual(unit.combine(bounds.mu)))
        W2 = None
        if method == "ipm":
            W2 = _least_frobenius(unit, bounds.upper, fixed, sign, bounds.W.shape, bounds.W)
        if W2 is None:
            W2 = _least_frobenius(unit, bounds.upper, fixed, sign, bounds.W.shape)
        bounds = least_frobenius_stage(unit, bounds, lam, W2, "linf", tol, info,
                                       "the LP's optimal vertex")
    solver = ("max-norm interior point (Mehrotra, rank-one Newton system), certified"
              if method == "ipm" else "HiGHS dual simplex (working-set rows), certified")
    # back to the original scale: W = W' / (sA sZ), and the multipliers with it
    return certified_solution("linf", bounds.W / (sA * sZ), cset, bounds.mu / (sA * sZ),
                              bounds.gap, tol, info, rounds, solver, "max-norm LP", start)


def solve_linf(instance: Instance, alpha: np.ndarray | None = None,
               tol: float = 1e-9) -> SVMSolution:
    """Max-norm Att-SVM of an instance (see :func:`solve_linf_constraints`).

    Examples
    --------
    >>> from attnsvm.instance import random_instance
    >>> sol = solve_linf(random_instance(6, 8, 10, seed=0))
    >>> sol.status, sol.info["certified_gap"] <= 1e-9
    ('optimal', True)
    """
    return solve_on_instance(solve_linf_constraints, instance, alpha, tol=tol)
