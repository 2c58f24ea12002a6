# ruff: noqa: B023  (the per-iteration closures below run within their own iteration)
"""Primal-dual interior point for the spectral-norm SVM in reduced coordinates.

    min t  s.t.  S = t I + L(W) >= 0 (PSD, size r1 + r2),   L(W) = [[0, W], [W^T, 0]],
                 <W, a_k z_k^T> - s_k = b_k, s_k >= 0 (k >= n_eq),
                 <W, a_k z_k^T> = b_k (k < n_eq).

``S >= 0`` is ``||W||_2 <= t``.  The dual is ``max lam . b`` s.t. ``tr Z = 1``,
``C^T lam + 2 Z_12 = 0``, ``Z >= 0``, ``lam >= 0`` on inequalities, i.e.
``||sum lam_k a_k z_k^T||_* <= 1``.

HKM direction with Mehrotra's predictor-corrector.  The Newton system lives in the primal
variables ``y = (t, vec W)`` (``1 + r1 r2`` unknowns, independent of the number of rows m):
its semidefinite block ``tr(A_i S^-1 A_j Z)`` has a closed form from the blocks of ``S^-1``
and ``Z``, and the rows add ``sum_k D_k vec(a_k z_k^T) vec(a_k z_k^T)^T``, which groups by
query into ``sum_g kron(A_g^T D_g A_g, z_g z_g^T)`` (one matrix product), never forming the
``m x r1 r2`` constraint matrix.  Equality rows enter through a small Schur complement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._linalg import CholeskyFactor
from ._rowspace import spd_solver, stalled
from ._spectral_rows import barrier_preconditioner, pcg

__all__ = ["SpecIPMResult", "spectral_ipm"]

#: the dense Newton matrix is used up to this many entries of W (then the row space)
_DENSE_MAX = 1600


@dataclass
class SpecIPMResult:
    """Last iterate: ``t``, ``W`` (r1, r2), multipliers ``lam`` (m,), iterations."""

    t: float
    W: np.ndarray
    lam: np.ndarray
    iterations: int
    newton: str = "dense"


def _inv_chol(X: np.ndarray) -> np.ndarray:
    """``L^-1`` for the Cholesky factor ``L`` of a positive definite ``X`` (raises
    LinAlgError); one per iteration serves the predictor's and the corrector's steps."""
    return np.linalg.inv(np.linalg.cholesky(X))


def _max_step(Li: np.ndarray, dX: np.ndarray) -> float:
    """Largest ``a`` with ``X + a dX`` PSD, from ``Li = L^-1`` of :func:`_inv_chol` ``(X)``."""
    ev = np.linalg.eigvalsh(Li @ dX @ Li.T)
    lo = float(ev[0])
    return np.inf if lo >= 0 else -1.0 / lo


def _vec_step(x: np.ndarray, dx: np.ndarray) -> float:
    neg = dx < 0
    return float(np.min(-x[neg] / dx[neg])) if np.any(neg) else np.inf


class _DenseNewton:
    """The HKM Newton matrix in ``(t, vec W)``, ``(1 + r1 r2)`` square, with its buffers.

    Its ``W`` block, ``M[(a, b), (c, e)]``, is ``S11[a,c] Z22[b,e] + Z11[a,c] S22[b,e]
    + sum_g Ag[a,c] zz_g[b,e]`` (Kronecker terms, one matrix product over the stacked
    ``(r1 r1)`` and ``(r2 r2)`` factors) plus ``S12[a,e] Z12[c,b] + Z12[a,e] S12[c,b]``
    (swapped terms, a rank-two product); ``Z22``, ``S22`` and each ``zz_g`` are symmetric.
    ``Ag = sum_{k in g} D_k a_k a_k^T`` is a batched product over the rows of each group
    (padded to the largest group; a one-hot product where the groups are too uneven).
    The matrix and the products write into buffers kept across iterations: fresh arrays of
    this size cost page faults that take longer than the arithmetic.
    """

    def __init__(self, A: np.ndarray, inv: np.ndarray, Zq: np.ndarray) -> None:
        m, r1 = A.shape
        ng, r2 = Zq.shape
        self.r1, self.r2 = r1, r2
        N = r1 * r2
        counts = np.bincount(inv, minlength=ng)
        tm = int(counts.max()) if m else 0
        self.padded = ng * tm <= 2 * m + 64
        if self.padded:  # row k of group g sits at slot (g, position of k within g)
            order = np.argsort(inv, kind="stable")
            first = np.concatenate([[0], np.cumsum(counts)[:-1]])
            self.slot = (inv[order], np.arange(m) - first[inv[order]], order)
            self.Ap = np.zeros((ng, tm, r1))
            self.Ap[self.slot[0], self.slot[1]] = A[order]
            self.Dp = np.zeros((ng, tm))
        else:
            self.onehot = np.zeros((ng, m))
            self.onehot[inv, np.arange(m)] = 1.0
            self.AA = (A[:, :, None] * A[:, None, :]).reshape(m, r1 * r1)
        self.P = np.empty((2 + ng, r1 * r1))
        self.Q = np.empty((2 + ng, r2 * r2))
        self.Q[2:] = (Zq[:, :, None] * Zq[:, None, :]).reshape(ng, r2 * r2)
        self.K = np.empty((r1 * r1, r2 * r2))
        self.R = np.empty((N, N))
        self.M = np.empty((N + 1, N + 1))
        self.L = np.empty((N + 1, N + 1))  # its Cholesky factor

    def matrix(self, Si: np.ndarray, Z: np.ndarray, SZ: np.ndarray, Dk: np.ndarray,
               quad: bool, Lstar: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The matrix for ``S^-1`` and ``Z`` (p, p), ``S^-1 Z`` and the row weights ``Dk``
        (m,); a view of the buffer (valid until the next call)."""
        r1, r2 = self.r1, self.r2
        N = r1 * r2
        P, Q = self.P, self.Q
        P[0], P[1] = Si[:r1, :r1].ravel(), Z[:r1, :r1].ravel()
        Q[0], Q[1] = Z[r1:, r1:].ravel(), Si[r1:, r1:].ravel()
        if self.padded:
            g, pos, order = self.slot
            self.Dp[g, pos] = Dk[order]
            Ap = self.Ap
            P[2:] = np.matmul(Ap.transpose(0, 2, 1), self.Dp[:, :, None] * Ap).reshape(
                Ap.shape[0], r1 * r1)
        else:
            P[2:] = self.onehot @ (Dk[:, None] * self.AA)
        K = np.matmul(P.T, Q, out=self.K).reshape(r1, r1, r2, r2)          # [a, c, b, e]
        X = np.vstack([Si[:r1, r1:].reshape(1, -1), Z[:r1, r1:].reshape(1, -1)])  # (2, N)
        Y = X[::-1]
        R = np.matmul(X.T, Y, out=self.R).reshape(r1, r2, r1, r2)          # [a, e, c, b]
        M = self.M
        W4 = M[1:, 1:].reshape(r1, r2, r1, r2)  # a view of M (splitting an axis never copies)
        np.add(K.transpose(0, 2, 1, 3), R.transpose(0, 3, 2, 1), out=W4)
        if not np.shares_memory(W4, M):
            M[1:, 1:] = W4.reshape(N, N)
        if quad:
            M[1:, 1:] += np.eye(N)
        M[0, 0] = float(np.trace(SZ))
        M[0, 1:] = M[1:, 0] = Lstar(SZ).ravel()
        return M


def _dual_start(G: np.ndarray, lam0: np.ndarray, lam: np.ndarray, Z: np.ndarray, r1: int,
                theta: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - theta)`` times the dual-feasible point of the multipliers ``lam0`` (m,), plus
    ``theta`` times the central start ``(lam, Z)``.

    With ``G = sum lam0_k a_k z_k^T = U diag(g) V^T`` (r1, r2), ``lam0 / ||G||_*`` and
    ``Z = [[U g U^T, -U g V^T], [-V g U^T, V g V^T]] / (2 ||G||_*)`` (PSD, trace one,
    ``2 Z_12 = -G / ||G||_*``) meet every dual equation; the Frobenius multipliers give a good
    such point (their ``G`` is the Frobenius optimum).  Ignored (the start is returned) when
    ``G`` is zero.
    """
    Ug, g, Vt = np.linalg.svd(G, full_matrices=False)
    nuc = float(g.sum())
    if not nuc > 0 or not np.isfinite(nuc):
        return lam, Z
    Zg = np.empty_like(Z)
    Zg[:r1, :r1] = (Ug * g) @ Ug.T
    Zg[r1:, r1:] = (Vt.T * g) @ Vt
    Zg[:r1, r1:] = -(Ug * g) @ Vt
    Zg[r1:, :r1] = Zg[:r1, r1:].T
    return ((1 - theta) * lam0 / nuc + theta * lam,
            (1 - theta) * Zg / (2 * nuc) + theta * Z)


def spectral_ipm(A: np.ndarray, Zc: np.ndarray, inv: np.ndarray, Zq: np.ndarray,
                 b: np.ndarray, n_eq: int, W0: np.ndarray, *, target: float = 1e-11,
                 max_iter: int = 80, certify: Callable[[np.ndarray, np.ndarray], float]
                 | None = None, fixed_t: float | None = None, newton: str = "auto",
                 lam0: np.ndarray | None = None) -> SpecIPMResult:
    """Run the interior point from ``W0`` until ``certify(W, lam) <= target``.

    Parameters
    ----------
    A : ndarray, shape (m, r1)
        Left factors in reduced coordinates.
    Zc : ndarray, shape (m, r2)
        Right factors.
    inv, Zq : ndarray
        Group of each row (m,) and the distinct right factors (g, r2).
    b : ndarray, shape (m,)
    n_eq : int
    W0 : ndarray, shape (r1, r2)
        Starting point (a feasible one, e.g. the Frobenius solution, works well).
    target : float
        Stop when the certified gap returned by ``certify`` is at most this (with
        ``fixed_t``: when the scaled residuals and ``mu`` are).
    max_iter : int
    certify : callable ``(W, lam) -> gap``, optional
        Certified relative gap of an iterate (the caller's weak-duality bound).
    fixed_t : float, optional
        Second stage: ``t`` is fixed to this value and the objective is ``||W||_F^2 / 2``
        (the least-Frobenius point of ``{rows, ||W||_2 <= fixed_t}``).

    newton : {"auto", "rows", "dense"}
        The Newton system as the dense ``(1 + r1 r2)`` square matrix, or (``rows``; "auto"
        above :data:`_DENSE_MAX` entries, without equality rows or ``fixed_t``) by
        conjugate gradients preconditioned with its central-path form, solved in the row
        space (:mod:`._spectral_rows`).
    lam0 : ndarray, shape (m,), optional
        Multipliers of a related problem (the Frobenius SVM's): the dense branch starts its
        dual from their dual-feasible point mixed with the central one (:func:`_dual_start`;
        inequality entries must be ``>= 0``).

    Returns
    -------
    SpecIPMResult
        The iterate with the smallest certified gap (residual measure with ``fixed_t``).
    """
    m, r1 = A.shape
    r2 = Zc.shape[1]
    p, N = r1 + r2, r1 * r2
    ineq = np.arange(n_eq, m)
    eq = np.arange(n_eq)
    quad = fixed_t is not None
    ct = 0.0 if quad else 1.0

    def values(W: np.ndarray) -> np.ndarray:
        return np.einsum("kd,kd->k", A, (Zq @ W.T)[inv])

    def combine(lam: np.ndarray) -> np.ndarray:
        return A.T @ (lam[:, None] * Zc)

    def L(W: np.ndarray, t: float) -> np.ndarray:
        S = t * np.eye(p)
        S[:r1, r1:] += W
        S[r1:, :r1] += W.T
        return S

    def Lstar(X: np.ndarray) -> np.ndarray:
        return X[:r1, r1:] + X[r1:, :r1].T

    sw = float(np.linalg.norm(W0, 2)) if W0.size else 1.0
    W = W0.copy()
    if quad:
        assert fixed_t is not None
        t = float(fixed_t)
        W = W * min(1.0, 0.9 * t / max(sw, 1e-300))
    else:
        t = 2.0 * max(sw, 1e-8)
    s = np.maximum(values(W)[ineq] - b[ineq], 1.0)
    lam = np.zeros(m)
    lam[ineq] = t / m
    nu = 0.0
    Z = np.eye(p) / p
    E = np.zeros((int(quad) + n_eq, N + 1))
    if quad:
        E[0, 0] = 1.0
    if n_eq:
        E[int(quad):, 1:] = np.einsum("ki,kj->kij", A[eq], Zc[eq]).reshape(n_eq, N)
    ne = E.shape[0]
    if newton not in ("auto", "rows", "dense"):
        raise ValueError(f"newton must be 'auto', 'rows' or 'dense', not {newton!r}")
    rows = (newton == "rows" or (newton == "auto" and N > _DENSE_MAX)) and not quad and not n_eq
    dense = None if rows else _DenseNewton(A, inv, Zq)
    if lam0 is not None and not rows and not quad:
        lam, Z = _dual_start(combine(lam0), lam0, lam, Z, r1)
    best: SpecIPMResult | None = None
    best_gap = np.inf
    history: list[float] = []
    mus: list[float] = []
    it = 0
    for it in range(1, max_iter + 1):
        S = L(W, t)
        v = values(W)
        mu = (float(np.vdot(S, Z)) + float(s @ lam[ineq])) / (p + ineq.size)
        rp = b[ineq] - v[ineq] + s
        re = np.concatenate([[fixed_t - t] if quad else [], b[eq] - v[eq]])  # type: ignore
        rt = ct - nu - float(np.trace(Z))
        rW = -(combine(lam) + Lstar(Z) - (W if quad else 0.0))
        Si = np.linalg.inv(S)
        Si = (Si + Si.T) / 2
        D = lam[ineq] / s
        SZ = Si @ Z
        Dk = np.zeros(m)
        Dk[ineq] = D
        if rows:

            # blocks of S^-1 and Z: the product S^-1 L(dW) Z needs only its off-diagonal
            # blocks, four (r1 x r2)-sized products
            S11, S12, S22 = Si[:r1, :r1], Si[:r1, r1:], Si[r1:, r1:]
            Z11, Z12, Z22 = Z[:r1, :r1], Z[:r1, r1:], Z[r1:, r1:]
            trSZ, gSZ, gZS = float(np.trace(SZ)), Lstar(SZ), Lstar(Z @ Si)

            def matvec(y: np.ndarray) -> np.ndarray:
                dt, dW = float(y[0]), y[1:].reshape(r1, r2)
                X12 = S11 @ dW @ Z22 + S12 @ dW.T @ Z12
                X21 = S22 @ dW.T @ Z11 + S12.T @ dW @ Z12.T
                return np.concatenate([[dt * trSZ + float(np.vdot(dW, gZS))],
                                       (dt * gSZ + X12 + X21.T
                                        + combine(Dk * values(dW))).ravel()])

            try:
                pre = barrier_preconditioner(A, Zq, inv, W, t, float(np.vdot(S, Z)) / p, D)
            except np.linalg.LinAlgError:
                break

            # inexact Newton: the certificate does not depend on the solve's accuracy
            rtol = min(1e-6, max(1e-13, 1e-3 * best_gap))

            cg_max = 60 if rtol > 1e-10 else 200   # the last iterations need accurate solves

            def msolve(rhs: np.ndarray) -> np.ndarray:
                return pcg(matvec, pre, rhs, rtol=rtol, max_iter=cg_max)
        else:
            assert dense is not None
            M = dense.matrix(Si, Z, SZ, Dk, quad, Lstar)
            L_buf = dense.L
            try:  # semidefinite up to rounding: scaled, shifted where needed, refined
                fsolve = spd_solver(M, factor=lambda X: CholeskyFactor(X, out=L_buf).solve)
            except np.linalg.LinAlgError:
                break

            def msolve(rhs: np.ndarray) -> np.ndarray:
                return fsolve(rhs)
        MiE = np.column_stack([msolve(c) for c in E]) if ne else None
        Seq = E @ MiE if ne else None

        def combine_in(x: np.ndarray) -> np.ndarray:
            return A[ineq].T @ (x[:, None] * Zc[ineq])

        def direction(sigma_mu: float, Rc: np.ndarray | None, rcs: np.ndarray | None
                      ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                 np.ndarray, np.ndarray]:
            H = sigma_mu * Si - Z
            if Rc is not None:
                H = H - Si @ Rc
            q = sigma_mu / s - lam[ineq]
            if rcs is not None:
                q = q - rcs / s
            rhsW = Lstar(H) + combine_in(q + D * rp) - rW
            rhs = np.concatenate([[float(np.trace(H)) - rt], rhsW.ravel()])
            dy = msolve(rhs)
            dle = np.zeros(0)
            if ne:
                assert MiE is not None and Seq is not None
                dle = np.linalg.solve(Seq, re - E @ dy)
                dy = dy + MiE @ dle
            dt, dW = float(dy[0]), dy[1:].reshape(r1, r2)
            dS = L(dW, dt)
            X = H - Si @ dS @ Z
            dZ = (X + X.T) / 2
            cw = values(dW)
            ds = cw[ineq] - rp
            dl = q + D * rp - D * cw[ineq]
            return dt, dW, dS, dZ, ds, np.concatenate([dle[int(quad):], dl]), dle[:int(quad)]

        def steps(dS: np.ndarray, dZ: np.ndarray, ds: np.ndarray, dl: np.ndarray
                  ) -> tuple[float, float]:
            ap = min(1.0, _max_step(LiS, dS), _vec_step(s, ds))
            ad = min(1.0, _max_step(LiZ, dZ), _vec_step(lam[ineq], dl[n_eq:]))
            return ap, ad

        try:
            LiS, LiZ = _inv_chol(S), _inv_chol(Z)
            dt, dW, dS, dZ, ds, dl, dnu = direction(0.0, None, None)
            ap, ad = steps(dS, dZ, ds, dl)
            mu_aff = (float(np.vdot(S + ap * dS, Z + ad * dZ))
                      + float((s + ap * ds) @ (lam[ineq] + ad * dl[n_eq:]))) / (p + ineq.size)
            sigma = min(1.0, (mu_aff / mu) ** 3) if mu > 0 else 0.0
            dt, dW, dS, dZ, ds, dl, dnu = direction(sigma * mu, dS @ dZ, ds * dl[n_eq:])
            ap, ad = steps(dS, dZ, ds, dl)
        except np.linalg.LinAlgError:  # an iterate at the end of double precision
            break
        ap, ad = min(1.0, 0.98 * ap), min(1.0, 0.98 * ad)
        t, W, s = t + ap * dt, W + ap * dW, s + ap * ds
        Z, lam = Z + ad * dZ, lam + ad * dl
        if quad:
            nu += ad * float(dnu[0])
        Z = (Z + Z.T) / 2
        if quad:
            scale = max(1.0, float(np.linalg.norm(W)))
            gap = max(float(np.max(np.abs(rp), initial=0.0)), float(np.max(np.abs(re))),
                      float(np.linalg.norm(rW)) / scale, mu / scale ** 2)
        else:
            gap = float(certify(W, lam)) if certify is not None else np.inf
        if best is None or gap < best_gap:
            best_gap = gap
            best = SpecIPMResult(t=t, W=W.copy(), lam=lam.copy(), iterations=it)
        history.append(best_gap)
        mus.append(mu)
        # row space: a collapsed step near the end is the inexact solve at its limit
        collapsed = rows and max(ap, ad) < 1e-2 and best_gap < 1e-6
        if gap <= target or max(ap, ad) < 1e-10 or stalled(history, mus) or collapsed:
            break
    if best is None:
        best = SpecIPMResult(t=t, W=W.copy(), lam=lam.copy(), iterations=it)
    best.iterations = it
    best.newton = "rows" if rows else "dense"
    return best
