# ruff: noqa: B023  (the per-iteration closures below run within their own iteration)
"""Primal-dual interior point for the max-norm SVM.

    min t  s.t.  u = t 1 - w >= 0,  l = t 1 + w >= 0  (w = vec W, N = d1 d2 entries),
                 <W, a_k z_k^T> - s_k = b_k, s_k >= 0 (k >= n_eq),
                 <W, a_k z_k^T> = b_k (k < n_eq).

Dual: ``max lam . b`` s.t. ``sum(zu + zl) = 1``, ``C^T lam = zu - zl``, all ``>= 0`` (on
inequalities), i.e. ``||sum lam_k a_k z_k^T||_1 <= 1``.  Mehrotra predictor-corrector; the
Newton system lives in ``(t, w)`` (``1 + N`` unknowns, whatever the number of rows m): the box
contributes a diagonal and a border, the rows ``sum_g kron(A_g^T D_g A_g, z_g z_g^T)`` (one
matrix product over the distinct queries), never the ``m x N`` constraint matrix.  Equality
rows enter through a small Schur complement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve

__all__ = ["LinfIPMResult", "linf_ipm"]


@dataclass
class LinfIPMResult:
    """The iterate of least certified gap: ``t``, ``W`` (d1, d2), ``lam`` (m,)."""

    t: float
    W: np.ndarray
    lam: np.ndarray
    iterations: int


def _step(x: np.ndarray, dx: np.ndarray) -> float:
    neg = dx < 0
    return float(np.min(-x[neg] / dx[neg])) if np.any(neg) else np.inf


def linf_ipm(A: np.ndarray, Zc: np.ndarray, inv: np.ndarray, Zq: np.ndarray, b: np.ndarray,
             n_eq: int, W0: np.ndarray, *, certify: Callable[[np.ndarray, np.ndarray], float],
             target: float = 1e-12, max_iter: int = 80) -> LinfIPMResult:
    """Run from ``W0`` until ``certify(W, lam) <= target`` (or no more progress).

    Parameters
    ----------
    A : ndarray, shape (m, d1)
    Zc : ndarray, shape (m, d2)
    inv, Zq : ndarray
        Query group of each row (m,) and the distinct queries (g, d2).
    b : ndarray, shape (m,)
    n_eq : int
    W0 : ndarray, shape (d1, d2)
        Start (the Frobenius solution works well).
    certify : callable ``(W, lam) -> gap``
        Certified relative gap of an iterate.
    target, max_iter : float, int

    Returns
    -------
    LinfIPMResult
    """
    m, d1 = A.shape
    d2 = Zc.shape[1]
    N = d1 * d2
    ng = Zq.shape[0]
    ineq = np.arange(n_eq, m)
    eq = np.arange(n_eq)
    onehot = np.zeros((ng, m))
    onehot[inv, np.arange(m)] = 1.0
    AA = (A[:, :, None] * A[:, None, :]).reshape(m, d1 * d1)
    zz = (Zq[:, :, None] * Zq[:, None, :]).reshape(ng, d2 * d2)
    E = np.zeros((n_eq, N + 1))
    if n_eq:
        E[:, 1:] = np.einsum("ki,kj->kij", A[eq], Zc[eq]).reshape(n_eq, N)

    def values(w: np.ndarray) -> np.ndarray:
        return np.einsum("kd,kd->k", A, (Zq @ w.reshape(d1, d2).T)[inv])

    def combine(x: np.ndarray) -> np.ndarray:
        return (A.T @ (x[:, None] * Zc)).ravel()

    w = W0.ravel().copy()
    t = 1.5 * max(float(np.max(np.abs(w))), 1e-8)
    s = np.maximum(values(w)[ineq] - b[ineq], 1.0)
    lam = np.zeros(m)
    lam[ineq] = t / m
    zu = np.full(N, 0.5 / N)
    zl = np.full(N, 0.5 / N)
    nc = 2 * N + ineq.size
    best: LinfIPMResult | None = None
    best_gap = np.inf
    history: list[float] = []
    it = 0
    for it in range(1, max_iter + 1):
        u, lo = t - w, t + w
        if u.min() <= 0 or lo.min() <= 0:  # t - w lost to rounding: the end of double precision
            break
        v = values(w)
        mu = (float(u @ zu) + float(lo @ zl) + float(s @ lam[ineq])) / nc
        rp = b[ineq] - v[ineq] + s
        re = b[eq] - v[eq]
        rt = 1.0 - float(zu.sum() + zl.sum())
        rw = combine(lam) - zu + zl
        Du, Dl = zu / u, zl / lo
        D = lam[ineq] / s
        Dk = np.zeros(m)
        Dk[ineq] = D
        Ag = onehot @ (Dk[:, None] * AA)  # (g, d1 d1)
        CDC = (Ag.T @ zz).reshape(d1, d1, d2, d2).transpose(0, 2, 1, 3).reshape(N, N)
        M = np.empty((N + 1, N + 1))
        M[1:, 1:] = CDC
        M[1:, 1:][np.diag_indices(N)] += Du + Dl
        M[0, 0] = float(Du.sum() + Dl.sum())
        M[0, 1:] = M[1:, 0] = Dl - Du
        try:
            fac = cho_factor(M)
        except np.linalg.LinAlgError:
            try:
                fac = cho_factor(M + 1e-14 * np.trace(M) / (N + 1) * np.eye(N + 1))
            except np.linalg.LinAlgError:
                break
        MiE = cho_solve(fac, E.T) if n_eq else None
        Seq = E @ MiE if n_eq else None
        Ain, Zin = A[ineq], Zc[ineq]

        def direction(smu: float, rc: tuple[np.ndarray, np.ndarray, np.ndarray] | None
                      ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                 np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            cu, cl, cs = rc if rc is not None else (0.0, 0.0, 0.0)
            hu = (smu - cu) / u - zu
            hl = (smu - cl) / lo - zl
            q = (smu - cs) / s - lam[ineq]
            rhs_w = rw + (Ain.T @ ((q + D * rp)[:, None] * Zin)).ravel() - hu + hl
            rhs_t = float(hu.sum() + hl.sum()) - rt
            dy = cho_solve(fac, np.concatenate([[rhs_t], rhs_w]))
            dle = np.zeros(0)
            if n_eq:
                assert MiE is not None and Seq is not None
                dle = np.linalg.solve(Seq, re - E @ dy)
                dy = dy + MiE @ dle
            dt, dw = float(dy[0]), dy[1:]
            du, dl_ = dt - dw, dt + dw
            dzu = hu - Du * du
            dzl = hl - Dl * dl_
            cw = values(dw)
            ds = cw[ineq] - rp
            dlam = np.concatenate([dle, q + D * rp - D * cw[ineq]])
            return dt, dw, du, dl_, dzu, dzl, ds, dlam, cw

        def steps(du: np.ndarray, dl_: np.ndarray, dzu: np.ndarray, dzl: np.ndarray,
                  ds: np.ndarray, dlam: np.ndarray) -> tuple[float, float]:
            ap = min(1.0, _step(u, du), _step(lo, dl_), _step(s, ds))
            ad = min(1.0, _step(zu, dzu), _step(zl, dzl), _step(lam[ineq], dlam[n_eq:]))
            return ap, ad

        dt, dw, du, dl_, dzu, dzl, ds, dlam, _ = direction(0.0, None)
        ap, ad = steps(du, dl_, dzu, dzl, ds, dlam)
        mu_aff = (float((u + ap * du) @ (zu + ad * dzu)) + float((lo + ap * dl_) @ (zl + ad * dzl))
                  + float((s + ap * ds) @ (lam[ineq] + ad * dlam[n_eq:]))) / nc
        sigma = min(1.0, (mu_aff / mu) ** 3) if mu > 0 else 0.0
        dt, dw, du, dl_, dzu, dzl, ds, dlam, _ = direction(
            sigma * mu, (du * dzu, dl_ * dzl, ds * dlam[n_eq:]))
        ap, ad = steps(du, dl_, dzu, dzl, ds, dlam)
        ap, ad = min(1.0, 0.99 * ap), min(1.0, 0.99 * ad)
        t, w, s = t + ap * dt, w + ap * dw, s + ap * ds
        zu, zl, lam = zu + ad * dzu, zl + ad * dzl, lam + ad * dlam
        gap = float(certify(w.reshape(d1, d2), lam))
        if best is None or gap < best_gap:
            best_gap = gap
            best = LinfIPMResult(t=t, W=w.reshape(d1, d2).copy(), lam=lam.copy(), iterations=it)
        history.append(best_gap)
        stalled = len(history) > 4 and best_gap > 0.5 * history[-5]
        if gap <= target or max(ap, ad) < 1e-12 or stalled:
            break
    if best is None:
        best = LinfIPMResult(t=t, W=w.reshape(d1, d2).copy(), lam=lam.copy(), iterations=it)
    best.iterations = it
    return best
