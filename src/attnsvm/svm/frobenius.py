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
from ._dense_qp import solve_dense_hard_margin
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
    W_gram = None if res.status == "infeasible" else res.point(kernel)
    sol = _wrap(cons, res.status, lam, W_gram, res.certificate, scale, tol)
    method = res.method
    if sol.status != OPTIMAL:
        # the Gram matrix squares the condition number: where it stalls, calls a problem
        # infeasible, or its answer does not hold at the original scale, the row-equilibrated
        # QR method decides on the explicit normals
        dense = _dense_fallback(kernel, bb, n_eq, tol, res.certificate)
        if dense is not None:
            d_sol = _wrap(cons, dense[0], dense[1], dense[2], dense[3], scale, tol)
            if d_sol.status != INACCURATE or sol.W is None:
                sol, method = d_sol, "dense-qr"
    if sol.status == INACCURATE:
        why = ("its infeasibility certificate does not hold at the rows' own scale"
               if res.status == "infeasible" else res.shortfall or
               "left rows off their margins at the original scale")
        resid = f"; primal residual {sol.primal_residual():.2e}" if sol.W is not None else ""
        warnings.warn(f"the working-set solver {why} before reaching tol={tol:g}{resid}",
                      ConvergenceWarning, stacklevel=2)
    sol.solver = {
        "dense-qr": "working-set, then row-equilibrated QR dual active set (explicit normals)",
        "block-pivoting": "working-set: block pivoting (primal-dual active set), KKT exact",
        "block-pivoting+goldfarb-idnani": "working-set: block pivoting, then Goldfarb-Idnani dual",
        "goldfarb-idnani": "working-set: Goldfarb-Idnani dual, kernel form",
    }[method]
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


#: an infeasibility certificate holds when its weights cancel to this, relative to the rows'
#: own norms (``sum |c_k| ||G_k||``)
CERTIFICATE_RTOL = 1e-10
#: the largest KKT residual (original scale) of an ``optimal`` answer of the fallback
FALLBACK_TOL = 1e-7
#: the explicit-normal fallback runs only up to this many flops (one QR per step)
DENSE_LIMIT = 2e9


def _dense_cost(rows: int, p: int) -> float:
    """Flops of the fallback on ``rows`` constraints in dimension ``p``: about ``rows`` steps
    of one QR of a (p, s) matrix, ``s <= min(rows, p)``."""
    if rows * p > 32_000_000:  # the explicit normals alone would pass 256 MB
        return float("inf")
    return float(rows) * p * min(rows, p) ** 2


def _wrap(cons: ConstraintSet, raw: str, lam: np.ndarray, W_unit: np.ndarray | None,
          certificate: np.ndarray | None, scale: UnitScale, tol: float) -> SVMSolution:
    """An :class:`SVMSolution` of the original constraints from a unit-scale answer
    (``W = scale.lift(W_unit)``), judged at the original scale: ``optimal`` only
    with every KKT residual <= ``max(tol, FALLBACK_TOL)``, ``infeasible`` only with a
    certificate that holds (:func:`_certificate_holds`), else ``inaccurate``."""
    m, bb, n_eq = cons.m, cons.rhs, int(cons.n_eq)
    if raw == "infeasible" or W_unit is None:
        sol = SVMSolution(status=INFEASIBLE, norm="fro", W=None, constraints=cons, b=bb,
                          dual=np.zeros(m), certificate=certificate, n_eq=n_eq)
        if raw != "infeasible" or not _certificate_holds(sol):
            sol.status, sol.certificate = INACCURATE, None
            sol.info["rejected_certificate"] = certificate
        return sol
    W = scale.lift(W_unit)
    nrm_unit = safe_norm(W_unit)
    # norm-minimisation multipliers of the original constraints: mu = lambda / (||W'|| sA sZ)
    mu = lam / (nrm_unit * scale.factor) if nrm_unit > 0 else lam
    sol = SVMSolution(status=OPTIMAL if raw == "optimal" else INACCURATE, norm="fro", W=W,
                      constraints=cons, b=bb, dual=mu, n_eq=n_eq)
    if sol.status == OPTIMAL:
        # <W, a z^T> rounds at eps |a| |z| |W|: on badly scaled rows the unit-scale check and
        # the original-scale one can differ by more than tol
        with np.errstate(all="ignore"):
            worst = max(sol.kkt_residuals().values())
        if not (np.isfinite(worst) and worst <= max(tol, FALLBACK_TOL)):
            sol.status = INACCURATE
    return sol


def _certificate_holds(sol: SVMSolution) -> bool:
    """The certificate is >= 0 on inequalities, has ``c . b > 0`` and cancels to
    :data:`CERTIFICATE_RTOL` relative to the rows' norms."""
    c = sol.certificate
    if c is None or not np.all(np.isfinite(c)):
        return False
    with np.errstate(all="ignore"):
        res = sol.certificate_residual()
    return bool(np.isfinite(res) and res <= CERTIFICATE_RTOL and float(c @ sol.b) > 0
                and c[sol.n_eq:].min(initial=0.0) >= -CERTIFICATE_RTOL * np.abs(c).max())


def _basis(M: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d, r) of the span of the rows of ``M`` after scaling each to unit
    norm (so that short rows keep their directions)."""
    nr = np.linalg.norm(M, axis=1)
    Mn = M[nr > 0] / nr[nr > 0, None]
    if Mn.shape[0] == 0:
        return np.zeros((M.shape[1], 0))
    _, s, Vt = np.linalg.svd(Mn, full_matrices=False)
    return Vt[: int(np.sum(s > 1e-14 * s[0]))].T


def _dense_fallback(kernel: ConstraintSet, b: np.ndarray, n_eq: int, tol: float,
                    gram_certificate: np.ndarray | None
                    ) -> tuple[str, np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    """Decide the problem with :func:`._dense_qp.solve_dense_hard_margin` on explicit normals
    in orthonormal bases of the factors' row spaces (an isometry, so ``W`` and its norm are
    exact): the whole problem when small, else the rows of the Gram method's certificate
    (a certificate of those rows is one of the problem; a solution of them refutes it).

    Returns ``(status, lam (m,), W_unit or None, certificate (m,) or None)``, or None when
    even that is too large.
    """
    m = kernel.m
    d1, d2 = kernel.A.shape[1], kernel.Zc.shape[1]
    rows = np.arange(m)
    if _dense_cost(m, min(d1, m) * min(d2, m)) > DENSE_LIMIT:
        if gram_certificate is None:
            return None
        rows = np.flatnonzero(gram_certificate != 0)
    A, Z = kernel.A[rows], kernel.Zc[rows]
    if d1 * d2 <= 4096:
        U, V = np.eye(d1), np.eye(d2)
    else:
        U, V = _basis(A), _basis(Z)
    if _dense_cost(rows.size, U.shape[1] * V.shape[1]) > DENSE_LIMIT:
        return None
    Ar, Zr = A @ U, Z @ V
    N = (Ar[:, :, None] * Zr[:, None, :]).reshape(rows.size, -1)
    sub_eq = int(np.sum(rows < n_eq))
    res = solve_dense_hard_margin(N, b[rows], sub_eq, tol=tol)
    lam = np.zeros(m)
    if res.status == "infeasible":
        assert res.certificate is not None
        cert = np.zeros(m)
        cert[rows] = res.certificate
        return "infeasible", lam, None, cert
    if rows.size < m:
        return "inaccurate", lam, None, None  # the certificate's rows are feasible: refuted
    assert res.w is not None
    lam[rows] = res.lam
    W_unit = U @ res.w.reshape(U.shape[1], V.shape[1]) @ V.T
    return ("optimal" if res.status == "optimal" else "inaccurate"), lam, W_unit, None
