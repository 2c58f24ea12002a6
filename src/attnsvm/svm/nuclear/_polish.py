"""Polishing a nearly optimal nuclear-norm answer whose certificate falls short.

Tangent polish (any size): the interior point's answer often certifies a gap just above the
tolerance because its active rows are satisfied only to ~1e-9 and the certificate's uniform
rescaling of ``W`` turns that into complementarity ``sum_k mu_k (a_k^T W z_k - b_k)``, while
its dual is accurate (``||W||_* - <G, W>`` near 1e-12).  :func:`tangent_polish` moves ``W``
within the tangent space of its rank-``r`` manifold, ``dW = U X^T + Y V^T``, to satisfy the
active rows exactly (least-norm step): there ``||W||_*`` changes by ``<U V^T, dW>`` to first
order, which the dual matrix ``G = U V^T + G_perp`` accounts for exactly, so the gap drops to
the dual's own accuracy.  The step's normal equations are ``|S| x |S|`` Hadamard products,
``K_kl = (z_k.z_l)(a_k^T U U^T a_l) + (a_k.a_l)(z_k^T V V^T z_l)``.

Face polish (small problems only):

On a nearly infeasible instance (``||W||_*`` of order 1e5 for margins of 1) the interior
point's Newton systems are too ill-conditioned for the last digits: its primal residual and
the certified gap stall far above the tolerance.  There the optimum is
pinned by its active rows, which a linear solve reaches exactly:

* primal: ``W = U_r C V_r^T`` on the top-``r`` singular spaces of the candidate, with ``C``
  (r, r) the least-squares solution of the active rows ``a_k^T W z_k = b_k``;
* dual: the multipliers of the active rows, the least-squares solution of
  ``sum_k y_k a_k z_k^T = U V^T`` (the subgradient of ``||W||_*`` on ``W``'s own face).

Each (active set, rank) pair with at least ``r^2`` active rows gives a candidate (fewer do not
pin ``C``; nor do they on degenerate faces, where the dual is not unique);
:func:`certify_nuclear` judges it like any other answer, so a wrong guess only costs its
solve.  Dense ``m x d1 d2`` algebra: for small problems only.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ...constraints import ConstraintSet

__all__ = ["face_candidates", "tangent_polish"]

#: relative slacks below which an inequality counts as active
_ACTIVE = (1e-6, 1e-5, 1e-4, 1e-3)
#: tangent polish: an inequality is held active when its multiplier exceeds this share of the
#: largest (rows with smaller multipliers barely matter to the gap, and forcing a row that is
#: inactive at the optimum onto its bound makes the step inconsistent)
_MU_ACTIVE = 1e-6
#: tangent polish: Newton steps (the constraints are linear; later steps only clear rounding
#: and rows that the first step pushed below their bound)
_TANGENT_STEPS = 3


def tangent_polish(cset: ConstraintSet, W: np.ndarray, mu: np.ndarray,
                   rank: int) -> np.ndarray | None:
    """``W`` moved in the tangent space of its rank-``rank`` manifold onto its active rows.

    Parameters
    ----------
    cset : ConstraintSet
        The constraints (``m`` rows, ``n_eq`` equalities first).
    W : ndarray, shape (d1, d2)
        A nearly optimal, nearly feasible solution.
    mu : ndarray, shape (m,)
        Its multipliers; inequalities with ``mu_k > 1e-6 max(mu)``, the equalities and every
        violated row are held at their bound.
    rank : int
        The rank of the optimum (e.g. :func:`~attnsvm.svm.nuclear.certified_rank`).

    Returns
    -------
    ndarray, shape (d1, d2), or None
        The polished candidate (to be certified like any other), or None when the step's
        least-squares solve fails.
    """
    b, n_eq = cset.rhs, int(cset.n_eq)
    ineq = np.arange(cset.m) >= n_eq
    top = float(np.max(mu[ineq], initial=0.0))
    held = ~ineq | (mu > _MU_ACTIVE * top)
    if rank < 1 or not np.all(np.isfinite(W)):
        return None
    Wc = np.array(W, dtype=np.float64)
    for _ in range(_TANGENT_STEPS):
        vals = cset.values(Wc)
        S = np.flatnonzero(held | (vals < b))
        r = b[S] - vals[S]
        if S.size == 0 or np.max(np.abs(r)) <= 1e-15 * max(1.0, float(np.max(np.abs(b[S])))):
            break
        try:
            U, _, Vt = np.linalg.svd(Wc, full_matrices=False)
            U, V = U[:, :rank], Vt[:rank].T
            A, Z = cset.A[S], cset.Zc[S]
            AU, ZV = A @ U, Z @ V
            K = (Z @ Z.T) * (AU @ AU.T) + (A @ A.T) * (ZV @ ZV.T)
            dk = np.sqrt(np.maximum(np.diag(K), 1e-300))  # rows at unit scale
            step = np.linalg.lstsq(K / np.outer(dk, dk), r / dk, rcond=1e-14)[0] / dk
        except np.linalg.LinAlgError:
            return None
        Wc += U @ (Z.T @ (step[:, None] * AU)).T + (A.T @ (step[:, None] * ZV)) @ V.T
    return Wc if np.all(np.isfinite(Wc)) else None


def face_candidates(cset: ConstraintSet, W: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Primal-dual pairs ``(W', y)`` polished on the faces near the candidate ``W``.

    Parameters
    ----------
    cset : ConstraintSet
        The constraints (``m`` rows, ``n_eq`` equalities first).
    W : ndarray, shape (d1, d2)
        A nearly optimal (and nearly feasible) solution.

    Yields
    ------
    W_polished : ndarray, shape (d1, d2)
    y : ndarray, shape (m,)
        Multipliers, zero off the active rows.
    """
    b, n_eq = cset.rhs, int(cset.n_eq)
    slack = (cset.values(W) - b) / np.maximum(1.0, np.abs(b))
    slack[:n_eq] = 0.0
    U, sv, Vt = np.linalg.svd(W)
    if sv.size == 0 or sv[0] <= 0:
        return
    ranks = sorted({int(np.sum(sv > t * sv[0])) for t in (1e-3, 1e-6, 1e-9)} - {0})
    seen: set[bytes] = set()
    for thr in _ACTIVE:
        act = np.flatnonzero(slack < thr)
        key = act.tobytes()
        if act.size == 0 or key in seen:
            continue
        seen.add(key)
        Fa = np.einsum("ki,kj->kij", cset.A[act], cset.Zc[act]).reshape(act.size, -1)
        for r in ranks:
            if act.size < r * r:
                continue  # the active rows do not pin C
            Ur, Vr = U[:, :r], Vt[:r].T
            F = np.einsum("ki,kj->kij", cset.A[act] @ Ur, cset.Zc[act] @ Vr)
            C = np.linalg.lstsq(F.reshape(act.size, -1), b[act], rcond=None)[0].reshape(r, r)
            Wp = Ur @ C @ Vr.T
            Up, sp, Vpt = np.linalg.svd(Wp)
            k = int(np.sum(sp > 1e-12 * sp[0])) if sp.size and sp[0] > 0 else 0
            # the subgradient's part on the tangent space of W's face is U V^T; the part
            # on the complement (U_perp^T G V_perp, norm <= 1) is left free
            Ac, Zc = cset.A[act] @ Up[:, k:], cset.Zc[act] @ Vpt[k:].T
            comp = np.einsum("ki,kj->kij", Ac @ Up[:, k:].T, Zc @ Vpt[k:]).reshape(act.size, -1)
            target = (Up[:, :k] @ Vpt[:k]).ravel()
            y = np.zeros(cset.m)
            y[act] = np.linalg.lstsq((Fa - comp).T, target, rcond=None)[0]
            yield Wp, y
