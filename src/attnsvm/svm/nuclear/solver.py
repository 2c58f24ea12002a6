"""Nuclear-norm Att-SVM ``W_*^mm``, the limit direction of the (K, Q) parametrization.

    W_*^mm = argmin ||W||_*  s.t.  a_k^T W z_k >= b_k   (= b_k for k < n_eq),  a_k z_k^T = G_k.

A dedicated method, exact up to floating point and certified:

1. The exact Frobenius solver runs first.  Feasibility does not depend on the norm, so an
   infeasible problem is returned at once with its Farkas certificate; otherwise the Frobenius
   support seeds the working set.
2. On a working set ``S`` of constraints, reduced to the ranges of its factors
   (``W = U M V^T``, :mod:`._presolve`), a primal-dual interior-point method solves the
   semidefinite form of the problem (:mod:`._ipm`): its Newton system is built from Hadamard
   products of ``s x s`` Gram-like blocks, never from the ``m x d^2`` constraint matrix.
3. Low-accuracy rounds find the working set, then a certified run finishes it
   (:mod:`._rounds`); every accuracy target derives from ``tol`` (:mod:`._policy`).
4. Certificate: ``W`` is rescaled to be exactly feasible (upper bound ``||W||_*``), the dual
   weights ``mu >= 0`` are divided by ``||sum_k mu_k G_k||_op`` (lower bound ``sum mu_k b_k``),
   and the relative difference of the bounds is the certified gap.  The rank is read from the
   spectra of ``W`` and of the dual matrix (see :func:`certified_rank`), not from a tolerance.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping

import numpy as np

from ..._validation import check_positive
from ...constraints import ConstraintSet
from ...exceptions import ConvergenceWarning
from ...instance import Instance
from .._instance import infeasible_answer, solve_on_instance, validated_constraints
from ..frobenius import solve_fro_constraints
from ..solution import INACCURATE, INFEASIBLE, OPTIMAL, SVMSolution
from ._ipm import nuclear_ipm
from ._policy import Tolerances
from ._polish import face_candidates, tangent_polish
from ._presolve import Presolved
from ._rounds import WorkingSetRounds, initial_set

__all__ = ["solve_nuc", "solve_nuc_constraints", "certified_rank", "certify_nuclear"]

#: problems with at most this many constraints are solved whole
_SMALL = 300
#: least centring parameter of the retry of an answer left uncertified (degenerate problems)
_CENTRING = 0.2
METHOD = ("working-set interior point (HKM, NT where HKM stalls; rank-one Schur complement), "
          "certified")


def certified_rank(W: np.ndarray, G: np.ndarray) -> dict[str, float | int | bool]:
    """Rank of a nuclear-norm solution read from a certified spectral gap.

    With ``||G||_op <= 1``, von Neumann's inequality gives
    ``eps = ||W||_* - <G, W> >= sum_i sigma_i(W) (1 - sigma_i(G))``, every term non-negative,
    so ``sigma_i(W) <= eps / (1 - sigma_i(G))`` for every ``i``.  The rank ``r`` is the one
    that best separates ``sigma_r(W)`` from that bound on the tail,
    ``ratio_r = sigma_r(W) (1 - sigma_{r+1}(G)) / eps``; it is certified when the ratio exceeds
    1e3 (the tail of ``W`` is provably a thousandth of its smallest kept singular value).

    Parameters
    ----------
    W : ndarray, shape (d1, d2)
    G : ndarray, shape (d1, d2)
        Dual matrix with ``||G||_op <= 1``.

    Returns
    -------
    dict
        ``rank``, ``rank_certified``, ``rank_separation`` (the ratio), ``spectral_gap``
        (``1 - sigma_{r+1}(G)``), ``complementarity_eps``.
    """
    sw = np.linalg.svd(W, compute_uv=False)
    sg = np.linalg.svd(G, compute_uv=False)
    k = min(sw.size, sg.size)
    nuc = float(sw.sum())
    if k == 0 or nuc == 0.0:
        return {"rank": 0, "rank_certified": True, "rank_separation": float("inf"),
                "spectral_gap": 1.0, "complementarity_eps": 0.0}
    eps = max(nuc - float(np.vdot(G, W)), np.finfo(float).eps * nuc)
    best_r, best_ratio, best_gap = k, 0.0, 0.0
    for r in range(1, k + 1):
        gap = 1.0 - float(sg[r]) if r < sg.size else 1.0
        ratio = float(sw[r - 1]) * max(gap, 0.0) / eps
        if ratio > best_ratio:
            best_r, best_ratio, best_gap = r, ratio, gap
    return {"rank": int(best_r), "rank_certified": bool(best_ratio > 1e3),
            "rank_separation": best_ratio, "spectral_gap": best_gap,
            "complementarity_eps": eps}


def solve_nuc_constraints(
    constraints: ConstraintSet,
    *,
    tol: float = 1e-9,
    warm_start: SVMSolution | np.ndarray | None = None,
    max_rounds: int = 30,
    frobenius: SVMSolution | None = None,
) -> SVMSolution:
    """Nuclear-norm SVM ``min ||W||_* s.t. A[k]^T W Zc[k] >= b_k`` (``= b_k``, ``k < n_eq``).

    Parameters
    ----------
    constraints : ConstraintSet
        Factors ``A`` (m, d1), ``Zc`` (m, d2), ``index`` (m, 2) (rows with equal ``i`` share
        ``Zc``), ``b`` (default ones) and ``n_eq``.
    tol : float
        Largest certified relative gap (and constraint violation) reported as ``optimal``;
        anything looser is ``inaccurate`` with a :class:`ConvergenceWarning`.
    warm_start : SVMSolution or ndarray of int, optional
        A related problem's solution (its positive-multiplier constraints) or constraint
        indices to put in the first working set.
    max_rounds : int
        Cap on working-set rounds.
    frobenius : SVMSolution, optional
        The exact Frobenius solution of these same constraints when the caller already has it
        (it decides feasibility and seeds the working set); solved here otherwise.

    Returns
    -------
    SVMSolution
        ``dual`` holds ``mu >= 0`` with ``||sum_k mu_k G_k||_op <= 1``; ``info`` has
        ``certified_gap``, ``lower_bound``, ``upper_bound``, ``rank`` (with
        ``rank_certified``, ``spectral_gap``), ``working_set`` and ``ipm_iterations``.

    Examples
    --------
    >>> from attnsvm import random_instance
    >>> sol = solve_nuc_constraints(random_instance(6, 8, 10, seed=0).constraints())
    >>> sol.status, sol.info["certified_gap"] < 1e-9
    ('optimal', True)
    """
    t0 = time.perf_counter()
    check_positive("tol", tol)
    cset = validated_constraints(constraints)
    m, n_eq, bb = cset.m, int(cset.n_eq), cset.rhs
    tols = Tolerances(tol)

    fro = (frobenius if frobenius is not None and frobenius.norm == "fro"
           and frobenius.constraints.m == m and frobenius.status != INACCURATE
           else solve_fro_constraints(cset))
    if fro.status == INFEASIBLE:
        return infeasible_answer(fro, "nuc", cset,
                                 METHOD + " (certificate: exact working-set Frobenius)", t0)

    pre = Presolved.of(cset, fro)
    warm_idx = None
    if isinstance(warm_start, SVMSolution):
        warm_idx = np.flatnonzero(warm_start.dual > 0) if warm_start.dual.size == m else None
    elif warm_start is not None:
        warm_idx = np.asarray(warm_start, dtype=np.int64)
    # implied rows (Graph-SVMs) make the Newton system singular: never in a working set
    implied = pre.implied()
    live = np.flatnonzero(~implied)
    if live.size <= _SMALL:
        S = live  # small problems: every constraint, one certified round
    else:
        S = np.setdiff1d(initial_set(pre.unit.values(pre.W_fro), bb, fro.dual, n_eq, warm_idx),
                         np.flatnonzero(implied))

    def certify(W: np.ndarray, y: np.ndarray, info: Mapping[str, object]) -> SVMSolution:
        return _certify_polished(cset, W, y, tol, fro, info)

    rounds = WorkingSetRounds(pre, tols, S, implied, live.size)
    sol = rounds.run(max_rounds, certify)
    info = rounds.info()
    red, S = rounds.red, rounds.S
    assert red is not None
    # cold starts on the last round's set (``red``), the better certificate kept: after a
    # carried iterate that fell short; with a centring floor (degenerate problems); on small
    # problems each direction alone
    retries = ([("auto", 0.0)] if rounds.warm and rounds.final else []) + [
        ("auto", _CENTRING)] + ([("hkm", 0.0), ("nt", 0.0)] if S.size == live.size else [])
    for direction, centring in retries:
        if sol.status == OPTIMAL:
            break
        res = nuclear_ipm(red.A, red.Zq, red.loc, red.b, n_eq=red.n_eq,
                          W0=red.apply(pre.W_fro), gap_tol=tols.final_gap,
                          accept_tol=tols.accept, direction=direction, centring=centring)
        W_try, y_try = pre.lift(red, res.W, res.y)
        info["ipm_iterations"] += res.iterations
        other = certify(W_try, y_try, info)
        if other.info["certified_gap"] < sol.info["certified_gap"]:
            sol = other
    if sol.status != OPTIMAL and S.size == live.size and sol.W is not None:
        # small problems: the active rows pin the optimum (nearly infeasible instances,
        # whose Newton systems lose the last digits): solve them directly
        for W_face, y_face in face_candidates(cset, sol.W):
            other = certify_nuclear(cset, W_face, y_face, tol=tol, frobenius=fro, warn=False,
                                    face_polished=True, **info)
            if other.info["certified_gap"] < sol.info["certified_gap"]:
                sol = other
            if sol.status == OPTIMAL:
                break
    if sol.status == INACCURATE:
        _warn_inaccurate(sol, tol, stacklevel=3)
    sol.seconds = time.perf_counter() - t0
    return sol


def _certify_polished(cset: ConstraintSet, W: np.ndarray, y: np.ndarray, tol: float,
                      fro: SVMSolution, info: Mapping[str, object]) -> SVMSolution:
    """Certify ``(W, y)``; when that falls short, also its tangent polish (the active rows met
    only to ~1e-9: the rescaling then costs the gap), and keep the better certificate."""
    sol = certify_nuclear(cset, W, y, tol=tol, frobenius=fro, warn=False, **info)
    if sol.status == OPTIMAL or sol.W is None:
        return sol
    Wp = tangent_polish(cset, sol.W, sol.dual, int(sol.info["rank"]))
    if Wp is None:
        return sol
    other = certify_nuclear(cset, Wp, sol.dual, tol=tol, frobenius=fro, warn=False,
                            **info, tangent_polished=True)
    return other if other.info["certified_gap"] < sol.info["certified_gap"] else sol


def _warn_inaccurate(sol: SVMSolution, tol: float, stacklevel: int) -> None:
    warnings.warn(
        f"the nuclear-norm solver certified a relative gap of {sol.info['certified_gap']:.1e} "
        f"(equality residual {sol.info['equality_residual']:.1e}) > tol {tol:g}",
        ConvergenceWarning, stacklevel=stacklevel)


def certify_nuclear(cset: ConstraintSet, W: np.ndarray, y: np.ndarray, *, tol: float,
                    frobenius: SVMSolution | None = None, warn: bool = True,
                    **info: object) -> SVMSolution:
    """Certify a candidate nuclear-norm solution ``(W, y)`` and wrap it as an SVMSolution.

    ``W`` is rescaled to be exactly feasible (upper bound ``||W||_*``), the multipliers
    ``mu = y`` (clipped at 0 on inequalities) are divided by ``||sum_k mu_k G_k||_op`` (lower
    bound ``sum mu_k b_k``); the relative difference is the certified gap.  Above ``tol`` (or
    with an equality residual above ``tol``) the status is ``inaccurate`` with a
    :class:`ConvergenceWarning`, never ``optimal``.

    Parameters
    ----------
    cset : ConstraintSet
        The constraints, ``m`` of them, at their original scale.
    W : ndarray, shape (d1, d2)
        Candidate primal solution.
    y : ndarray, shape (m,)
        Candidate multipliers.
    tol : float
    frobenius : SVMSolution, optional
        The Frobenius solution of the same constraints, kept in ``info``.
    warn : bool
        Warn (:class:`ConvergenceWarning`) when the answer is ``inaccurate``.
    **info
        Extra entries for ``info`` (working set, rounds, iterations).

    Returns
    -------
    SVMSolution
    """
    m, n_eq = cset.m, int(cset.n_eq)
    bb = cset.rhs
    vals = cset.values(W)
    ineq = np.arange(m) >= n_eq
    pos = ineq & (bb > 0)
    scale = 1.0
    if np.any(pos):
        ratio = bb[pos] / np.where(vals[pos] > 0, vals[pos], np.nan)
        scale = float(np.nanmax(ratio)) if np.all(vals[pos] > 0) else np.inf
    mu = y.copy()
    mu[ineq] = np.maximum(mu[ineq], 0.0)
    G = cset.combine(mu)
    g_op = float(np.linalg.norm(G, 2)) if G.size else 0.0
    if np.isfinite(scale) and scale > 1.0:
        W = W * scale
    nuc = float(np.linalg.svd(W, compute_uv=False).sum())
    lower = float(mu @ bb) / g_op if g_op > 0 else 0.0
    mu_n = mu / g_op if g_op > 0 else mu
    gap = (nuc - lower) / max(nuc, 1e-300) if np.isfinite(scale) else np.inf
    sol = SVMSolution(OPTIMAL, "nuc", W, cset, bb, mu_n, n_eq=n_eq, solver=METHOD)
    eq_res = (float(np.max(np.abs(sol.values[:n_eq] - bb[:n_eq])
                           / np.maximum(1.0, np.abs(bb[:n_eq])))) if n_eq else 0.0)
    rk = certified_rank(W, G / g_op if g_op > 0 else G)
    sol.info.update(certified_gap=float(gap), lower_bound=lower, upper_bound=nuc,
                    equality_residual=eq_res, **rk, **info)
    iters = info.get("ipm_iterations")
    if isinstance(iters, int):
        sol.iterations = iters
    sol.info["frobenius_solution"] = frobenius  # the exact Frobenius Att-SVM, same constraints
    if not (gap <= tol and sol.primal_residual() <= tol):  # equality rows included
        sol.status = INACCURATE
        if warn:
            _warn_inaccurate(sol, tol, stacklevel=3)
    return sol

def solve_nuc(instance: Instance, alpha: np.ndarray | None = None, *, tol: float = 1e-9,
              warm_start: SVMSolution | np.ndarray | None = None,
              frobenius: SVMSolution | None = None) -> SVMSolution:
    """Nuclear-norm Att-SVM ``W_*^mm`` of an instance for token choice ``alpha``.

    Parameters
    ----------
    instance : Instance
    alpha : ndarray of int, shape (n,), optional
        Default :meth:`Instance.token_choice`.
    tol : float
        Largest certified relative gap reported as ``optimal``.
    warm_start : SVMSolution or ndarray of int, optional
    frobenius : SVMSolution, optional
        The instance's Frobenius solution for the same ``alpha``, if already computed.

    Returns
    -------
    SVMSolution
        ``W`` of shape (d, d), ``alpha`` and ``shape = (n, T)``.
    """
    return solve_on_instance(solve_nuc_constraints, instance, alpha, tol=tol,
                             warm_start=warm_start, frobenius=frobenius)
