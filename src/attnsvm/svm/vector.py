"""Hard-margin SVMs over vectors: the prompt p-SVM and the head v-SVM (MMTS).

    p^mm = argmin ||p||  s.t.  (k_{i,alpha_i} - k_it)^T p >= 1,   k_it = W^T x_it,
    v^mm = argmin ||v||  s.t.  Y_i v^T x_{i,alpha_i} >= 1.

The relaxed p-SVM asks margin 0 instead of 1 for the sequences that are not support vectors of
``v^mm``.  All three run on the exact working-set solver with a plain Gram kernel.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .._validation import as_float_array
from ..constraints import VectorConstraints
from ..exceptions import ConvergenceWarning, InvalidInputError
from ..instance import Instance
from ._dense_qp import solve_dense_hard_margin
from ._working_set import solve_hard_margin
from .norms import safe_norm
from .solution import INACCURATE, INFEASIBLE, OPTIMAL, SUPPORT_TOL, SVMSolution

__all__ = ["solve_vector_svm", "solve_p_svm", "solve_v_svm", "solve_p_svm_relaxed"]


def solve_vector_svm(G: np.ndarray, b: np.ndarray | None = None,
                     index: np.ndarray | None = None, tol: float = 1e-10) -> SVMSolution:
    """Solve ``min ||w||_2 s.t. G[k] . w >= b_k`` exactly.

    Parameters
    ----------
    G : ndarray, shape (m, p)
        Constraint normals.
    b : ndarray, shape (m,), optional
        Right-hand sides (default ones; zeros allowed).
    index : ndarray of int, shape (m, 2), optional
        ``(i, t)`` labels of the constraints.
    tol : float
        Feasibility tolerance.

    Returns
    -------
    SVMSolution
        ``W`` is the vector ``w`` (p,), ``norm`` is ``"fro"`` (Euclidean).
    """
    t0 = time.perf_counter()
    G = as_float_array("G", G, 2)
    m = G.shape[0]
    if m == 0:
        raise InvalidInputError("The constraint set must hold at least one constraint. Got m=0.")
    bb = np.ones(m) if b is None else as_float_array("b", b, 1, (m,))
    idx = (np.stack([np.arange(m), np.full(m, -1)], 1) if index is None
           else np.asarray(index, dtype=np.int64))
    cons = VectorConstraints(G=G, index=idx, b=bb)
    res = solve_hard_margin(cons, bb, tol=tol)
    lam = np.zeros(m)
    lam[res.active] = res.lam
    w_dense = None
    dense_used = res.status != "optimal" and m * G.shape[1] * min(m, G.shape[1]) ** 2 <= 2e9
    if dense_used:
        # the Gram matrix squares the condition number: the row-equilibrated QR method
        # decides (svm/_dense_qp.py), on the explicit normals
        dres = solve_dense_hard_margin(G, bb, tol=tol)
        res.status, res.certificate = dres.status, dres.certificate
        lam, w_dense = dres.lam, dres.w
    if res.status == "infeasible":
        sol = SVMSolution(INFEASIBLE, "fro", None, cons, bb, np.zeros(m),
                          certificate=res.certificate)
        if not sol.is_certified_infeasible(1e-10):  # at the rows' own scale
            sol.status, sol.certificate = INACCURATE, None
            warnings.warn("the vector SVM's infeasibility certificate does not hold",
                          ConvergenceWarning, stacklevel=2)
    else:
        w = res.point(cons) if w_dense is None else w_dense
        nrm = safe_norm(w)
        sol = SVMSolution(OPTIMAL if res.status == "optimal" else INACCURATE, "fro", w, cons, bb,
                          lam / nrm if nrm > 0 else lam)
        if w_dense is not None and sol.status == OPTIMAL:
            with np.errstate(all="ignore"):
                worst = max(sol.kkt_residuals().values())
            if not (np.isfinite(worst) and worst <= max(tol, 1e-7)):
                sol.status = INACCURATE
        if sol.status == INACCURATE:
            warnings.warn(f"the vector SVM {res.shortfall or 'is off its margins'}",
                          ConvergenceWarning, stacklevel=2)
    sol.solver = ("working-set, then row-equilibrated QR dual active set" if dense_used
                  else "working-set: Goldfarb-Idnani dual")
    sol.iterations = res.iterations
    sol.seconds = time.perf_counter() - t0
    return sol


def _key_constraints(instance: Instance, W: np.ndarray | None, alpha: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    n, T, d = instance.X.shape
    Wm = np.eye(d) if W is None else as_float_array("W", W, 2, (d, None))
    mask = np.ones((n, T), dtype=bool)
    mask[np.arange(n), alpha] = False
    ii, tt = np.nonzero(mask)
    G = (instance.X[ii, alpha[ii]] - instance.X[ii, tt]) @ Wm  # (m, p): (k_a - k_t)
    return G, np.stack([ii, tt], 1).astype(np.int64)


def solve_p_svm(instance: Instance, W: np.ndarray | None = None,
                alpha: np.ndarray | None = None, tol: float = 1e-10) -> SVMSolution:
    """Prompt p-SVM: ``min ||p|| s.t. (x_{i,alpha_i} - x_it)^T W p >= 1`` (keys ``W^T x``).

    Parameters
    ----------
    instance : Instance
        Tokens ``X`` (n, T, d); queries are not used.
    W : ndarray, shape (d, d'), optional
        Key-query matrix (default identity: the query-free case).
    alpha : ndarray, shape (n,), optional
        Token choice (default the instance's).

    Returns
    -------
    SVMSolution
        ``W`` holds ``p^mm`` (d',); ``shape = (n, T)``.
    """
    a = instance.token_choice() if alpha is None else instance.check_alpha(alpha)
    G, idx = _key_constraints(instance, W, a)
    sol = solve_vector_svm(G, index=idx, tol=tol)
    sol.alpha, sol.shape = a.copy(), (instance.n, instance.T)
    return sol


def solve_v_svm(instance: Instance, alpha: np.ndarray | None = None,
                tol: float = 1e-10) -> SVMSolution:
    """Head v-SVM: ``v^mm = argmin ||v|| s.t. Y_i v^T x_{i,alpha_i} >= 1``; needs ``Y``.

    Returns
    -------
    SVMSolution
        ``W`` holds ``v^mm`` (d,); constraint ``i`` has index ``(i, alpha_i)``.
    """
    if instance.Y is None:
        raise InvalidInputError("The instance must have labels 'Y' for the v-SVM.")
    a = instance.token_choice() if alpha is None else instance.check_alpha(alpha)
    n = instance.n
    G = instance.Y[:, None] * instance.X[np.arange(n), a]
    sol = solve_vector_svm(G, index=np.stack([np.arange(n), a], 1), tol=tol)
    sol.alpha = a.copy()
    return sol


def solve_p_svm_relaxed(instance: Instance, W: np.ndarray | None = None,
                        alpha: np.ndarray | None = None, tol: float = 1e-10
                        ) -> SVMSolution:
    """Relaxed p-SVM of joint (v, p) training: margin 1 on the sequences that are support
    vectors of ``v^mm``, margin 0 on the others.

    Returns
    -------
    SVMSolution
        The relaxed ``p`` solution; ``info["v_solution"]`` holds the v-SVM it was built from
        and ``info["v_support_sequences"]`` its support sequences.
    """
    vsol = solve_v_svm(instance, alpha, tol)
    a = vsol.alpha
    assert a is not None
    support_seq = (vsol.support_mask(SUPPORT_TOL) if vsol.W is not None
                   else np.ones(instance.n, bool))
    G, idx = _key_constraints(instance, W, a)
    b = np.where(support_seq[idx[:, 0]], 1.0, 0.0)
    psol = solve_vector_svm(G, b=b, index=idx, tol=tol)
    psol.alpha, psol.shape = a.copy(), (instance.n, instance.T)
    psol.info["v_support_sequences"] = np.flatnonzero(support_seq).tolist()
    psol.info["v_solution"] = vsol
    return psol
