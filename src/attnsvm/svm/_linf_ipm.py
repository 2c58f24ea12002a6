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

from ._rowspace import RowGram, _cholesky, _tri, spd_solver, stalled

__all__ = ["LinfIPMResult", "linf_ipm"]


@dataclass
class LinfIPMResult:
    """The iterate of least certified gap: ``t``, ``W`` (d1, d2), ``lam`` (m,)."""

    t: float
    W: np.ndarray
    lam: np.ndarray
    iterations: int
    newton: str = "dense"


def _step(x: np.ndarray, dx: np.ndarray) -> float:
    neg = dx < 0
    return float(np.min(-x[neg] / dx[neg])) if np.any(neg) else np.inf

#: entries whose box weight ``Du + Dl`` is below this times the median stay in the Schur
#: complement of the row-space Newton solve (the free entries, whose weight tends to zero)
_FREE = 1e-3
#: the Schur complement keeps up to max(m, this) free entries (a degenerate optimal face can
#: have many more free entries than rows; eliminating them would divide by weights near 0)
_FREE_MAX = 2000

Newton = Callable[[float, np.ndarray, np.ndarray], tuple[float, np.ndarray, np.ndarray]]


def _dense_newton(E: np.ndarray, AA: np.ndarray, zz: np.ndarray, onehot: np.ndarray,
                  Du: np.ndarray, Dl: np.ndarray, D: np.ndarray, n_eq: int, d1: int, d2: int
                  ) -> Newton:
    """Solver of the Newton system in ``(t, w)``: the ``(1 + N)`` square matrix (box diagonal
    and border, rows ``sum_g kron(A_g^T D_g A_g, z_g z_g^T)``), equalities by a Schur
    complement."""

    N = d1 * d2
    m = AA.shape[0]
    Dk = np.zeros(m)
    Dk[n_eq:] = D
    Ag = onehot @ (Dk[:, None] * AA)  # (g, d1 d1)
    CDC = (Ag.T @ zz).reshape(d1, d1, d2, d2).transpose(0, 2, 1, 3).reshape(N, N)
    M = np.empty((N + 1, N + 1))
    M[1:, 1:] = CDC
    M[1:, 1:][np.diag_indices(N)] += Du + Dl
    M[0, 0] = float(Du.sum() + Dl.sum())
    M[0, 1:] = M[1:, 0] = Dl - Du
    msolve = spd_solver(M)
    MiE = msolve(E.T) if n_eq else None
    Seq = E @ MiE if n_eq else None

    def solve(rhs_t: float, rhs_w: np.ndarray, re: np.ndarray
              ) -> tuple[float, np.ndarray, np.ndarray]:
        dy = msolve(np.concatenate([[rhs_t], rhs_w]))
        dle = np.zeros(0)
        if n_eq:
            assert MiE is not None and Seq is not None
            dle = np.linalg.solve(Seq, re - E @ dy)
            dy = dy + MiE @ dle
        return float(dy[0]), dy[1:], dle

    return solve


def _rows_newton(rg: RowGram, Du: np.ndarray, Dl: np.ndarray, D: np.ndarray, n_eq: int,
                 values: Callable[[np.ndarray], np.ndarray],
                 combine: Callable[[np.ndarray], np.ndarray]) -> Newton:
    """Solver of the same Newton system in the row space.

    ``M = B + C_in^T D C_in`` with ``B = [[sum(Du + Dl), e^T], [e, diag(delta)]]``
    (``delta = Du + Dl``, ``e = Dl - Du``) and the equality rows as constraints: with
    ``p_in = D C_in dy`` and ``p_eq`` their multipliers, ``B dy + C^T p = r`` and
    ``C dy - D^{-1} p = h`` (``D^{-1} = 0`` and ``h`` the residual on equalities).  The
    entries split into those near a bound (``delta`` large), eliminated through ``1 / delta``
    into the ``m x m`` matrix ``Kb = D^{-1} + C_b diag(1 / delta_b) C_b^T`` (a row Gram), and
    the few free ones ``F`` (``delta`` tiny near the end: eliminating them would divide by
    it), kept with ``t`` in a Schur complement of size ``1 + |F|``,
    ``S = H_F + J^T Kb^{-1} J``, ``J = [-C_b e_b / delta_b, C_F]``.  Any split is exact; this
    one keeps both factorizations well conditioned.
    """
    from scipy.linalg import cho_solve

    m, N = rg.m, Du.size
    delta = Du + Dl
    e = Dl - Du
    dmed = float(np.median(delta))
    cand = np.flatnonzero(delta < _FREE * dmed)
    if cand.size > max(m, _FREE_MAX):
        cand = cand[np.argsort(delta[cand], kind="stable")[:max(m, _FREE_MAX)]]
    F = np.sort(cand)
    bnd = np.ones(N, dtype=bool)
    bnd[F] = False
    RB = np.where(bnd, 1.0 / delta, 0.0)
    iF, jF = np.divmod(F, rg.d2)
    CF = rg.A[:, iF] * rg.Zq[rg.inv][:, jF]                  # (m, |F|)
    Kb = rg.gram(RB.reshape(rg.d1, rg.d2))
    k = np.arange(n_eq, m)
    Kb[k, k] += 1.0 / D
    fk = _cholesky(Kb)
    v = values(RB * e)
    J = np.column_stack([-v, CF])
    LiJ = _tri(fk, J, False)                                 # L^-1 J, Kb = L L^T
    S = LiJ.T @ LiJ
    S[0, 0] += float(np.sum(delta[F])) + float(np.sum((4.0 * Du * Dl / delta)[bnd]))
    S[0, 1:] += e[F]
    S[1:, 0] += e[F]
    S[np.arange(1, F.size + 1), np.arange(1, F.size + 1)] += delta[F]
    fs = _cholesky(S)

    def solve(rhs_t: float, rhs_w: np.ndarray, re: np.ndarray
              ) -> tuple[float, np.ndarray, np.ndarray]:
        r3 = -values(RB * rhs_w)
        r3[:n_eq] += re
        rhs = np.concatenate([[rhs_t - float((RB * e) @ rhs_w)], rhs_w[F]])
        y = cho_solve(fs, rhs + LiJ.T @ _tri(fk, r3, False), check_finite=False)
        p = cho_solve(fk, J @ y - r3, check_finite=False)
        dt = float(y[0])
        dw = RB * (rhs_w - e * dt - combine(p))
        dw[F] = y[1:]
        return dt, dw, -p[:n_eq]

    return solve


def _refined(nsolve: Newton, Du: np.ndarray, Dl: np.ndarray, D: np.ndarray, n_eq: int,
             values: Callable[[np.ndarray], np.ndarray],
             combine: Callable[[np.ndarray], np.ndarray], steps: int = 2) -> Newton:
    """``nsolve`` refined against the Newton system itself, ``M dy - E^T dle = r``,
    ``E dy = re`` (``M`` the box and inequality rows, ``E`` the equality rows): near the
    end both factorizations lose digits to the spread of the weights, and the refinement
    (products with the rows only) wins them back; it stops where the residual stops falling.
    """
    delta, e = Du + Dl, Dl - Du
    sd = float(delta.sum())
    m = n_eq + D.size

    def residual(rhs_t: float, rhs_w: np.ndarray, re: np.ndarray, dt: float, dw: np.ndarray,
                 dle: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        v = values(dw)
        x = np.zeros(m)
        x[n_eq:] = D * v[n_eq:]
        x[:n_eq] = -dle
        return (rhs_t - (sd * dt + float(e @ dw)),
                rhs_w - (e * dt + delta * dw + combine(x)), re - v[:n_eq])

    def solve(rhs_t: float, rhs_w: np.ndarray, re: np.ndarray
              ) -> tuple[float, np.ndarray, np.ndarray]:
        dt, dw, dle = nsolve(rhs_t, rhs_w, re)
        rt, rw, rr = residual(rhs_t, rhs_w, re, dt, dw, dle)
        size = np.sqrt(rt * rt + float(rw @ rw) + float(rr @ rr))
        scale = np.sqrt(rhs_t * rhs_t + float(rhs_w @ rhs_w) + float(re @ re))
        for _ in range(steps if size > 1e-13 * scale else 0):
            ct, cw, cl = nsolve(rt, rw, rr)
            t2, w2, l2 = dt + ct, dw + cw, dle + cl
            rt2, rw2, rr2 = residual(rhs_t, rhs_w, re, t2, w2, l2)
            size2 = np.sqrt(rt2 * rt2 + float(rw2 @ rw2) + float(rr2 @ rr2))
            if not size2 < size:
                break
            dt, dw, dle, rt, rw, rr, size = t2, w2, l2, rt2, rw2, rr2, size2
        return dt, dw, dle

    return solve


def linf_ipm(A: np.ndarray, Zc: np.ndarray, inv: np.ndarray, Zq: np.ndarray, b: np.ndarray,
             n_eq: int, W0: np.ndarray, *, certify: Callable[[np.ndarray, np.ndarray], float],
             target: float = 1e-12, max_iter: int = 80, newton: str = "auto"
             ) -> LinfIPMResult:
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
    newton : {"auto", "rows", "dense"}
        The Newton system in the row space (``m x m``, through Woodbury; "auto" where
        ``m < d1 d2``) or in ``(t, w)`` (``(1 + d1 d2)`` square).

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
    if newton not in ("auto", "rows", "dense"):
        raise ValueError(f"newton must be 'auto', 'rows' or 'dense', not {newton!r}")
    rows = newton == "rows" or (newton == "auto" and m < N)
    rg = RowGram(A, Zq, inv) if rows else None
    E = onehot = AA = zz = np.zeros(0)
    if rg is None:
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
    mus: list[float] = []
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
        try:
            nsolve = _refined(
                _rows_newton(rg, Du, Dl, D, n_eq, values, combine) if rg is not None
                else _dense_newton(E, AA, zz, onehot, Du, Dl, D, n_eq, d1, d2),
                Du, Dl, D, n_eq, values, combine)
        except np.linalg.LinAlgError:
            break
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
            dt, dw, dle = nsolve(rhs_t, rhs_w, re)
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
        mus.append(mu)
        if gap <= target or max(ap, ad) < 1e-12 or stalled(history, mus):
            break
    if best is None:
        best = LinfIPMResult(t=t, W=w.reshape(d1, d2).copy(), lam=lam.copy(), iterations=it)
    best.iterations = it
    best.newton = "rows" if rg is not None else "dense"
    return best
