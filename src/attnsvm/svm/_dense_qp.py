"""Row-equilibrated, QR-based dual active-set method for small hard-margin SVMs.

Solves ``min ||w||^2 / 2`` s.t. ``<w, g_k> >= b_k`` (``= b_k`` for ``k < n_eq``) with the
normals ``g_k`` given explicitly as the rows of ``N`` (m, p).  It is the fallback of the
Gram-matrix working-set solver (:mod:`._working_set`) for badly scaled data:

* every row is scaled to unit norm (``g_k / ||g_k||``, ``b_k / ||g_k||``): the feasible set and
  the minimiser do not change, only the multipliers (mapped back at the end);
* the projections of Goldfarb and Idnani's method come from a QR factorization of the active
  normals, not from a Cholesky factor of their Gram matrix: the error of ``K_SS`` is
  ``eps cond(N_S)^2`` where that of QR is ``eps cond(N_S)``, so rows that differ by ``1e-9``
  (token embeddings scaled by ``1e9``) stay independent instead of looking dependent;
* the primal point is recomputed at every step as the least-norm solution of the active rows
  (no drift), and the final point is checked against every row at the original scale.

The cost is ``O(p s^2)`` per step (``s`` active rows); the caller uses it only where the
explicit ``m x p`` normals are small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._linalg import solve_triangular

__all__ = ["DenseQPResult", "solve_dense_hard_margin", "DEPENDENCE_TOL"]

#: a unit normal whose distance to the span of the active unit normals is below this is
#: dependent on them (rounding in the QR projection is about ``eps cond``)
DEPENDENCE_TOL = 1e-13


@dataclass
class DenseQPResult:
    """Result of :func:`solve_dense_hard_margin` at the original scale.

    Attributes
    ----------
    status : {"optimal", "infeasible", "max_iter"}
    w : ndarray, shape (p,) or None
        The minimiser (None when infeasible).
    lam : ndarray, shape (m,)
        Multipliers of the original rows: ``w = sum_k lam_k g_k``.
    certificate : ndarray, shape (m,) or None
        Infeasible: weights >= 0 on inequalities, ``sum |c_k| ||g_k|| = 1``, with
        ``sum c_k g_k = 0`` up to rounding and ``sum c_k b_k > 0``.
    iterations : int
    """

    status: str
    w: np.ndarray | None
    lam: np.ndarray
    certificate: np.ndarray | None
    iterations: int


def _project(N_act: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(r, z)``: ``g = N_act^T r + z`` with ``z`` orthogonal to the rows of ``N_act``
    (least squares by QR, one re-orthogonalization)."""
    if N_act.shape[0] == 0:
        return np.zeros(0), g.copy()
    Q, R = np.linalg.qr(N_act.T)
    c = Q.T @ g
    z = g - Q @ c
    c2 = Q.T @ z
    z -= Q @ c2
    c += c2
    r = solve_triangular(R, c, lower=False)
    return r, z


def _least_norm(N_act: np.ndarray, b_act: np.ndarray, p: int) -> np.ndarray:
    """Least-norm ``w`` with ``N_act w = b_act`` (QR of ``N_act^T``)."""
    if N_act.shape[0] == 0:
        return np.zeros(p)
    Q, R = np.linalg.qr(N_act.T)
    y = solve_triangular(R, b_act, lower=False, trans="T")
    return Q @ y


def solve_dense_hard_margin(N: np.ndarray, b: np.ndarray, n_eq: int = 0, *,
                            thr: np.ndarray | None = None, tol: float = 1e-10,
                            max_iter: int | None = None) -> DenseQPResult:
    """Solve the hard-margin SVM with explicit normals, rows equilibrated.

    Parameters
    ----------
    N : ndarray, shape (m, p)
        Constraint normals (finite; a zero row is a constraint ``0 >= b_k``).
    b : ndarray, shape (m,)
        Right-hand sides.
    n_eq : int
        The first ``n_eq`` rows are equalities.
    thr : ndarray, shape (m,), optional
        Accepted violation of each row at the original scale (default
        ``tol * max(1, |b_k|)``).  A floor of ``64 eps ||g_k|| ||w||`` (the rounding of
        ``<w, g_k>``) is always added.
    tol : float
    max_iter : int, optional
        Cap on steps (default ``20 m + 100``).

    Returns
    -------
    DenseQPResult
    """
    N = np.asarray(N, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m, p = N.shape
    is_eq = np.arange(m) < n_eq
    nrm = np.linalg.norm(N, axis=1)
    zero = nrm == 0
    base = tol * np.maximum(1.0, np.abs(b)) if thr is None else np.asarray(thr, np.float64)
    # a zero row: 0 >= b_k (0 = b_k) holds or is itself a certificate
    for k in np.flatnonzero(zero):
        if (is_eq[k] and abs(b[k]) > base[k]) or (not is_eq[k] and b[k] > base[k]):
            cert = np.zeros(m)
            cert[k] = np.sign(b[k])
            # sum |c| ||g|| is 0 here; the certificate is the row itself
            return DenseQPResult("infeasible", None, np.zeros(m), cert, 0)
    s = np.where(zero, 1.0, nrm)
    U = N / s[:, None]
    bu = b / s
    max_iter = 20 * m + 100 if max_iter is None else int(max_iter)
    eps = np.finfo(float).eps

    act: list[int] = []
    lam_act = np.zeros(0)
    w = np.zeros(p)
    steps = 0
    while True:
        vals = U @ w
        resid = bu - vals  # unit-row slack shortfalls
        floor = 64.0 * eps * max(float(np.linalg.norm(w)), float(np.max(np.abs(bu), initial=0)))
        th = np.maximum(base / s, floor)
        viol = np.where(is_eq, np.abs(resid), resid)
        viol[zero] = -np.inf
        if act:
            viol[np.asarray(act)] = -np.inf
        cand = np.flatnonzero(viol > th)
        if cand.size == 0:
            lam = np.zeros(m)
            if act:  # the multipliers of the final point, by least squares (no drift)
                lam[act] = _project(U[np.asarray(act)], w)[0]
            return DenseQPResult("optimal", w, lam / s, None, steps)
        q = int(cand[np.argmax(viol[cand])])
        sigma = -1.0 if (is_eq[q] and resid[q] < 0) else 1.0
        g = sigma * U[q]
        up = 0.0
        while True:
            steps += 1
            if steps > max_iter:
                lam = np.zeros(m)
                lam[act] = lam_act
                return DenseQPResult("max_iter", w, lam / s, None, steps)
            a_idx = np.asarray(act, dtype=np.int64)
            r, z = _project(U[a_idx], g)
            zn = float(np.linalg.norm(z))
            t1, drop = np.inf, -1
            if a_idx.size:
                mask = (r > 0) & ~is_eq[a_idx]
                if mask.any():
                    ratios = np.full(a_idx.size, np.inf)
                    ratios[mask] = lam_act[mask] / r[mask]
                    drop = int(np.argmin(ratios))
                    t1 = float(ratios[drop])
            shortfall = sigma * bu[q] - float(g @ w)
            t2 = shortfall / (zn * zn) if zn > DEPENDENCE_TOL else np.inf
            if not np.isfinite(t1) and not np.isfinite(t2):
                cert = np.zeros(m)
                cert[a_idx] = -r
                cert[q] = sigma
                cert = cert / s  # weights of the original rows
                cert /= float(np.abs(cert) @ s)
                return DenseQPResult("infeasible", None, np.zeros(m), cert, steps)
            t = min(t1, t2)
            lam_act = lam_act - t * r if a_idx.size else lam_act
            up += t
            if t2 <= t1:
                act.append(q)
                lam_act = np.append(lam_act, sigma * up)
                w = _least_norm(U[np.asarray(act)], bu[np.asarray(act)], p)
                break
            w = w + t * z
            del act[drop]
            lam_act = np.delete(lam_act, drop)
