r"""NumPy engine of the exact trainer for small batches on the CPU (``W`` and ``(K, Q)``).

The same arithmetic as :func:`attnsvm.train._direction.score_direction` (linear head) and
:class:`attnsvm.train.optim.Optimizer` (``gd``, ``ngd``, ``polyak``, ``md``), with fewer and
cheaper operations per step: the scores and the gradient in ``W`` are one matrix-vector product
each with the precomputed ``A_b = [vec(x_it z_i^T)]_(it)`` (B, n T, d d), so
``a = A vec(W)`` and ``-grad_W = exp(logscale) A^T vec(C)``.  For a handful of instances a
step costs a few dozen small NumPy calls instead of a few dozen torch dispatches.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NumpyState", "numpy_direction", "numpy_update", "NUMPY_OPTIMIZERS"]

NUMPY_OPTIMIZERS = ("gd", "ngd", "polyak", "md")


def _softplus(x: np.ndarray) -> np.ndarray:
    """torch's softplus (threshold 20): ``x`` above 20, else ``log1p(exp(x))``."""
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))


class NumpyState:
    """Problem data and iterate of B instances as float64 arrays.

    Parameters
    ----------
    X : ndarray (B, n, T, d); Z : ndarray (B, n, d); Y : ndarray (B, n); v : ndarray (B, d)
    blocks : list of ndarray
        ``[W]`` (B, d, d) or ``[K, Q]`` (B, d, m); updated in place.
    loss : {"logistic", "exponential", "correlation"}
    """

    def __init__(self, X: np.ndarray, Z: np.ndarray, Y: np.ndarray, v: np.ndarray,
                 blocks: list[np.ndarray], loss: str):
        B, n, T, d = X.shape
        self.shape = (B, n, T, d)
        self.A = np.einsum("bnte,bnf->bntef", X, Z).reshape(B, n * T, d * d)
        self.At = np.ascontiguousarray(self.A.transpose(0, 2, 1))
        self.H = np.einsum("bntd,bd->bnt", X, v)
        self.Y = Y
        self.blocks = blocks
        self.loss = loss
        self.log_n = math.log(n)
        self.rows = np.arange(B)[:, None]
        self.seqs = np.arange(n)[None, :]

    def key_query(self) -> np.ndarray:
        """``W`` or ``K Q^T`` (B, d, d)."""
        if len(self.blocks) == 1:
            return self.blocks[0]
        K, Q = self.blocks
        return np.matmul(K, Q.transpose(0, 2, 1))


def numpy_direction(st: NumpyState) -> tuple[np.ndarray, ...]:
    """Scaled negative gradient in ``W`` and statistics of the current iterate.

    Returns
    -------
    G : ndarray (B, d, d)
        ``-dL/dW = exp(logscale) G``.
    logscale, loss : ndarray (B,)
    selected : ndarray (B, n) int64
    max_logprob : ndarray (B, n)
    """
    B, n, T, d = st.shape
    W = st.key_query()
    a = np.matmul(st.A, W.reshape(B, d * d, 1)).reshape(B, n, T)
    sel = a.argmax(-1)
    bi, si = st.rows, st.seqs
    y = a - a[bi, si, sel][..., None]
    y[bi, si, sel] = -np.inf
    m2y = y.max(-1)
    e = np.exp(y - m2y[..., None])
    L1 = np.log1p(np.exp(m2y) * e.sum(-1))
    m2 = m2y - L1
    em2 = np.exp(m2)
    H = st.H
    h_a = H[bi, si, sel]
    dh = h_a[..., None] - H
    Dt = (e * dh).sum(-1)
    u = st.Y * (h_a - em2 * Dt)
    if st.loss == "logistic":
        lw = -_softplus(u)
        lval = _softplus(-u)
    elif st.loss == "exponential":
        lw = -u
        lval = np.exp(-u)
    else:
        lw = np.zeros_like(u)
        lval = -u
    q = lw + m2
    M = q.max(-1)
    c = st.Y * np.exp(q - M[:, None])
    C = e * ((em2 * Dt)[..., None] - dh) * c[..., None]
    C[bi, si, sel] += c * np.exp(-L1) * Dt
    G = np.matmul(st.At, C.reshape(B, n * T, 1)).reshape(B, d, d)
    return G, M - st.log_n, lval.mean(-1), sel, -L1


def _norm(G: np.ndarray, p: float = 2.0) -> np.ndarray:
    flat = G.reshape(G.shape[0], -1)
    if p == 2.0:
        return np.sqrt(np.einsum("bk,bk->b", flat, flat))
    return (np.abs(flat) ** p).sum(1) ** (1.0 / p)


def numpy_update(st: NumpyState, G: np.ndarray, logscale: np.ndarray, loss: np.ndarray, *,
                 optimizer: str, lr: float, md_p: float, polyak_max_step: float,
                 kq_eps: float, psi: list[np.ndarray] | None) -> None:
    """One optimizer step in place (the rules of :mod:`attnsvm.train.optim`)."""
    if len(st.blocks) == 1:
        grads = [(G, logscale)]
    else:
        K, Q = st.blocks
        GK = np.matmul(G, Q)
        GQ = np.matmul(G.transpose(0, 2, 1), K)
        if kq_eps > 0:
            lr_ = math.log(2.0 * kq_eps)
            mx = np.maximum(logscale, lr_)
            c1 = np.exp(logscale - mx)[:, None, None]
            c2 = np.exp(lr_ - mx)[:, None, None]
            grads = [(c1 * GK - c2 * K, mx), (c1 * GQ - c2 * Q, mx)]
        else:
            grads = [(GK, logscale), (GQ, logscale)]
    if optimizer == "ngd":
        for P, (Gk, _) in zip(st.blocks, grads, strict=True):
            nrm = _norm(Gk)
            P += Gk * (lr / np.where(nrm > 0, nrm, 1.0))[:, None, None]
    elif optimizer == "gd":
        for P, (Gk, ls) in zip(st.blocks, grads, strict=True):
            P += (lr * np.exp(ls))[:, None, None] * Gk
    elif optimizer == "polyak":
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            parts = np.stack([2.0 * (ls + np.log(_norm(Gk))) for Gk, ls in grads])
            if len(grads) == 1:
                lg2 = parts[0]
            else:
                mx = parts.max(0)
                mx0 = np.where(np.isinf(mx), 0.0, mx)
                lg2 = np.log(np.exp(parts - mx0).sum(0)) + mx0
            lL = np.log(np.maximum(loss, 0.0))
            step_len = np.exp(np.minimum(lL - 0.5 * lg2, math.log(polyak_max_step)))
            for P, (Gk, ls) in zip(st.blocks, grads, strict=True):
                coef = step_len * np.exp(ls - 0.5 * lg2)
                coef = np.where(np.isfinite(coef), coef, 0.0)
                P += coef[:, None, None] * Gk
    else:  # md
        assert psi is not None
        q = md_p / (md_p - 1.0)
        for P, (Gk, _), s in zip(st.blocks, grads, psi, strict=True):
            nrm = _norm(Gk, q)
            s += lr * Gk / np.where(nrm > 0, nrm, 1.0)[:, None, None]
            P[...] = np.sign(s) * np.abs(s) ** (1.0 / (md_p - 1.0))
