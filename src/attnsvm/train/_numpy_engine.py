r"""NumPy engine of the exact trainer for small batches on the CPU (``W`` and ``(K, Q)``).

The same arithmetic as :func:`attnsvm.train._direction.score_direction` (linear head) and
:class:`attnsvm.train.optim.Optimizer` (``gd``, ``ngd``, ``polyak``, ``md``; the geometric
rules ``sign``, ``spectral``, ``signum``, ``muon``, ``adam`` are the torch ones of
:mod:`attnsvm.train._geometry` on views of these arrays), with fewer and
cheaper operations per step (rows of all sequences of all instances handled as one 2-D array,
flat indices for the selected tokens, in-place exponentials, the loss value only when it is
used).  For a handful of instances a step costs a few dozen small NumPy calls instead of a few
dozen torch dispatches.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["NumpyState", "NumpyDirection", "numpy_direction", "numpy_update",
           "NUMPY_OPTIMIZERS", "numpy_grads"]

NUMPY_OPTIMIZERS = ("gd", "ngd", "polyak", "md", "adam", "sign", "spectral", "signum", "muon")


_max = np.maximum.reduce  # ndarray.max without the Python wrapper (steps of a few us)
_sum = np.add.reduce


def _softplus(x: np.ndarray) -> np.ndarray:
    """torch's softplus (threshold 20): ``x`` above 20, else ``log1p(exp(x))`` (to rounding)."""
    out = np.logaddexp(0.0, x)
    if _max(x) > 20.0:
        big = x > 20.0
        out[big] = x[big]
    return out


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
        self.Xr = np.ascontiguousarray(X).reshape(B * n, T, d)  # rows (instance, sequence)
        self.Xtr = np.ascontiguousarray(X.transpose(0, 1, 3, 2)).reshape(B * n, d, T)
        self.Z = np.ascontiguousarray(Z)
        self.H = np.einsum("bntd,bd->bnt", X, v).reshape(B * n, T)  # rows (instance, sequence)
        self.Hf = self.H.reshape(-1)
        self.Y = np.ascontiguousarray(Y, dtype=np.float64)
        self.Yf = self.Y.reshape(-1)
        self.blocks = blocks
        self.loss = loss
        self.log_n = math.log(n)
        self.base = np.arange(B * n) * T  # flat offset of each row

    def key_query(self) -> np.ndarray:
        """``W`` or ``K Q^T`` (B, d, d)."""
        if len(self.blocks) == 1:
            return self.blocks[0]
        K, Q = self.blocks
        return np.matmul(K, Q.transpose(0, 2, 1))


def _loss_terms(u: np.ndarray, loss: str, need_value: bool
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """``log(-l'(u))`` and (when asked) ``l(u)``, with torch's softplus threshold."""
    if loss == "logistic":
        lw = -_softplus(u)
        return lw, (_softplus(-u) if need_value else None)
    if loss == "exponential":
        return -u, (np.exp(-u) if need_value else None)
    return np.zeros_like(u), (-u if need_value else None)


class NumpyDirection(NamedTuple):
    """See :func:`numpy_direction`."""

    G: np.ndarray
    logscale: np.ndarray
    loss: np.ndarray | None
    selected: np.ndarray
    max_logprob: np.ndarray


def numpy_direction(st: NumpyState, need_loss: bool = True,
                    weights: np.ndarray | None = None) -> NumpyDirection:
    """Scaled negative gradient in ``W`` and statistics of the current iterate.

    ``weights`` (B, n): mini-batch counts, as in
    :func:`attnsvm.train._direction.score_direction`.

    Returns
    -------
    G : ndarray (B, d, d)
        ``-dL/dW = exp(logscale) G``.
    logscale : ndarray (B,)
    loss : ndarray (B,) or None
        None unless ``need_loss``.
    selected : ndarray (B n,) int64
    max_logprob : ndarray (B n,)
        Rows (instance, sequence) flattened; reshape to (B, n).
    """
    B, n, T, d = st.shape
    W = st.key_query()
    Wz = np.matmul(st.Z, W.transpose(0, 2, 1))  # (B, n, d): W z_i
    a = np.vecdot(st.Xr, Wz.reshape(B * n, 1, d))  # (B n, T): x_it^T W z_i
    sel = a.argmax(1)
    idx = st.base + sel
    amax = a.take(idx)
    a.put(idx, -np.inf)
    a2 = _max(a, axis=1)  # second largest score
    m2y = a2 - amax  # log(s_i(2nd) / s_ia)
    a -= a2[:, None]
    e = np.exp(a, out=a)  # e_iu = s_iu / s_i(2nd) for u != a, 0 at a
    L1 = np.log1p(np.exp(m2y) * _sum(e, axis=1))  # -log s_ia
    m2 = m2y - L1  # log s_i(2nd)
    em2 = np.exp(m2)
    h_a = st.Hf.take(idx)
    dh = h_a[:, None] - st.H  # h_ia - h_it
    Dt = np.vecdot(e, dh)
    k = em2 * Dt  # h_ia - f_i
    u = st.Yf * (h_a - k)
    if st.loss == "logistic":  # inlined: -softplus(u) with torch's threshold (u > 20 -> u)
        lw = np.logaddexp(0.0, u)
        if _max(u) > 20.0:
            lw = np.where(u > 20.0, u, lw)
        np.negative(lw, out=lw)
        lval = _softplus(-u) if need_loss else None
    else:
        lw, lval = _loss_terms(u, st.loss, need_loss)
    q = lw + m2
    if weights is not None:
        on = weights > 0
        qb = np.where(on, q.reshape(B, n), -np.inf)
        M = _max(qb, axis=1)
        with np.errstate(invalid="ignore"):
            ex = np.where(on, np.exp(qb - M[:, None]), 0.0)
        c = (st.Y * weights * ex).reshape(-1)
        log_k = np.log(_sum(weights, axis=1))
    elif B == 1:
        M = _max(q, axis=0, keepdims=True)
        c = st.Yf * np.exp(q - M)
    else:
        q = q.reshape(B, n)
        M = _max(q, axis=1)
        c = (st.Y * np.exp(q - M[:, None])).reshape(-1)
    C = k[:, None] - dh
    C *= e
    C *= c[:, None]
    nL1 = -L1
    C.put(idx, c * np.exp(nL1) * Dt)  # C is exactly 0 there (e = 0): torch's scatter_add
    Xc = np.vecdot(st.Xtr, C[:, None, :])  # (B n, d): X_i^T c_i
    if B == 1:
        G = (Xc.T @ st.Z[0])[None]  # sum_i (X_i^T c_i) z_i^T
    else:
        G = np.matmul(Xc.reshape(B, n, d).transpose(0, 2, 1), st.Z)
    loss = None if lval is None else _sum(lval.reshape(B, n), axis=1) / n
    return NumpyDirection(G, M - (st.log_n if weights is None else log_k), loss, sel, nL1)


def _norm(G: np.ndarray, p: float = 2.0) -> np.ndarray:
    flat = G.reshape(G.shape[0], -1)
    if p == 2.0:
        return np.sqrt(np.einsum("bk,bk->b", flat, flat))
    return (np.abs(flat) ** p).sum(1) ** (1.0 / p)


def numpy_grads(st: NumpyState, G: np.ndarray, logscale: np.ndarray, kq_eps: float
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per block ``(G_k, logscale_k)`` with ``-grad_k = exp(logscale_k) G_k`` from the score-
    space direction ``G`` (W: itself; (K, Q): ``G Q`` and ``G^T K``, with the ``kq_eps``
    regularizer)."""
    if len(st.blocks) == 1:
        return [(G, logscale)]
    K, Q = st.blocks
    GK = np.matmul(G, Q)
    GQ = np.matmul(G.transpose(0, 2, 1), K)
    if kq_eps > 0:
        lr_ = math.log(2.0 * kq_eps)
        mx = np.maximum(logscale, lr_)
        c1 = np.exp(logscale - mx)[:, None, None]
        c2 = np.exp(lr_ - mx)[:, None, None]
        return [(c1 * GK - c2 * K, mx), (c1 * GQ - c2 * Q, mx)]
    return [(GK, logscale), (GQ, logscale)]


def numpy_update(st: NumpyState, G: np.ndarray, logscale: np.ndarray, loss: np.ndarray | None, *,
                 optimizer: str, lr: float, md_p: float, polyak_max_step: float,
                 kq_eps: float, psi: list[np.ndarray] | None) -> None:
    """One optimizer step in place (the rules of :mod:`attnsvm.train.optim`)."""
    grads = numpy_grads(st, G, logscale, kq_eps)
    if optimizer == "ngd" and G.shape[0] == 1 and len(grads) == 1:  # one instance: scalars
        g = G.reshape(-1)
        n1 = math.sqrt(float(g @ g))
        st.blocks[0] += G * (lr / (n1 if n1 > 0 else 1.0))
    elif optimizer == "ngd":
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
            assert loss is not None  # computed for Polyak steps
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
