"""One predictor-corrector step of every problem of a stack (:mod:`._ipm_batch`), as
:mod:`._newton` takes it for one problem: HKM and NT, each problem with its own step lengths
and centring; a problem whose ``X`` or ``Z`` has lost definiteness gets zero steps and
``ok`` false.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from . import _policy as policy
from ._stack import SchurSolve, Stack, chol, sym

__all__ = ["hkm_steps", "nt_steps"]


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
        np.linalg.eigvalsh(sym(Linv @ D @ np.swapaxes(Linv, 1, 2)))[:, 0], tau)



_Steps = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _on_ok(ok: np.ndarray, core: Callable[..., _Steps], P: Stack, args: Sequence[np.ndarray],
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


def hkm_steps(P: Stack, ineq: np.ndarray, nu: int, X: np.ndarray, x: np.ndarray,
               y: np.ndarray, Z: np.ndarray, Rd: np.ndarray, rp: np.ndarray, mu: np.ndarray,
               rel_gap: np.ndarray) -> tuple[np.ndarray, ...]:
    """One HKM predictor-corrector step of every problem of the stack (as
    :func:`._newton.hkm_step`): ``(ok, dX, dx, dy, dZ, alpha_p, alpha_d)``, ``ok``
    false (and zero steps) where ``X`` or ``Z`` has lost definiteness."""
    B = X.shape[0]
    L, okf = chol(np.concatenate([X, Z]))
    Linv = np.linalg.inv(L)
    return _on_ok(okf[:B] & okf[B:], partial(_hkm_core, ineq=ineq, nu=nu), P,
                  (X, x, y, Z, Rd, mu, rel_gap), (Linv[:B], Linv[B:]))


def _hkm_core(P: Stack, X: np.ndarray, x: np.ndarray, y: np.ndarray, Z: np.ndarray,
              Rd: np.ndarray, mu: np.ndarray, rel_gap: np.ndarray, LX: np.ndarray,
              LZ: np.ndarray, *, ineq: np.ndarray, nu: int) -> _Steps:
    """:func:`hkm_steps` given ``LX = chol(X)^-1``, ``LZ = chol(Z)^-1`` (B, N, N)."""
    Zinv = np.swapaxes(LZ, 1, 2) @ LZ
    M = P.schur_hkm(X, Zinv)
    yy = np.where(ineq, y, 1.0)
    diag = np.arange(M.shape[1])
    M[:, diag, diag] += np.where(ineq, x / yy, 0.0)
    solve = SchurSolve(M)
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
        return sym(dX), dy, dZ, dx

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


def nt_steps(P: Stack, ineq: np.ndarray, nu: int, X: np.ndarray, x: np.ndarray,
              y: np.ndarray, Z: np.ndarray, Rd: np.ndarray, rp: np.ndarray, mu: np.ndarray,
              rel_gap: np.ndarray) -> tuple[np.ndarray, ...]:
    """One NT predictor-corrector step of every problem of the stack (as
    :func:`._newton.nt_step` while the relative gap is above 1e-6, where it does no
    iterative refinement): ``(ok, dX, dx, dy, dZ, alpha_p, alpha_d)``.

    The scaling: ``X = L L^T``, ``Z = K K^T``, ``K^T L = U diag(v) V^T`` (SVD),
    ``G = L V diag(v)^(-1/2)``, ``S = G G^T`` (``S Z S = X``)."""
    B, N = X.shape[0], X.shape[1]
    L, okf = chol(np.concatenate([X, Z]))
    ok = okf[:B] & okf[B:]
    v = np.zeros((B, N))
    Vt = np.broadcast_to(np.eye(N), (B, N, N)).copy()
    if ok.any():
        _, v[ok], Vt[ok] = np.linalg.svd(np.swapaxes(L[B:][ok], 1, 2) @ L[:B][ok])
    ok &= v[:, -1] > 0
    return _on_ok(ok, partial(_nt_core, ineq=ineq, nu=nu), P,
                  (X, x, y, Z, Rd, rp, mu, rel_gap), (L[:B], v, Vt))


def _nt_core(P: Stack, X: np.ndarray, x: np.ndarray, y: np.ndarray, Z: np.ndarray,
             Rd: np.ndarray, rp: np.ndarray, mu: np.ndarray, rel_gap: np.ndarray,
             LX: np.ndarray, v: np.ndarray, Vt: np.ndarray, *, ineq: np.ndarray, nu: int
             ) -> _Steps:
    """:func:`nt_steps` given ``LX = chol(X)`` and the SVD's ``v`` (B, N), ``Vt`` (B, N, N)."""
    G = (LX @ np.swapaxes(Vt, 1, 2)) / np.sqrt(v)[:, None, :]
    Gt = np.swapaxes(G, 1, 2)
    S = G @ Gt
    M = P.schur_nt(S)
    yy = np.where(ineq, y, 1.0)
    diag = np.arange(M.shape[1])
    M[:, diag, diag] += np.where(ineq, x / yy, 0.0)
    solve = SchurSolve(M)
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
        dZt = sym(Gt @ dZ @ G)
        dXt = sym(D - dZt)
        dx = np.where(ineq, (smu[:, None] - x * y - c - x * dy) / yy, 0.0)
        return dXt, dZt, dy, dZ, dx

    def steps(dXt: np.ndarray, dZt: np.ndarray, dx: np.ndarray, dy: np.ndarray,
              tau: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        nb = X.shape[0]
        tau2 = np.concatenate([tau, tau]) if isinstance(tau, np.ndarray) else tau
        lam = np.linalg.eigvalsh(sym(np.concatenate([dXt, dZt]) * np.concatenate([hh, hh])))
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
    dXt, dZt, dy, dZ, dx = direction(sigma * mu, sym(C), dxa * dya)  # corrector
    ap, ad = steps(dXt, dZt, dx, dy, policy.damping(rel_gap))
    return G @ dXt @ Gt, dx, dy, dZ, ap, ad
