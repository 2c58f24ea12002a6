"""A structured primal-dual interior point for the group nuclear lifted Att-SVM.

On reduced coordinates (keys' width ``r1``, queries' width ``r2``) each block ``f`` (and the
free block ``W0``, real) is a Hermitian cone of order ``N = r1 + r2``; with
``u_kf = [a_kf; 0]``, ``v_k = [0; z_k]`` and ``B_kf = u_kf v_k^H + v_k u_kf^H``:

    (P)  min sum_f tr X_f   s.t.  sum_f <B_kf, X_f> - x_k = b_k,  X_f >= 0,  x >= 0
    (D)  max b^T y          s.t.  S_f = I - [[0, G_f], [G_f^H, 0]] >= 0,  y_k >= 0,

``<A, B> = Re tr(A^H B)``, ``G_f = sum_k y_k a_kf z_k^T`` and ``x``, ``y_k >= 0`` only on the
inequality rows.  ``S_f >= 0`` is ``||G_f||_2 <= 1`` and ``tr X_f >= 2 ||X_f,12||_*``, so
``M_f = 2 X_f,12`` solves ``min sum_f ||M_f||_*`` on the rows.  Nothing of size ``N^2 x N^2``
is formed: every ``B_kf`` is rank two, so the Schur complement of the HKM direction is

    H = sum_f Re( P^X_VU o (P^S_VU)^T + P^X_VV o (P^S_UU)^T + P^X_UU o (P^S_VV)^T
                  + P^X_UV o (P^S_UV)^T )  (+ diag(x / y) on inequality rows),

``P^X_VU = Z X_21 A_f^T`` (m, m) etc. (``P^S`` with ``S_f^{-1}``): ``O(F m^2 (r1 + r2))``
per iteration.  Mehrotra predictor-corrector steps from an infeasible start; the answer is
only a candidate, certified afterwards (:func:`~._rotary_certify.finish`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

__all__ = ["BlockData", "IPMOutcome", "block_ipm"]

#: iteration limit of :func:`block_ipm`
MAX_ITER = 120
#: iterations without a better iterate after which :func:`block_ipm` stops
STALL = 8


def _ct(W: np.ndarray) -> np.ndarray:
    """Conjugate transpose of the last two axes."""
    return np.asarray(np.conj(W).swapaxes(-1, -2))


def _parts(A: np.ndarray, Z: np.ndarray, W: np.ndarray, r1: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``u_k^H W u_l``, ``v_k^H W v_l``, ``v_k^H W u_l`` (K, m, m) for ``W`` (K, N, N)."""
    At = A.swapaxes(1, 2)
    uu = (np.conj(A) @ W[:, :r1, :r1]) @ At
    vv = (Z @ W[:, r1:, r1:]) @ Z.T
    vu = (Z @ W[:, r1:, :r1]) @ At
    return uu, vv, vu


#: most entries of the (K, m, m) products that :meth:`BlockData.schur` holds at once
_SCHUR_ENTRIES = 4_000_000


class BlockData:
    """``K`` cones that share their queries: ``A`` (K, m, r1) key factors (complex or real;
    (m, r1) is one cone), ``Z`` (m, r2) queries.  Every method works on all ``K`` cones at
    once (arrays (K, N, N)), so the interior point's cost per iteration is a few batched
    matrix products, not ``K`` Python-level ones."""

    def __init__(self, A: np.ndarray, Z: np.ndarray) -> None:
        self.A = A[None] if A.ndim == 2 else A
        self.Z = Z

    @property
    def K(self) -> int:
        return int(self.A.shape[0])

    @property
    def r1(self) -> int:
        return int(self.A.shape[2])

    @property
    def n(self) -> int:
        return int(self.A.shape[2] + self.Z.shape[1])

    def apply(self, R: np.ndarray) -> np.ndarray:
        """``sum_K Re tr(B_k R)`` for every row ``k`` (``R`` (K, N, N), not necessarily
        Hermitian)."""
        R = R[None] if R.ndim == 2 else R
        r1 = self.r1
        t1 = np.einsum("gkj,gkj->k", self.Z @ R[:, r1:, :r1], self.A)
        t2 = np.einsum("gkj,kj->k", np.conj(self.A) @ R[:, :r1, r1:], self.Z)
        return np.asarray((t1 + t2).real)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """``sum_k y_k B_k`` (K, N, N) Hermitian."""
        G = self.A.swapaxes(1, 2) @ (y[:, None] * self.Z)      # (K, r1, r2)
        r1 = self.r1
        out = np.zeros((self.K, self.n, self.n), dtype=G.dtype)
        out[:, :r1, r1:] = G
        out[:, r1:, :r1] = _ct(G)
        return out

    def schur(self, X: np.ndarray, Si: np.ndarray) -> np.ndarray:
        """``sum_K Re tr(B_k X B_l S^{-1})`` (m, m) (``X``, ``Si`` (K, N, N))."""
        X = X[None] if X.ndim == 2 else X
        Si = Si[None] if Si.ndim == 2 else Si
        r1, m = self.r1, self.Z.shape[0]
        Z = self.Z
        H = np.zeros((m, m))
        step = max(1, _SCHUR_ENTRIES // max(m * m, 1))
        for g in range(0, self.K, step):
            A = self.A[g: g + step]
            xuu, xvv, xvu = _parts(A, Z, X[g: g + step], r1)
            suu, svv, svu = _parts(A, Z, Si[g: g + step], r1)
            # Re(xvu o svu^T) + Re(conj(xvu)^T o conj(svu)) = T + T^T, T = Re(xvu o svu^T)
            T = np.sum((xvu * svu.swapaxes(1, 2)).real, axis=0)
            H += T + T.T + np.sum((xvv * suu.swapaxes(1, 2)).real
                                  + (xuu * svv.swapaxes(1, 2)).real, axis=0)
        return H


@dataclass
class IPMOutcome:
    """What :func:`block_ipm` returns: per block ``X`` (N, N), multipliers ``y`` (m,),
    ``pobj``, ``dobj``, relative residuals and the iteration count."""

    X: list[np.ndarray]
    y: np.ndarray
    pobj: float
    dobj: float
    rel_gap: float
    primal_res: float
    dual_res: float
    iterations: int
    converged: bool


def _herm(W: np.ndarray) -> np.ndarray:
    return np.asarray((W + _ct(W)) / 2)


def _inv_chol(S: np.ndarray) -> np.ndarray:
    """``L^{-1}`` for the Cholesky factors ``S = L L^H`` of Hermitian positive definite
    ``S`` (K, N, N) (then ``S^{-1} = L^{-H} L^{-1}``)."""
    L = np.linalg.cholesky(S)
    return np.asarray(np.linalg.solve(L, np.broadcast_to(np.eye(S.shape[-1]), S.shape)))


def _factor(H: np.ndarray) -> tuple[np.ndarray, bool]:
    """Cholesky factor of the Schur complement, with a growing diagonal shift where rounding
    has left it indefinite (near the end of a run)."""
    H = (H + H.T) / 2
    shift = 0.0
    top = float(np.max(np.abs(np.diag(H)))) or 1.0
    for _ in range(8):
        try:
            return cho_factor(H + shift * np.eye(H.shape[0]), check_finite=False)
        except (LinAlgError, np.linalg.LinAlgError):
            shift = top * 1e-15 if shift == 0.0 else shift * 100
    raise LinAlgError("Schur complement not positive definite")


def _max_step(Li: np.ndarray | None, dX: np.ndarray) -> float:
    """Largest ``a <= 1`` with ``X + a dX >= 0``, from ``Li = L^{-1}``, ``X = L L^H``
    (None: ``X`` is not positive definite, step 0)."""
    if Li is None:
        return 0.0
    lo = float(np.min(np.linalg.eigvalsh(_herm(Li @ dX @ _ct(Li)))))
    return 1.0 if lo >= -1.0 else -1.0 / lo


def _inv_chol_or_none(X: np.ndarray) -> np.ndarray | None:
    try:
        return _inv_chol(X)
    except (LinAlgError, np.linalg.LinAlgError):
        return None


def _lp_step(x: np.ndarray, dx: np.ndarray) -> float:
    neg = dx < 0
    return float(min(1.0, np.min(-x[neg] / dx[neg]))) if np.any(neg) else 1.0


@dataclass
class _Point:
    """An iterate: cones ``X``, ``S`` (N, N) per block, LP parts ``x``, ``s`` (m_in,), ``y``
    (also a direction, :data:`_Direction`)."""

    X: list[np.ndarray]
    x: np.ndarray
    y: np.ndarray
    S: list[np.ndarray]
    s: np.ndarray


class _Problem:
    """The linear maps of (P)/(D) over all blocks and the LP part (inequality rows)."""

    def __init__(self, blocks: list[BlockData], b: np.ndarray, n_eq: int) -> None:
        self.blocks, self.b = blocks, b
        self.m = b.size
        self.ineq = np.arange(n_eq, self.m)
        self.nu = sum(bl.K * bl.n for bl in blocks) + self.ineq.size

    def apply(self, Rs: list[np.ndarray], xl: np.ndarray) -> np.ndarray:
        """``A(X, x)``: ``sum_f Re tr(B_kf R_f) - x_k`` (m,)."""
        v = np.zeros(self.m)
        for bl, R in zip(self.blocks, Rs, strict=True):
            v += bl.apply(R)
        v[self.ineq] -= xl
        return v

    def adjoint(self, y: np.ndarray) -> list[np.ndarray]:
        return [bl.adjoint(y) for bl in self.blocks]

    def mu(self, p: _Point) -> float:
        return (sum(float(np.sum(Xf * np.conj(Sf)).real) for Xf, Sf in zip(p.X, p.S, strict=True))
                + float(p.x @ p.s)) / self.nu


#: A search direction has the iterate's shape: ``(dX, dx, dy, dS, ds)``.
_Direction = _Point


def _solve_direction(pr: _Problem, p: _Point, Si: list[np.ndarray], fac: tuple,
                     rp: np.ndarray, Rd: list[np.ndarray], rdl: np.ndarray, sig_mu: float,
                     corr: _Direction | None) -> _Direction:
    """HKM direction: ``dX S + X dS = sig_mu I - X S - dXa dSa`` (corrector ``corr``),
    ``A(dX) = rp``, ``A^* dy + dS = Rd``: ``dX = base + X A^*(dy) S^{-1}`` with
    ``base = sig_mu S^{-1} - X - (X Rd + dXa dSa) S^{-1}``, ``H dy = rp - A(base)``."""
    base = []
    for j, (Xf, Sif, R) in enumerate(zip(p.X, Si, Rd, strict=True)):
        T = Xf @ R if corr is None else Xf @ R + corr.X[j] @ corr.S[j]
        base.append(sig_mu * Sif - Xf - T @ Sif)
    base_l = (sig_mu - p.x * rdl - (0.0 if corr is None else corr.x * corr.s)) / p.s - p.x
    dy = cho_solve(fac, rp - pr.apply(base, base_l), check_finite=False)
    Ady = pr.adjoint(dy)
    dS = [R - Ay for R, Ay in zip(Rd, Ady, strict=True)]
    dX = [_herm(bs + Xf @ Ay @ Sif) for bs, Xf, Ay, Sif in zip(base, p.X, Ady, Si, strict=True)]
    ds = rdl + dy[pr.ineq]
    dx = base_l - p.x * dy[pr.ineq] / p.s
    return _Direction(dX, dx, dy, dS, ds)


def _steps(p: _Point, d: _Direction, LXi: list[np.ndarray | None],
           LSi: list[np.ndarray | None]) -> tuple[float, float]:
    """Largest primal and dual step lengths (at most 1) that keep the cones (``LXi``,
    ``LSi``: inverse Cholesky factors of ``X_f``, ``S_f``)."""
    ap = min([_max_step(Li, dX) for Li, dX in zip(LXi, d.X, strict=True)]
             + [_lp_step(p.x, d.x)])
    ad = min([_max_step(Li, dS) for Li, dS in zip(LSi, d.S, strict=True)]
             + [_lp_step(p.s, d.s)])
    return ap, ad


def _move(p: _Point, d: _Direction, ap: float, ad: float) -> _Point:
    return _Point([Xf + ap * dX for Xf, dX in zip(p.X, d.X, strict=True)], p.x + ap * d.x,
                  p.y + ad * d.y, [_herm(Sf + ad * dS) for Sf, dS in zip(p.S, d.S, strict=True)],
                  p.s + ad * d.s)


def block_ipm(blocks: list[BlockData], b: np.ndarray, n_eq: int, tol: float = 1e-12,
              max_iter: int = MAX_ITER, scale: float = 1.0) -> IPMOutcome:
    """Solve (P)/(D) above by Mehrotra predictor-corrector HKM steps.

    Parameters
    ----------
    blocks : list of BlockData
        One per cone (``A`` (m, r1), ``Z`` (m, r2) each).
    b : ndarray, shape (m,)
    n_eq : int
        The first ``n_eq`` rows are equalities.
    tol : float
        Stop once the relative gap and residuals are below it (or after :data:`STALL`
        iterations without a better iterate).
    max_iter : int
    scale : float
        Size of the start ``X_f = scale I`` (e.g. a known objective over ``sum N_f``).

    Returns
    -------
    IPMOutcome
        The iterate with the smallest ``max(rel_gap, residuals)`` seen.
    """
    pr = _Problem(blocks, b, n_eq)
    mi = pr.ineq.size
    eyes = [np.tile(np.eye(bl.n, dtype=complex), (bl.K, 1, 1)) for bl in blocks]
    p = _Point([scale * E for E in eyes], np.full(mi, max(scale, 1.0)), np.zeros(pr.m),
               [E.copy() for E in eyes], np.ones(mi))
    n_cones = sum(bl.K for bl in blocks)
    bnorm = 1.0 + float(np.linalg.norm(b))
    best: IPMOutcome | None = None
    for it in range(max_iter + 1):
        Rd = [np.eye(Sf.shape[-1]) - Ay - Sf for Ay, Sf in zip(pr.adjoint(p.y), p.S, strict=True)]
        rdl = p.y[pr.ineq] - p.s                         # C - A^* y - s on the LP part
        rp = b - pr.apply(p.X, p.x)
        pobj = float(sum(np.trace(Xf, axis1=-2, axis2=-1).real.sum() for Xf in p.X))
        dobj = float(b @ p.y)
        pres = float(np.linalg.norm(rp)) / bnorm
        dres = float(np.sqrt(sum(np.linalg.norm(R) ** 2 for R in Rd) + rdl @ rdl)) / (
            1.0 + np.sqrt(n_cones))
        gap = abs(pobj - dobj) / (1.0 + abs(pobj))
        err = max(gap, pres, dres)
        if best is None or err < max(best.rel_gap, best.primal_res, best.dual_res):
            best = IPMOutcome([X1.copy() for Xf in p.X for X1 in Xf], p.y.copy(), pobj, dobj,
                              gap, pres,
                              dres, it, err <= tol)
        if err <= tol or it == max_iter or it - best.iterations >= STALL:
            break
        mu = pr.mu(p)
        try:
            LSi = [_inv_chol(Sf) for Sf in p.S]
            Si = [_ct(Li) @ Li for Li in LSi]
            H = np.zeros((pr.m, pr.m))
            for bl, Xf, Sif in zip(blocks, p.X, Si, strict=True):
                H += bl.schur(Xf, Sif)
            H[pr.ineq, pr.ineq] += p.x / p.s
            fac = _factor(H)
        except (LinAlgError, np.linalg.LinAlgError, ValueError):
            break
        LXi = [_inv_chol_or_none(Xf) for Xf in p.X]
        aff = _solve_direction(pr, p, Si, fac, rp, Rd, rdl, 0.0, None)
        ap, ad = _steps(p, aff, LXi, list(LSi))
        mu_aff = pr.mu(_move(p, aff, ap, ad))
        sigma = min(1.0, (max(mu_aff, 0.0) / mu) ** 3) if mu > 0 else 0.0
        d = _solve_direction(pr, p, Si, fac, rp, Rd, rdl, sigma * mu, aff)
        ap, ad = _steps(p, d, LXi, list(LSi))
        ap, ad = min(1.0, 0.98 * ap), min(1.0, 0.98 * ad)
        if ap <= 1e-12 and ad <= 1e-12:
            break
        p = _move(p, d, ap, ad)
    assert best is not None
    return best
