"""The interior point of :mod:`._ipm`, run on a stack of same-shaped problems.

Many tiny nuclear-norm problems (thousands with ``s ~ 50`` constraints and
``N = r1 + r2 ~ 16``) spend their time in Python and LAPACK call overhead, not in flops.
Here ``B`` problems with the same ``(s, r1, r2, n_eq)`` advance together: every matrix is a
stack (``(B, N, N)``, ``(B, s, s)``) and each NumPy call serves all of them.  The mathematics
is that of :func:`._ipm.nuclear_ipm` with ``direction="auto"`` (same starting point,
Mehrotra predictor-corrector, HKM with NT while HKM's steps are blocked, step lengths,
stopping rules and best-iterate bookkeeping), per problem: each has its own step lengths,
centring, stall count and stopping iteration, and a finished problem leaves the stack.  Two
differences: NT steps do no iterative refinement, and a problem whose HKM steps are blocked
near the optimum (where the single solver finishes with NT) stops there; its caller
certifies what it reached and otherwise runs the single solver on it.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from . import _policy as policy
from ._ipm import IPMResult, IPMState
from ._newton import DENSE_MAX
from ._newton_batch import hkm_steps, nt_steps
from ._stack import Stack, sym

__all__ = ["nuclear_ipm_batch"]


def nuclear_ipm_batch(
    A: np.ndarray,
    Zq: np.ndarray,
    grp: np.ndarray,
    b: np.ndarray,
    n_eq: int = 0,
    W0: np.ndarray | None = None,
    gap_tol: float = 1e-12,
    max_iter: int = 100,
    accept_tol: float | None = None,
) -> list[IPMResult]:
    """Solve ``B`` same-shaped nuclear-norm problems by one stacked interior point.

    Problem ``i`` is ``min ||W_i||_* s.t. A[i, k]^T W_i Zq[i, grp[i, k]] >= b[i, k]`` (``=`` for
    ``k < n_eq``), solved as in :func:`._ipm.nuclear_ipm` (see the module's notes).

    Parameters
    ----------
    A : ndarray, shape (B, s, r1)
        Left factors, reduced and at unit scale.
    Zq : ndarray, shape (B, g, r2)
        The distinct right factors (queries) of each problem.
    grp : ndarray of int, shape (B, s)
        Constraint ``k`` of problem ``i`` uses ``Zq[i, grp[i, k]]``.
    b : ndarray, shape (B, s)
    n_eq : int
        The first ``n_eq`` constraints of every problem are equalities.
    W0 : ndarray, shape (B, r1, r2), optional
        Starting primal points (their nuclear norms set the initial ``X``).
    gap_tol, max_iter, accept_tol
        As in :func:`._ipm.nuclear_ipm`.

    Returns
    -------
    list of IPMResult
        One per problem, in order.
    """
    Bn, s, r1 = A.shape
    N = r1 + Zq.shape[2]
    if N > DENSE_MAX:
        raise ValueError(f"nuclear_ipm_batch needs N = r1 + r2 <= {DENSE_MAX}. Got N={N}.")
    if Bn == 0:
        return []
    out: list[IPMResult | None] = [None] * Bn  # every problem is finished below
    P = Stack(np.asarray(A, float), np.asarray(Zq, float), np.asarray(grp, np.int64),
               np.asarray(b, float))
    ineq = np.arange(s) >= n_eq
    nu = N + int(ineq.sum())
    eye = np.eye(N)

    # ---- starting point (as the single solver)
    bnorm = 1.0 + np.max(np.abs(P.b), axis=1) if s else np.ones(Bn)
    usable, nuc_w0 = np.zeros(Bn, dtype=bool), np.zeros(Bn)
    if W0 is not None:
        usable = np.all(np.isfinite(W0), axis=(1, 2)) & np.any(W0 != 0, axis=(1, 2))
        nuc_w0 = np.linalg.svd(np.where(usable[:, None, None], W0, 0.0),
                               compute_uv=False).sum(1)
    X = policy.start_scale(nuc_w0, usable, bnorm, N)[:, None, None] * eye
    g1 = np.linalg.norm(P.adjoint_block(np.broadcast_to(ineq * 1.0, (Bn, s))), 2, axis=(1, 2))
    c0 = policy.start_dual(g1)
    y = np.where(ineq, c0[:, None], 0.0)
    Z = eye - P.adjoint(y)
    x = np.where(ineq, policy.start_slack(P.apply(X) - P.b,
                                          np.trace(X, axis1=1, axis2=2)[:, None], nu), 0.0)

    ids = np.arange(Bn)  # original index of each running problem
    best_err = np.full(Bn, np.inf)
    best_X, best_y = X.copy(), y.copy()
    stalls = np.zeros(Bn, dtype=np.int64)
    nt_phase = np.zeros(Bn, dtype=bool)
    hist = np.zeros((Bn, max_iter + 1))

    def finish(pos: np.ndarray, it: int, converged: np.ndarray) -> None:
        for j, cv in zip(pos, converged, strict=True):
            Xf, yf = (X[j], y[j]) if cv else (best_X[j], best_y[j])
            out[ids[j]] = IPMResult(
                W=2.0 * Xf[:r1, r1:], y=yf.copy(), primal_objective=float(np.trace(Xf)),
                dual_objective=float(P.b[j] @ yf), iterations=it, converged=bool(cv),
                state=IPMState(X[j].copy(), x[j].copy(), y[j].copy(), Z[j].copy()))

    it = 0
    for it in range(1, max_iter + 1):
        xin = np.where(ineq, x, 0.0)
        rp = P.b - (P.apply(X) - xin)
        Rd = eye - Z - P.adjoint(y)
        pobj = np.trace(X, axis1=1, axis2=2)
        dobj = np.sum(P.b * y, axis=1)
        mu = (np.sum(X * Z, axis=(1, 2)) + np.sum(xin * y, axis=1)) / nu
        rel_gap = np.abs(pobj - dobj) / np.maximum(np.maximum(np.abs(pobj), np.abs(dobj)),
                                                   1e-300)
        rel_p = (np.max(np.abs(rp) / np.maximum(np.abs(P.b), 1e-300 + (P.b == 0)), axis=1)
                 if s else np.zeros(len(ids)))
        err = rel_gap + rel_p + np.max(np.abs(Rd), axis=(1, 2))
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_X[better], best_y[better] = X[better], y[better]
        conv = err < gap_tol
        hist[:, it] = err
        stop = conv | policy.rounding_limited(stalls, err, gap_tol)
        lag = policy.ACCEPT_LAG
        if accept_tol is not None and it > lag:  # good enough, not halved in three iterations
            best_then = np.min(hist[:, 1:it - lag + 1], axis=1)
            stop |= policy.accepted(best_err, best_then, accept_tol)
        if it > policy.STAGNATION_AFTER:  # stagnation (blocked steps)
            stop |= policy.stagnated(err, hist[:, it - policy.STAGNATION_LAG])
        stop |= policy.leaves_stack(stalls, rel_gap)  # HKM blocked near the optimum
        # ---- one step of every problem that goes on: HKM, or NT while HKM's steps are blocked
        go = ~stop
        use_nt = go & policy.nt_direction(nt_phase, rel_gap)
        nb = len(ids)
        dX, dZ = np.zeros((nb, N, N)), np.zeros((nb, N, N))
        dx, dy, ap, ad = np.zeros((nb, s)), np.zeros((nb, s)), np.zeros(nb), np.zeros(nb)
        for mask, step in ((go & ~use_nt, hkm_steps), (use_nt, nt_steps)):
            i = np.flatnonzero(mask)
            if i.size == 0:
                continue
            sub = P if i.size == nb else P.take(i)
            ok, *st = step(sub, ineq, nu, X[i], x[i], y[i], Z[i], Rd[i], rp[i], mu[i], rel_gap[i])
            go[i[~ok]] = False  # definiteness lost to rounding: stop there (as the single solver)
            dX[i], dx[i], dy[i], dZ[i], ap[i], ad[i] = st
        fin = ~go
        finish(np.flatnonzero(fin), it, conv[fin])
        if fin.any():  # finished problems leave the stack
            ids, X, x, y, Z, rel_gap, dX, dx, dy, dZ, ap, ad = (
                v[go] for v in (ids, X, x, y, Z, rel_gap, dX, dx, dy, dZ, ap, ad))
            best_err, best_X, best_y, stalls, nt_phase, hist = (
                v[go] for v in (best_err, best_X, best_y, stalls, nt_phase, hist))
            P = P.take(go)
        if len(ids) == 0:
            return cast(list[IPMResult], out)
        stalls = policy.count_stalls(stalls, ap, ad)
        nt_phase |= policy.hkm_blocked(stalls, it) & (rel_gap > policy.NEAR_GAP)  # as single
        X = sym(X + ap[:, None, None] * dX)
        x = x + ap[:, None] * dx
        y = y + ad[:, None] * dy
        Z = sym(Z + ad[:, None, None] * dZ)
    finish(np.arange(len(ids)), it, np.zeros(len(ids), dtype=bool))
    return cast(list[IPMResult], out)
