r"""The exact update direction of softmax attention, valid after saturation.

For scores ``a_it`` (B, n, T), probabilities ``s_i = softmax(a_i)``, head output ``f_i`` and
margin ``u_i = Y_i f_i``, the negative gradient of ``L = (1/n) sum_i l(u_i)`` in the scores is

.. math::  -\partial L / \partial a_{it} = (1/n)\, w_i Y_i\, s_{it} (h_{it} - f_i),
           \qquad w_i = -l'(u_i) > 0,

with ``h_it = g_i^T x_it`` (``g_i = v`` for the linear head).  Once the softmax saturates on a
token ``a = argmax_t s_it`` both ``s_it`` (t != a) and ``h_ia - f_i`` are tiny and
``h_ia - f_i`` computed as a difference loses every digit.  Here, with
``m2_i = max_{u != a} log s_iu`` and ``e_iu = exp(log s_iu - m2_i)`` (u != a, at most 1):

* ``D_i = h_ia - f_i = exp(m2_i) * Dt_i``, ``Dt_i = sum_{u != a} e_iu (h_ia - h_iu)``
  (no cancellation: it is the identity ``h - f = sum_u s_u (h - h_u)``);
* ``s_ia (h_ia - f_i) = exp(log s_ia + m2_i) Dt_i`` and, for t != a,
  ``s_it (h_it - f_i) = exp(log s_it) ((h_it - h_ia) + exp(m2_i) Dt_i)``;
* every term is scaled by ``exp(-M)`` with ``M = max_i (log w_i + m2_i)`` per instance, so the
  largest coefficient is of order one whatever the saturation.

The result is ``C`` (B, n, T) with ``-dL/da = exp(logscale) * C`` exactly, ``logscale = M - log n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._data import Problem
from .heads import Head
from .losses import Loss

__all__ = ["Direction", "score_direction"]


@dataclass
class Direction:
    """Scaled negative score-gradient and by-products.

    Attributes
    ----------
    C : Tensor, shape (B, n, T)
        ``-dL/da_it = exp(logscale_b) * C_bit``.
    logscale : Tensor, shape (B,)
    loss : Tensor, shape (B,)
        ``L`` per instance.
    logw : Tensor, shape (B, n)
        ``log(-l'(u_i))``.
    selected : Tensor, shape (B, n), int64
        ``argmax_t s_it``.
    max_logprob : Tensor, shape (B, n)
        ``log max_t s_it``.
    xbar : Tensor or None, shape (B, n, d)
        Accurate attention output ``X_i^T s_i`` (only when ``need_xbar``).
    """

    C: Tensor
    logscale: Tensor
    loss: Tensor
    logw: Tensor
    selected: Tensor
    max_logprob: Tensor
    xbar: Tensor | None = None


def score_direction(a: Tensor, prob: Problem, loss: Loss, head: Head,
                    need_xbar: bool = False, weights: Tensor | None = None) -> Direction:
    """Exact, underflow-free ``-dL/da`` up to a positive per-instance factor.

    Parameters
    ----------
    a : Tensor, shape (B, n, T)
        Attention scores.
    prob : Problem
    loss : Loss
    head : Head
    need_xbar : bool
        Also return the attention output ``x_bar`` (B, n, d).
    weights : Tensor (B, n), optional
        Mini-batch counts (:mod:`attnsvm.train._batches`): the direction of
        ``(1/sum_i w_i) sum_i w_i l(u_i)`` (sequences of weight 0 drop out, exactly); the
        returned loss stays the full mean.

    Returns
    -------
    Direction
    """
    n = a.shape[1]
    amax, sel = a.max(dim=-1)  # selected token a_i = argmax_t s_it
    sel_ = sel[..., None]
    y = a - amax[..., None]  # log s_it + L1_i, <= 0, 0 at the selected token
    ym = y.scatter(-1, sel_, -math.inf)
    m2y = ym.amax(-1)  # second largest score minus the largest
    e = torch.exp(ym - m2y[..., None])  # e_iu = s_iu / s_i(2nd) for u != a, 0 at a
    em2y = torch.exp(m2y)
    L1 = torch.log1p(em2y * e.sum(-1))  # log sum_t exp(y_t); log s_ia = -L1
    m2 = m2y - L1  # log of the second largest probability
    em2 = torch.exp(m2)
    xbar = None
    if head.linear and not need_xbar:
        h_a = prob.H.gather(-1, sel_)
        dh = h_a - prob.H  # h_ia - h_it
        Dt = (e * dh).sum(-1)
        f = h_a[..., 0] - em2 * Dt
    else:
        X = prob.X
        idx = sel[..., None, None].expand(-1, -1, 1, X.shape[-1])
        x_a = X.gather(2, idx)  # (B,n,1,d)
        dX = x_a - X  # (B,n,T,d)
        xbar = x_a[:, :, 0] - em2[..., None] * torch.einsum("bnt,bntd->bnd", e, dX)
        if head.linear:
            f = torch.einsum("bnd,bd->bn", xbar, prob.v)
            dh = torch.einsum("bntd,bd->bnt", dX, prob.v)
        else:
            f = head.value(xbar, prob.v)
            dh = torch.einsum("bntd,bnd->bnt", dX, head.grad(xbar, prob.v))
        Dt = (e * dh).sum(-1)
    u = prob.Y * f
    lw = loss.log_neg_deriv(u)
    if weights is None:
        M = (lw + m2).amax(-1)  # (B,)
        # t != a: exp(lw + log s_it - M) = e_it c_i;  t = a: exp(lw + log s_ia + m2 - M) = c_i s_ia
        c = prob.Y * torch.exp(lw + m2 - M[:, None])  # (B, n), |c| <= 1
        logscale = M - math.log(n)
    else:
        on = weights > 0
        q = torch.where(on, lw + m2, -math.inf)
        M = q.amax(-1)
        c = prob.Y * weights * torch.where(on, torch.exp(q - M[:, None]), 0.0)
        logscale = M - torch.log(weights.sum(-1))
    ca = c * torch.exp(-L1) * Dt
    C = e * ((em2 * Dt)[..., None] - dh) * c[..., None]  # 0 at the selected token
    C.scatter_add_(-1, sel_, ca[..., None])
    return Direction(C=C, logscale=logscale, loss=loss.value(u).mean(-1), logw=lw,
                     selected=sel, max_logprob=-L1, xbar=xbar)
