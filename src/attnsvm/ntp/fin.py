"""The finite part: the subspace ``S_fin``, ``W^fin`` and the fit ``W ~ R W^svm + W^fin``.

    S_fin = span{ (e_i - e_j) e_k^T : i, j in one SCC of G^(k) }   (W^svm is orthogonal to it)
    W^fin = argmin_{W in S_fin}  (1/n) sum_i -log( sum_{t: x_it = y_i} s_it / sum_{t in C_i} s_it )

with ``C_i`` the positions of sequence ``i`` whose token lies in the label's SCC (its top SCC)
and ``s_i = softmax(X_i W e_{k_i})``.  Only sequences whose top SCC holds another token count.
The objective is convex (a log-sum-exp minus a linear term, as equal tokens have equal scores)
and, because every SCC is strongly connected, coercive on ``S_fin``: it is minimised here by
Newton's method with a backtracking line search to a gradient norm of ``gtol`` (1e-10), in
coordinates of an orthonormal basis of ``S_fin``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from .._validation import check_positive
from ..exceptions import ConvergenceWarning
from .dataset import NTPDataset
from .graph import PriorityGraph

__all__ = ["FinPart", "fin_subspace", "solve_w_fin", "fit_r", "top_scc_mask"]


def fin_subspace(dataset: NTPDataset, graphs: dict[int, PriorityGraph],
                 rtol: float = 1e-10) -> np.ndarray:
    """An orthonormal basis of ``S_fin`` (Frobenius inner product).

    Returns
    -------
    ndarray, shape (r, d, d)
        ``r = dim S_fin`` (0 for acyclic graphs).
    """
    E, d = dataset.E, dataset.d
    gens = []
    for k, g in graphs.items():
        diffs = [E[c[0]] - E[j] for c in g.sccs if len(c) > 1 for j in c[1:]]
        if not diffs:
            continue
        U, s, _ = np.linalg.svd(np.array(diffs).T, full_matrices=False)  # span D_k in R^d
        U = U[:, s > rtol * max(s[0], 1e-300)]
        gens.append(np.einsum("iu,j->uij", U, E[k]).reshape(-1, d * d))
    if not gens:
        return np.zeros((0, d, d))
    G = np.concatenate(gens)
    _, s, Vt = np.linalg.svd(G, full_matrices=False)
    return Vt[s > rtol * s[0]].reshape(-1, d, d)


def top_scc_mask(dataset: NTPDataset, graphs: dict[int, PriorityGraph]) -> np.ndarray:
    """Positions whose token lies in the label's SCC of ``G^(k_i)``, shape (n, T) bool."""
    tok, lab = dataset.tokens, dataset.labels
    out = np.zeros(tok.shape, dtype=bool)
    for k, g in graphs.items():
        rows = np.flatnonzero(tok[:, -1] == k)
        out[rows] = g.component[tok[rows]] == g.component[lab[rows]][:, None]
    return out


@dataclass
class FinPart:
    """``S_fin`` and ``W^fin`` of a dataset.

    Attributes
    ----------
    basis : ndarray, shape (r, d, d)
        Orthonormal basis of ``S_fin``.
    W_fin : ndarray, shape (d, d)
    loss : float
        The reduced (top-SCC) loss at ``W_fin``.
    grad_norm : float
        Norm of its gradient on ``S_fin`` at ``W_fin`` (the optimality certificate).
    iterations : int
        Newton steps.
    """

    basis: np.ndarray
    W_fin: np.ndarray
    loss: float
    grad_norm: float
    iterations: int

    @property
    def dim(self) -> int:
        """``dim S_fin``."""
        return int(self.basis.shape[0])

    def project(self, W: np.ndarray) -> np.ndarray:
        """Orthogonal projection of ``W`` (..., d, d) on ``S_fin``."""
        if self.dim == 0:
            return np.zeros_like(W)
        c = np.einsum("bij,...ij->...b", self.basis, W)
        return np.einsum("...b,bij->...ij", c, self.basis)


def _reduced_problem(dataset: NTPDataset, graphs: dict[int, PriorityGraph], basis: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features ``F`` (R, L, r) of the distinct top-SCC tokens of each counted sequence, their
    log multiplicities (R, L) (``-inf`` pads) and the label's slot (R,)."""
    E = dataset.E
    mask = top_scc_mask(dataset, graphs)
    rows, toks, logm, slot = [], [], [], []
    for i in range(dataset.n):
        u, cnt = np.unique(dataset.tokens[i][mask[i]], return_counts=True)
        if u.size < 2:
            continue
        rows.append(i)
        toks.append(u)
        logm.append(np.log(cnt))
        slot.append(int(np.flatnonzero(u == dataset.labels[i])[0]))
    R, r = len(rows), basis.shape[0]
    L = max((u.size for u in toks), default=0)
    F = np.zeros((R, L, r))
    LM = np.full((R, L), -np.inf)
    for j, (i, u) in enumerate(zip(rows, toks, strict=True)):
        k = dataset.tokens[i, -1]
        # score of token u under W = sum_b c_b B_b is e_u^T B_b e_k
        F[j, :u.size] = E[u] @ (basis @ E[k]).T
        LM[j, :u.size] = logm[j]
    return F, LM, np.asarray(slot, dtype=np.int64)


def _objective(c: np.ndarray, F: np.ndarray, LM: np.ndarray, slot: np.ndarray, n: int,
               hessian: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
    a = F @ c + LM  # (R, L)
    lse = logsumexp(a, axis=1)
    R = np.arange(a.shape[0])
    loss = float(np.sum(lse - a[R, slot]) / n)
    p = np.exp(a - lse[:, None])
    p[~np.isfinite(LM)] = 0.0
    resid = p.copy()
    resid[R, slot] -= 1.0
    g = np.einsum("jl,jlb->b", resid, F) / n
    if not hessian:
        return loss, g, None
    Fbar = np.einsum("jl,jlb->jb", p, F)
    H = (np.einsum("jl,jlb,jlc->bc", p, F, F) - Fbar.T @ Fbar) / n
    return loss, g, H


def solve_w_fin(dataset: NTPDataset, graphs: dict[int, PriorityGraph], *, gtol: float = 1e-10,
                max_iter: int = 100, basis: np.ndarray | None = None) -> FinPart:
    """``W^fin``: the minimiser of the top-SCC loss over ``S_fin`` (Newton's method).

    Parameters
    ----------
    dataset : NTPDataset
    graphs : dict of int to PriorityGraph
    gtol : float
        Stop when the gradient norm on ``S_fin`` is at most ``gtol``.
    max_iter : int
        Newton steps at most (a :class:`ConvergenceWarning` if ``gtol`` is not reached).
    basis : ndarray, shape (r, d, d), optional
        Orthonormal basis of ``S_fin`` (default :func:`fin_subspace`).

    Returns
    -------
    FinPart
        ``W_fin = 0`` when no sequence's top SCC holds two tokens.
    """
    check_positive("gtol", gtol)
    check_positive("max_iter", max_iter, integer=True)
    B = fin_subspace(dataset, graphs) if basis is None else basis
    d = dataset.d
    F, LM, slot = _reduced_problem(dataset, graphs, B)
    r = B.shape[0]
    if r == 0 or F.shape[0] == 0:
        return FinPart(B, np.zeros((d, d)), 0.0, 0.0, 0)
    c = np.zeros(r)
    loss, g, H = _objective(c, F, LM, slot, dataset.n, True)
    it = 0
    while np.linalg.norm(g) > gtol and it < max_iter:
        it += 1
        assert H is not None
        try:
            step = -np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(H, g, rcond=None)[0]
        slope = float(g @ step)
        if not slope < 0:  # not a descent direction (numerically singular H): use -g
            step, slope = -g, -float(g @ g)
        t = 1.0
        while True:
            new_loss, _, _ = _objective(c + t * step, F, LM, slot, dataset.n, False)
            if new_loss <= loss + 1e-4 * t * slope or t < 1e-12:
                break
            t *= 0.5
        c = c + t * step
        loss, g, H = _objective(c, F, LM, slot, dataset.n, True)
        if t < 1e-12 and np.linalg.norm(g) > gtol:
            break  # at machine precision: the gradient cannot be reduced further
    gn = float(np.linalg.norm(g))
    if gn > gtol:
        warnings.warn(f"W^fin: Newton's method stopped after {it} steps with gradient norm "
                      f"{gn:.2e} > gtol={gtol:g}", ConvergenceWarning, stacklevel=2)
    return FinPart(B, np.tensordot(c, B, axes=1), loss, gn, it)


def fit_r(W: np.ndarray, W_svm: np.ndarray, W_fin: np.ndarray) -> np.ndarray:
    """Least-squares ``R = <W - W^fin, W^svm> / ||W^svm||^2`` for one or many ``W`` (..., d, d).

    Returns
    -------
    ndarray, shape (...)
    """
    return np.einsum("...ij,ij->...", W - W_fin, W_svm) / float(np.vdot(W_svm, W_svm))
