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

Constraint ``k`` of problem ``i`` is ``a_ik^T W_i z_ik >= b_ik``; with the lifted rows
``R_i = [[A_i, 0], [0, Zk_i]]`` (2s, N) one product ``R_i X_i R_i^T`` gives all three blocks
of the HKM Schur complement ``M_kl = <F_k, X F_l Z^-1>``:

    M = Zx o As + Ax o Zs + P o Q^T + (P o Q^T)^T,

``Ax = A X_11 A^T``, ``P = A X_12 Zk^T``, ``Zx = Zk X_22 Zk^T`` and the same of ``Z^-1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import cast

import numpy as np
from scipy.linalg import cho_solve

from . import _policy as policy
from ._ipm import _DENSE_MAX, IPMResult, IPMState, _schur_solver

__all__ = ["nuclear_ipm_batch"]


def _sym(Y: np.ndarray) -> np.ndarray:
    """``(Y + Y^T) / 2`` of a stack (..., N, N)."""
    return (Y + np.swapaxes(Y, -1, -2)) / 2


@dataclass
class _Stack:
    """Factors of the problems still running: ``A`` (B, s, r1), the distinct queries ``Zq``
    (B, g, r2), the query of each constraint ``grp`` (B, s) and ``b`` (B, s)."""

    A: np.ndarray
    Zq: np.ndarray
    grp: np.ndarray
    b: np.ndarray

    def __post_init__(self) -> None:
        B, s, r1 = self.A.shape
        g, r2 = self.Zq.shape[1:]
        self.r1, self.N = r1, r1 + r2
        self.Zk = np.take_along_axis(self.Zq, self.grp[:, :, None], axis=1)  # (B, s, r2)
        self.At = np.swapaxes(self.A, 1, 2)
        self.Zqt = np.swapaxes(self.Zq, 1, 2)
        # constraints in runs of c per query (query j: rows j c .. j c + c - 1), as an
        # instance's constraints are: the query products are broadcast, not gathered
        c = s // g if g and s % g == 0 else 0
        self.c = c if c and np.all(self.grp == np.repeat(np.arange(g), c)) else 0
        if not self.c:  # flat positions of the gathers (k, l) -> (k, grp[l]), (grp[k], grp[l])
            base = np.arange(B)[:, None, None]
            self.pidx = (base * (s * g) + np.arange(s)[None, :, None] * g
                         + self.grp[:, None, :]).ravel()
            self.zidx = (base * (g * g) + self.grp[:, :, None] * g
                         + self.grp[:, None, :]).ravel()

    def take(self, keep: np.ndarray) -> _Stack:
        return _Stack(self.A[keep], self.Zq[keep], self.grp[keep], self.b[keep])

    def _blocks(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For a symmetric stack ``X`` (K, N, N) (K = B or 2B, shaped (K/B, B, ...)):
        ``A X_11 A^T`` (s, s), ``Pg = A X_12 Zq^T`` (s, g) and ``Zg = Zq X_22 Zq^T`` (g, g),
        the query products once per distinct query."""
        r1 = self.r1
        K, B = X.shape[0], self.A.shape[0]
        X4 = X.reshape(K // B, B, self.N, self.N)
        AX = self.A @ X4[:, :, :r1, :]  # (K/B, B, s, N): [A X_11, A X_12]
        Ax = AX[..., :r1] @ self.At
        Pg = AX[..., r1:] @ self.Zqt  # (K/B, B, s, g)
        Zg = self.Zq @ X4[:, :, r1:, r1:] @ self.Zqt  # (K/B, B, g, g)
        return Ax, Pg, Zg

    def _combine(self, Ax: np.ndarray, Pg1: np.ndarray, Zg1: np.ndarray, As: np.ndarray,
                 Pg2: np.ndarray, Zg2: np.ndarray) -> np.ndarray:
        """``M = Zx1 o As + Ax o Zx2 + T + T^T``, ``T = P1 o P2^T``, shape (B, s, s), with
        ``P_kl = Pg[k, grp_l]`` and ``Zx_kl = Zg[grp_k, grp_l]``."""
        B, s = Ax.shape[:2]
        g = Zg1.shape[1]
        if self.c:  # (B, g, c, g, c) views: k = (g_k, c_k), l = (g_l, c_l)
            c = self.c
            M = (As.reshape(B, g, c, g, c) * Zg1[:, :, None, :, None]
                 + Ax.reshape(B, g, c, g, c) * Zg2[:, :, None, :, None])
            # T[k, l] = Pg1[k, g_l] Pg2[l, g_k]
            T = (Pg1.reshape(B, g, c, g)[..., None]
                 * Pg2.reshape(B, g, c, g).transpose(0, 3, 1, 2)[:, :, None])
            M += T
            M += T.transpose(0, 3, 4, 1, 2)
            return M.reshape(B, s, s)
        P1 = np.take(Pg1.reshape(-1), self.pidx).reshape(B, s, s)
        P2 = np.take(Pg2.reshape(-1), self.pidx).reshape(B, s, s)
        T = P1 * np.swapaxes(P2, 1, 2)
        M = np.take(Zg1.reshape(-1), self.zidx).reshape(B, s, s) * As
        M += Ax * np.take(Zg2.reshape(-1), self.zidx).reshape(B, s, s)
        M += T
        M += np.swapaxes(T, 1, 2)
        return M

    def schur_hkm(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        """``M_kl = <F_k, X F_l S>`` (``S = Z^-1``), shape (B, s, s), symmetric."""
        (Ax, As), (P1, P2), (Zx, Zs) = self._blocks(np.concatenate([X, S]))
        return self._combine(Ax, P1, Zx, As, P2, Zs)

    def schur_nt(self, S: np.ndarray) -> np.ndarray:
        """``M_kl = <F_k, S F_l S>`` for the symmetric NT scaling ``S``, shape (B, s, s)."""
        (As,), (P,), (Zs,) = self._blocks(S)
        return self._combine(As, P, Zs, As, P, Zs)  # = 2 (P o P^T + Zs o As)

    def apply(self, Y: np.ndarray) -> np.ndarray:
        """``<F_k, Y_i>`` for (not necessarily symmetric) ``Y`` (B, N, N): shape (B, s)."""
        r1 = self.r1
        C = Y[:, :r1, r1:] + np.swapaxes(Y[:, r1:, :r1], 1, 2)  # (B, r1, r2)
        return np.sum((self.A @ C) * self.Zk, axis=2)

    def adjoint_block(self, y: np.ndarray) -> np.ndarray:
        """``sum_k y_ik a_ik z_ik^T``, shape (B, r1, r2)."""
        return np.swapaxes(self.A, 1, 2) @ (y[:, :, None] * self.Zk)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """``sum_k y_ik F_ik``, shape (B, N, N)."""
        G = self.adjoint_block(y)
        r1 = self.r1
        out = np.zeros((G.shape[0], self.N, self.N))
        out[:, :r1, r1:] = G
        out[:, r1:, :r1] = np.swapaxes(G, 1, 2)
        return out


class _SchurSolve:
    """Solve with a stack of Schur complements: Cholesky where it has a factor, the single
    solver's shifted Cholesky (:func:`._ipm._schur_solver`) for the ones rounding has
    left indefinite."""

    def __init__(self, M: np.ndarray) -> None:
        self.L, ok = _chol(M)
        self.single = {int(i): _schur_solver(M[i]) for i in np.flatnonzero(~ok)}

    def __call__(self, r: np.ndarray) -> np.ndarray:
        out = cho_solve((self.L, True), r[:, :, None], check_finite=False)[:, :, 0]
        for i, solve in self.single.items():
            out[i] = solve(r[i])
        return out


def _lp_step(x: np.ndarray, dx: np.ndarray, ineq: np.ndarray, tau: np.ndarray | float
             ) -> np.ndarray:
    """Per problem, the largest ``alpha <= 1`` keeping ``x + alpha dx >= 0`` on inequalities,
    damped by ``tau``: shape (B,)."""
    neg = (dx < 0) & ineq
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(neg, -x / np.where(neg, dx, -1.0), np.inf)
    m = np.min(ratio, axis=1) if ratio.shape[1] else np.full(x.shape[0], np.inf)
    return np.where(np.isinf(m), 1.0, np.minimum(1.0, tau * m))


def _steps_from_eig(lam: np.ndarray, tau: np.ndarray | float) -> np.ndarray:
    """Per problem, the largest ``alpha <= 1`` with ``1 + alpha lam >= 0`` (``lam`` (K,), the
    smallest eigenvalue of the scaled step), damped by ``tau``: shape (K,)."""
    with np.errstate(divide="ignore"):
        return np.where(lam >= -1e-300, 1.0, np.minimum(1.0, -tau / lam))


def _psd_steps(Linv: np.ndarray, D: np.ndarray, tau: np.ndarray | float) -> np.ndarray:
    """Largest ``alpha <= 1`` with ``M + alpha D`` PSD (``Linv = L^-1``, ``M = L L^T``),
    damped by ``tau``, for a stack: shape (K,)."""
    return _steps_from_eig(
        np.linalg.eigvalsh(_sym(Linv @ D @ np.swapaxes(Linv, 1, 2)))[:, 0], tau)


def _chol(Ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of a stack (K, N, N) and the mask (K,) of those that have one
    (the others get ``I``).

    ``np.linalg.cholesky`` factors the whole stack in one call and raises when any factor
    fails; only then are the factors computed one by one, to find the failed ones.
    """
    ok = np.ones(Ms.shape[0], dtype=bool)
    try:
        return np.linalg.cholesky(Ms), ok
    except np.linalg.LinAlgError:
        L = np.empty_like(Ms)
        eye = np.eye(Ms.shape[1])
        for i in range(Ms.shape[0]):
            try:
                L[i] = np.linalg.cholesky(Ms[i])
            except np.linalg.LinAlgError:
                ok[i], L[i] = False, eye
    return L, ok


_Steps = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _on_ok(ok: np.ndarray, core: Callable[..., _Steps], P: _Stack, args: Sequence[np.ndarray],
           factors: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """``(ok, *core(...))`` with ``core`` run on the problems ``ok`` only (zero steps for the
    others)."""
    if np.all(ok):
        return (ok, *core(P, *args, *factors))
    B = ok.size
    i = np.flatnonzero(ok)
    X = args[0]
    N, s = X.shape[1], args[1].shape[1]
    full = [np.zeros((B, N, N)), np.zeros((B, s)), np.zeros((B, s)), np.zeros((B, N, N)),
            np.zeros(B), np.zeros(B)]
    if i.size:
        part = core(P.take(i), *(a[i] for a in args), *(f[i] for f in factors))
        for f, p in zip(full, part, strict=True):
            f[i] = p
    return (ok, *full)


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
    if N > _DENSE_MAX:
        raise ValueError(f"nuclear_ipm_batch needs N = r1 + r2 <= {_DENSE_MAX}. Got N={N}.")
    if Bn == 0:
        return []
    out: list[IPMResult | None] = [None] * Bn  # every problem is finished below
    P = _Stack(np.asarray(A, float), np.asarray(Zq, float), np.asarray(grp, np.int64),
               np.asarray(b, float))
    ineq = np.arange(s) >= n_eq
    nu = N + int(ineq.sum())
    eye = np.eye(N)

    # ---- starting point (as the single solver)
    bnorm = 1.0 + np.max(np.abs(P.b), axis=1) if s else np.ones(Bn)
    xi = np.maximum(1.0, bnorm)
    if W0 is not None:
        good = np.all(np.isfinite(W0), axis=(1, 2)) & np.any(W0 != 0, axis=(1, 2))
        nucW0 = np.linalg.svd(np.where(good[:, None, None], W0, 0.0), compute_uv=False).sum(1)
        xi = np.where(good, nucW0 / N, xi)
    X = xi[:, None, None] * eye
    g1 = np.linalg.norm(P.adjoint_block(np.broadcast_to(ineq * 1.0, (Bn, s))), 2, axis=(1, 2))
    c0 = policy.start_dual(g1)
    y = np.where(ineq, c0[:, None], 0.0)
    Z = eye - P.adjoint(y)
    x = np.where(ineq, np.maximum(P.apply(X) - P.b, 0.0), 0.0)
    x = np.where(ineq, np.maximum(
        x, (np.trace(X, axis1=1, axis2=2) / nu * policy.START_SLACK)[:, None]), 0.0)

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
        # HKM blocked near the optimum: the single solver goes on with NT there; here the
        # problem leaves the stack (certified as it is, else solved again by the single solver)
        stop |= (stalls >= policy.STALLS_TO_NT) & (rel_gap <= policy.NEAR_GAP)
        # ---- one step of every problem that goes on: HKM, or NT while HKM's steps are blocked
        go = ~stop
        use_nt = go & nt_phase & (rel_gap > policy.NEAR_GAP)
        nb = len(ids)
        dX, dZ = np.zeros((nb, N, N)), np.zeros((nb, N, N))
        dx, dy, ap, ad = np.zeros((nb, s)), np.zeros((nb, s)), np.zeros(nb), np.zeros(nb)
        for mask, step in ((go & ~use_nt, _hkm_steps), (use_nt, _nt_steps)):
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
        stalls = np.where(np.minimum(ap, ad) < policy.STALL_STEP, stalls + 1, 0)
        nt_phase |= ((stalls >= policy.STALLS_TO_NT) & (it > policy.NT_AFTER)
                     & (rel_gap > policy.NEAR_GAP))  # as the single solver
        X = _sym(X + ap[:, None, None] * dX)
        x = x + ap[:, None] * dx
        y = y + ad[:, None] * dy
        Z = _sym(Z + ad[:, None, None] * dZ)
    finish(np.arange(len(ids)), it, np.zeros(len(ids), dtype=bool))
    return cast(list[IPMResult], out)


def _hkm_steps(P: _Stack, ineq: np.ndarray, nu: int, X: np.ndarray, x: np.ndarray,
               y: np.ndarray, Z: np.ndarray, Rd: np.ndarray, rp: np.ndarray, mu: np.ndarray,
               rel_gap: np.ndarray) -> tuple[np.ndarray, ...]:
    """One HKM predictor-corrector step of every problem of the stack (as
    :func:`._ipm._hkm_step`): ``(ok, dX, dx, dy, dZ, alpha_p, alpha_d)``, ``ok``
    false (and zero steps) where ``X`` or ``Z`` has lost definiteness."""
    B = X.shape[0]
    L, okf = _chol(np.concatenate([X, Z]))
    Linv = np.linalg.inv(L)
    return _on_ok(okf[:B] & okf[B:], partial(_hkm_core, ineq=ineq, nu=nu), P,
                  (X, x, y, Z, Rd, mu, rel_gap), (Linv[:B], Linv[B:]))


def _hkm_core(P: _Stack, X: np.ndarray, x: np.ndarray, y: np.ndarray, Z: np.ndarray,
              Rd: np.ndarray, mu: np.ndarray, rel_gap: np.ndarray, LX: np.ndarray,
              LZ: np.ndarray, *, ineq: np.ndarray, nu: int) -> _Steps:
    """:func:`_hkm_steps` given ``LX = chol(X)^-1``, ``LZ = chol(Z)^-1`` (B, N, N)."""
    Zinv = np.swapaxes(LZ, 1, 2) @ LZ
    M = P.schur_hkm(X, Zinv)
    yy = np.where(ineq, y, 1.0)
    diag = np.arange(M.shape[1])
    M[:, diag, diag] += np.where(ineq, x / yy, 0.0)
    solve = _SchurSolve(M)
    base = P.b + P.apply(X @ Rd @ Zinv)
    AZi = P.apply(Zinv)

    def direction(smu: np.ndarray, corr_X: np.ndarray | None, corr_lp: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rhs = base - smu[:, None] * AZi
        lp = np.where(ineq, smu[:, None] / yy, 0.0)
        cl: np.ndarray | float = 0.0
        CZ = None
        if corr_X is not None and corr_lp is not None:
            CZ = corr_X @ Zinv
            rhs = rhs + P.apply(CZ)
            lp = lp - np.where(ineq, corr_lp / yy, 0.0)
            cl = corr_lp
        dy = solve(rhs + lp)
        dZ = Rd - P.adjoint(dy)
        dX = smu[:, None, None] * Zinv - X - X @ dZ @ Zinv
        if CZ is not None:
            dX = dX - CZ
        dx = np.where(ineq, (smu[:, None] - x * y - x * dy - cl) / yy, 0.0)
        return _sym(dX), dy, dZ, dx

    def steps(dX: np.ndarray, dZ: np.ndarray, dx: np.ndarray, dy: np.ndarray,
              tau: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        nb = X.shape[0]
        tau2 = np.concatenate([tau, tau]) if isinstance(tau, np.ndarray) else tau
        a = _psd_steps(np.concatenate([LX, LZ]), np.concatenate([dX, dZ]), tau2)
        return (np.minimum(a[:nb], _lp_step(x, dx, ineq, tau)),
                np.minimum(a[nb:], _lp_step(y, dy, ineq, tau)))

    dXa, dya, dZa, dxa = direction(np.zeros(X.shape[0]), None, None)  # predictor
    ap, ad = steps(dXa, dZa, dxa, dya, 1.0)
    mu_aff = (np.sum((X + ap[:, None, None] * dXa) * (Z + ad[:, None, None] * dZa), axis=(1, 2))
              + np.sum(ineq * (x + ap[:, None] * dxa) * (y + ad[:, None] * dya), axis=1)) / nu
    sigma = policy.mehrotra_sigma(mu_aff, mu)
    dX, dy, dZ, dx = direction(sigma * mu, dXa @ dZa, dxa * dya)  # corrector
    ap, ad = steps(dX, dZ, dx, dy, policy.damping(rel_gap))
    return dX, dx, dy, dZ, ap, ad


def _nt_steps(P: _Stack, ineq: np.ndarray, nu: int, X: np.ndarray, x: np.ndarray,
              y: np.ndarray, Z: np.ndarray, Rd: np.ndarray, rp: np.ndarray, mu: np.ndarray,
              rel_gap: np.ndarray) -> tuple[np.ndarray, ...]:
    """One NT predictor-corrector step of every problem of the stack (as
    :func:`._ipm._nt_step` while the relative gap is above 1e-6, where it does no
    iterative refinement): ``(ok, dX, dx, dy, dZ, alpha_p, alpha_d)``.

    The scaling: ``X = L L^T``, ``Z = K K^T``, ``K^T L = U diag(v) V^T`` (SVD),
    ``G = L V diag(v)^(-1/2)``, ``S = G G^T`` (``S Z S = X``)."""
    B, N = X.shape[0], X.shape[1]
    L, okf = _chol(np.concatenate([X, Z]))
    ok = okf[:B] & okf[B:]
    v = np.zeros((B, N))
    Vt = np.broadcast_to(np.eye(N), (B, N, N)).copy()
    if ok.any():
        _, v[ok], Vt[ok] = np.linalg.svd(np.swapaxes(L[B:][ok], 1, 2) @ L[:B][ok])
    ok &= v[:, -1] > 0
    return _on_ok(ok, partial(_nt_core, ineq=ineq, nu=nu), P,
                  (X, x, y, Z, Rd, rp, mu, rel_gap), (L[:B], v, Vt))


def _nt_core(P: _Stack, X: np.ndarray, x: np.ndarray, y: np.ndarray, Z: np.ndarray,
             Rd: np.ndarray, rp: np.ndarray, mu: np.ndarray, rel_gap: np.ndarray,
             LX: np.ndarray, v: np.ndarray, Vt: np.ndarray, *, ineq: np.ndarray, nu: int
             ) -> _Steps:
    """:func:`_nt_steps` given ``LX = chol(X)`` and the SVD's ``v`` (B, N), ``Vt`` (B, N, N)."""
    G = (LX @ np.swapaxes(Vt, 1, 2)) / np.sqrt(v)[:, None, :]
    Gt = np.swapaxes(G, 1, 2)
    S = G @ Gt
    M = P.schur_nt(S)
    yy = np.where(ineq, y, 1.0)
    diag = np.arange(M.shape[1])
    M[:, diag, diag] += np.where(ineq, x / yy, 0.0)
    solve = _SchurSolve(M)
    has_rd = np.max(np.abs(Rd), axis=(1, 2)) > 0
    base = rp + np.where(has_rd[:, None], P.apply(S @ Rd @ S), 0.0)
    h = 1.0 / np.sqrt(v)
    hh = h[:, :, None] * h[:, None, :]

    def direction(smu: np.ndarray, corr: np.ndarray | None, corr_lp: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        # the scaled complementarity (V D + D V) / 2 = R, R = sigma_mu I - V^2 - corr
        if corr is None:
            Dd = smu[:, None] / v - v
            D = Dd[:, :, None] * np.eye(v.shape[1])
            GDG = (G * Dd[:, None, :]) @ Gt
        else:
            R = -corr
            R[:, diag_n, diag_n] += smu[:, None] - v * v
            D = 2.0 * R / (v[:, :, None] + v[:, None, :])
            GDG = G @ D @ Gt
        c: np.ndarray | float = 0.0 if corr_lp is None else corr_lp
        lp = np.where(ineq, (smu[:, None] - x * y - c) / yy, 0.0)
        dy = solve(base - P.apply(GDG) + lp)
        dZ = Rd - P.adjoint(dy)
        dZt = _sym(Gt @ dZ @ G)
        dXt = _sym(D - dZt)
        dx = np.where(ineq, (smu[:, None] - x * y - c - x * dy) / yy, 0.0)
        return dXt, dZt, dy, dZ, dx

    def steps(dXt: np.ndarray, dZt: np.ndarray, dx: np.ndarray, dy: np.ndarray,
              tau: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        nb = X.shape[0]
        tau2 = np.concatenate([tau, tau]) if isinstance(tau, np.ndarray) else tau
        lam = np.linalg.eigvalsh(_sym(np.concatenate([dXt, dZt]) * np.concatenate([hh, hh])))
        a = _steps_from_eig(lam[:, 0], tau2)
        return (np.minimum(a[:nb], _lp_step(x, dx, ineq, tau)),
                np.minimum(a[nb:], _lp_step(y, dy, ineq, tau)))

    diag_n = np.arange(v.shape[1])
    dXa, dZa, dya, _, dxa = direction(np.zeros(X.shape[0]), None, None)  # predictor
    ap, ad = steps(dXa, dZa, dxa, dya, 1.0)
    V = v[:, :, None] * np.eye(v.shape[1])
    mu_aff = (np.sum((V + ap[:, None, None] * dXa) * (V + ad[:, None, None] * dZa), axis=(1, 2))
              + np.sum(ineq * (x + ap[:, None] * dxa) * (y + ad[:, None] * dya), axis=1)) / nu
    C = dXa @ dZa
    sigma = policy.mehrotra_sigma(mu_aff, mu)
    dXt, dZt, dy, dZ, dx = direction(sigma * mu, _sym(C), dxa * dya)  # corrector
    ap, ad = steps(dXt, dZt, dx, dy, policy.damping(rel_gap))
    return G @ dXt @ Gt, dx, dy, dZ, ap, ad
