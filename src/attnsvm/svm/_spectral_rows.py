"""Row-space Newton solves for the spectral-norm interior point (reduced coordinates).

The HKM Newton matrix of :mod:`._spectral_ipm` on ``y = (t, vec W)`` is
``M = M_sdp(S, Z) + C^T D C``, ``(1 + r1 r2)`` square.  On the central path (``Z = mu S^-1``)
its semidefinite part is ``mu H0``, the Hessian of ``-log det S`` (``S = t I + L(W)``), and in
the singular basis of ``W = U diag(sigma) V^T`` that Hessian is explicit: entry ``(i, j)`` of
``X = U^T W V`` couples only with ``(j, i)`` (2 x 2 blocks) and with ``t`` on the diagonal
``(i, i)``.  So ``P = mu H0 + C^T D C`` is solved exactly in the row space through Woodbury
(:mod:`._rowspace`: an ``m x m`` matrix of the rows rotated into that basis), the pairs whose
inverse Hessian grows without bound kept with ``t`` in a small Schur complement; ``M`` itself
is solved by conjugate gradients preconditioned with ``P`` (products with ``M`` cost two
``(r1 + r2)`` square matrix products and the rows).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._rowspace import RowGram, _cholesky, _tri

__all__ = ["barrier_preconditioner", "pcg"]

#: pairs whose inverse Hessian is above this times the median stay in the Schur complement
_FREE = 1e3


Newton = Callable[[float, np.ndarray, np.ndarray], tuple[float, np.ndarray, np.ndarray]]


def _pair_newton(rg: RowGram, Hd: np.ndarray, Hx: np.ndarray, ed: np.ndarray, mu: float,
                 t: float, sig: np.ndarray, p: int, rc: int, D: np.ndarray, n_eq: int
                 ) -> Newton:
    """Solver of ``[[c0, e^T], [e, H]] + C_in^T D C_in`` (equalities as constraints) with
    ``H X = Hd * X + Hx * X^T`` on the leading ``rc x rc`` block, ``e`` on its diagonal.

    As in the max-norm solver: the pairs with a large inverse Hessian (``F``) stay with ``t``
    in the Schur complement ``S = H_F + J^T Kb^-1 J``; the others are eliminated into
    ``Kb = D^-1 + C_b H_b^-1 C_b^T`` (row Gram and transpose-pairing terms).
    """
    from scipy.linalg import cho_solve

    r1, r2 = Hd.shape
    m = rg.m
    ci = np.arange(rc)
    # inverse of the 2 x 2 pair blocks: H^-1 X = Rd * X + Tx * X^T (core)
    Rd = 1.0 / Hd
    core = Hd[:rc, :rc]
    det = core * core.T - Hx * Hx
    Rd[:rc, :rc] = core.T / det
    Tx = -Hx / det
    Rd[ci, ci] = 1.0 / Hd[ci, ci]
    Tx[ci, ci] = 0.0
    score = Rd.copy()
    score[:rc, :rc] = np.maximum(score[:rc, :rc], score[:rc, :rc].T)
    flat = score.ravel()
    med = float(np.median(flat))
    cand = np.flatnonzero(flat > _FREE * med)
    if cand.size > m:
        cand = cand[np.argsort(-flat[cand], kind="stable")[:m]]
    Fm = np.zeros((r1, r2), dtype=bool)
    Fm.ravel()[cand] = True
    Fm[:rc, :rc] |= Fm[:rc, :rc].T                            # pairs stay together
    F = np.flatnonzero(Fm.ravel())
    Bm = ~Fm
    RdB = np.where(Bm, Rd, 0.0)
    TxB = np.where(Bm[:rc, :rc], Tx, 0.0)

    def hinvB(X: np.ndarray) -> np.ndarray:
        Y = RdB * X
        Y[:rc, :rc] += TxB * X[:rc, :rc].T
        return Y

    A, Zg, inv = rg.A, rg.Zq, rg.inv
    Zk = Zg[inv]

    def values(X: np.ndarray) -> np.ndarray:
        return np.einsum("kd,kd->k", A, (Zg @ X.T)[inv])

    def combine(x: np.ndarray) -> np.ndarray:
        return A.T @ (x[:, None] * Zk)

    Kb = rg.gram(RdB) + rg.cross(TxB)
    k = np.arange(n_eq, m)
    Kb[k, k] += 1.0 / D
    fk = _cholesky(Kb)
    E = np.zeros((r1, r2))
    E[ci, ci] = ed
    HiE = hinvB(E)
    v = values(HiE)
    iF, jF = np.divmod(F, r2)
    CF = A[:, iF] * Zk[:, jF]
    J = np.column_stack([-v, CF])
    LiJ = _tri(fk, J, False)
    S = LiJ.T @ LiJ
    # t-row: c0 - e_B^T H_B^-1 e_B, stably: 2 mu / (t^2 + sig^2) per diagonal pair in B
    diagF = Fm[ci, ci]
    c_t = np.where(diagF, 2.0 * mu * (t * t + sig ** 2) / (t * t - sig ** 2) ** 2,
                   2.0 * mu / (t * t + sig ** 2))
    S[0, 0] += float(np.sum(c_t)) + mu * (p - 2 * rc) / t ** 2
    eF = E.ravel()[F]
    S[0, 1:] += eF
    S[1:, 0] += eF
    nF = F.size
    S[np.arange(1, nF + 1), np.arange(1, nF + 1)] += Hd.ravel()[F]
    if nF:
        pos = -np.ones(r1 * r2, dtype=np.int64)
        pos[F] = np.arange(nF)
        inc = (iF < rc) & (jF < rc) & (iF != jF)
        partner = pos[jF[inc] * r2 + iF[inc]]
        S[1 + np.flatnonzero(inc), 1 + partner] += Hx[iF[inc], jF[inc]]
    fs = _cholesky(S)

    def solve(rhs_t: float, rhs_X: np.ndarray, re: np.ndarray
              ) -> tuple[float, np.ndarray, np.ndarray]:
        r3 = -values(hinvB(rhs_X))
        r3[:n_eq] += re
        rhs = np.concatenate([[rhs_t - float(np.vdot(HiE, rhs_X))], rhs_X.ravel()[F]])
        y = cho_solve(fs, rhs + LiJ.T @ _tri(fk, r3, False), check_finite=False)
        pvec = cho_solve(fk, J @ y - r3, check_finite=False)
        dt = float(y[0])
        dX = hinvB(rhs_X - E * dt - combine(pvec))
        dX.ravel()[F] = y[1:]
        return dt, dX, -pvec[:n_eq]

    return solve


def barrier_preconditioner(A: np.ndarray, Zq: np.ndarray, inv: np.ndarray, W: np.ndarray,
                           t: float, mu: float, D: np.ndarray
                           ) -> Callable[[np.ndarray], np.ndarray]:
    """``y -> P^-1 y`` for ``P = mu H0(t, W) + C^T D C`` (``y = (t, vec W)``; no equality
    rows), ``H0`` the Hessian of ``-log det(t I + L(W))``: the Newton matrix of the HKM
    interior point with its dual ``Z`` replaced by ``mu S^-1`` (equal on the central path).
    Solved in the row space (:func:`_pair_newton`), in the singular basis of ``W``."""
    r1, r2 = W.shape
    rc, p = min(r1, r2), r1 + r2
    U, sig, Vt = np.linalg.svd(W)
    V = Vt.T
    den = t * t - sig ** 2
    al, be = t / den, -sig / den
    ci = np.arange(rc)
    P = np.full(r1, 1.0 / t)
    P[:rc] = al
    Rr = np.full(r2, 1.0 / t)
    Rr[:rc] = al
    Hd = 2.0 * mu * np.outer(P, Rr)
    Hd[ci, ci] += 2.0 * mu * be ** 2
    Hx = 2.0 * mu * np.outer(be, be)
    Hx[ci, ci] = 0.0
    solve = _pair_newton(RowGram(A @ U, Zq @ V, inv), Hd, Hx, 4.0 * mu * al * be, mu, t, sig,
                         p, rc, D, 0)
    none = np.zeros(0)

    def apply(y: np.ndarray) -> np.ndarray:
        dt, dX, _ = solve(float(y[0]), U.T @ y[1:].reshape(r1, r2) @ V, none)
        return np.concatenate([[dt], (U @ dX @ Vt).ravel()])

    return apply


def pcg(matvec: Callable[[np.ndarray], np.ndarray], psolve: Callable[[np.ndarray], np.ndarray],
        rhs: np.ndarray, rtol: float = 1e-13, max_iter: int = 60) -> np.ndarray:
    """Preconditioned conjugate gradients for a symmetric positive definite ``matvec``;
    returns the iterate of least residual (at most ``max_iter`` products)."""
    x = psolve(rhs)
    r = rhs - matvec(x)
    nb = float(np.linalg.norm(rhs)) or 1.0
    best, best_r = x.copy(), float(np.linalg.norm(r))
    z = psolve(r)
    d = z.copy()
    rz = float(r @ z)
    for _ in range(max_iter):
        if best_r <= rtol * nb or rz <= 0:
            break
        Md = matvec(d)
        dMd = float(d @ Md)
        if dMd <= 0:
            break
        a = rz / dMd
        x = x + a * d
        r = r - a * Md
        nr = float(np.linalg.norm(r))
        if nr < best_r:
            best, best_r = x.copy(), nr
        z = psolve(r)
        rz_new = float(r @ z)
        d = z + (rz_new / rz) * d
        rz = rz_new
    return best
