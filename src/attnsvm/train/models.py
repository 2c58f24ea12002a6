"""Parametrizations of the one-layer attention model, batched over B instances.

Every model exposes its trainable blocks (tensors with a leading batch axis), the scores
``a_it`` it induces, and the exact negative gradient of every block given the exact score
direction of :func:`attnsvm.train._direction.score_direction`, as pairs ``(G, logscale)`` with
``-grad = exp(logscale) * G`` per instance.

* :class:`WModel` -- ``a_it = x_it^T W z_i``, ``W`` (B, d, d).
* :class:`KQModel` -- ``W = K Q^T``, ``K, Q`` (B, d, m): ``-grad_K = G Q``, ``-grad_Q = G^T K``
  with ``G = -grad_W``.  ``eps`` adds ``eps (||K||^2 + ||Q||^2)`` to the loss (the official
  code's ``2.2e-16``); the default 0 keeps the exact direction.
* :class:`PromptModel` -- ``a_it = x_it^T W p`` with trainable prompt ``p`` (B, d), fixed ``W``.
* :class:`JointModel` -- any of the above plus the linear head ``v`` (B, d), trained jointly:
  ``-grad_v = (1/n) sum_i w_i Y_i x_bar_i``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import as_float_array
from ._data import Problem
from ._direction import Direction
from .params import PARAMETRIZATIONS

__all__ = ["Model", "WModel", "KQModel", "PromptModel", "JointModel", "build_model"]

Grad = tuple[Tensor, Tensor]


class Model:
    """Base class of the parametrizations."""

    names: tuple[str, ...] = ()
    need_xbar: bool = False

    @property
    def blocks(self) -> list[Tensor]:
        """Trainable tensors, in the order of :attr:`names`."""
        return [getattr(self, k) for k in self.names]

    def scores(self, prob: Problem) -> Tensor:
        """Attention scores ``a`` (B, n, T)."""
        raise NotImplementedError

    def neg_grads(self, prob: Problem, dirn: Direction) -> list[Grad]:
        """``(G_k, logscale_k)`` per block with ``-dL/dblock_k = exp(logscale_k) G_k``."""
        raise NotImplementedError

    def key_query(self) -> Tensor | None:
        """The key-query matrix (B, d, d) when the model has one."""
        return None

    def after_step(self, prob: Problem) -> None:
        """Hook after an update (joint training refreshes the head)."""


def _grad_W(prob: Problem, C: Tensor) -> Tensor:
    """``sum_{i,t} C_it x_it z_i^T`` (B, d, d)."""
    Xc = torch.matmul(prob.Xt, C[..., None])[..., 0]  # (B, n, d)
    return torch.bmm(Xc.transpose(1, 2), prob.Z)


class WModel(Model):
    """``a_it = x_it^T W z_i``.

    Parameters
    ----------
    W : Tensor, shape (B, d, d)
    """

    names = ("W",)

    def __init__(self, W: Tensor):
        self.W = W

    def scores(self, prob: Problem) -> Tensor:
        Wz = torch.bmm(prob.Z, self.W.transpose(1, 2))  # (B, n, d): W z_i
        return torch.einsum("bntd,bnd->bnt", prob.X, Wz)

    def neg_grads(self, prob: Problem, dirn: Direction) -> list[Grad]:
        return [(_grad_W(prob, dirn.C), dirn.logscale)]

    def key_query(self) -> Tensor:
        return self.W


class KQModel(Model):
    """``W = K Q^T`` with ``K, Q`` of shape (B, d, m).

    Parameters
    ----------
    K, Q : Tensor, shape (B, d, m)
    eps : float, default 0
        Weight of ``eps (||K||_F^2 + ||Q||_F^2)`` added to the loss.
    """

    names = ("K", "Q")

    def __init__(self, K: Tensor, Q: Tensor, eps: float = 0.0):
        self.K = K
        self.Q = Q
        self.eps = float(eps)

    def scores(self, prob: Problem) -> Tensor:
        Wz = torch.bmm(torch.bmm(prob.Z, self.Q), self.K.transpose(1, 2))  # K Q^T z_i
        return torch.einsum("bntd,bnd->bnt", prob.X, Wz)

    def neg_grads(self, prob: Problem, dirn: Direction) -> list[Grad]:
        G = _grad_W(prob, dirn.C)
        GK = torch.bmm(G, self.Q)
        GQ = torch.bmm(G.transpose(1, 2), self.K)
        ls = dirn.logscale
        if self.eps <= 0:
            return [(GK, ls), (GQ, ls)]
        lr = torch.full_like(ls, math.log(2.0 * self.eps))
        mx = torch.maximum(ls, lr)
        c1 = torch.exp(ls - mx)[:, None, None]
        c2 = torch.exp(lr - mx)[:, None, None]
        return [(c1 * GK - c2 * self.K, mx), (c1 * GQ - c2 * self.Q, mx)]

    def key_query(self) -> Tensor:
        return torch.bmm(self.K, self.Q.transpose(1, 2))


class PromptModel(Model):
    """Prompt attention ``a_it = x_it^T W p`` (MMTS), trainable ``p``.

    Parameters
    ----------
    p : Tensor, shape (B, d)
    W : Tensor, shape (B, d, d)
        Fixed key matrix (identity for the query-free model).
    prob : Problem
        Used to precompute the keys ``k_it = W^T x_it``.
    """

    names = ("p",)

    def __init__(self, p: Tensor, W: Tensor, prob: Problem):
        self.p = p
        self.Wfix = W
        self.keys = torch.einsum("bntd,bde->bnte", prob.X, W)  # x_it^T W

    def scores(self, prob: Problem) -> Tensor:
        return torch.einsum("bntd,bd->bnt", self.keys, self.p)

    def neg_grads(self, prob: Problem, dirn: Direction) -> list[Grad]:
        return [(torch.einsum("bnt,bntd->bd", dirn.C, self.keys), dirn.logscale)]


class JointModel(Model):
    """A base model plus the linear head ``v`` (B, d), trained jointly (linear head only).

    Parameters
    ----------
    base : Model
    v : Tensor, shape (B, d)
    """

    need_xbar = True

    def __init__(self, base: Model, v: Tensor):
        self.base = base
        self.v = v
        self.names = ("v",) + base.names

    @property
    def blocks(self) -> list[Tensor]:
        return [self.v] + self.base.blocks

    def scores(self, prob: Problem) -> Tensor:
        return self.base.scores(prob)

    def neg_grads(self, prob: Problem, dirn: Direction) -> list[Grad]:
        assert dirn.xbar is not None
        n = dirn.logw.shape[1]
        mx = dirn.logw.amax(-1)
        wy = torch.exp(dirn.logw - mx[:, None]) * prob.Y  # (B, n)
        Gv = torch.einsum("bn,bnd->bd", wy, dirn.xbar)
        return [(Gv, mx - math.log(n))] + self.base.neg_grads(prob, dirn)

    def key_query(self) -> Tensor | None:
        return self.base.key_query()

    def after_step(self, prob: Problem) -> None:
        prob.set_head(self.v)


def build_model(param: str, blocks: dict[str, Tensor], prob: Problem, kq_eps: float = 0.0,
                prompt_W: Any = None) -> Model:
    """The model of parametrization ``param`` (see :mod:`attnsvm.train.params`).

    Parameters
    ----------
    param : str
        A name of :data:`attnsvm.train.params.PARAMS`.
    blocks : dict name -> Tensor
        The base's blocks (``W``; ``K, Q``; ``p``) with a leading batch axis.
    prob : Problem
    kq_eps : float
        ``eps`` of :class:`KQModel`.
    prompt_W : array (d, d) or (B, d, d), optional
        Fixed key matrix of the prompt models (identity by default).
    """

    spec = PARAMETRIZATIONS[param]
    B, n, T, d = prob.shape
    ref = prob.X
    base: Model
    if spec.base == "W":
        base = WModel(blocks["W"])
    elif spec.base == "KQ":
        base = KQModel(blocks["K"], blocks["Q"], eps=kq_eps)
    else:
        if prompt_W is None:
            Wf = torch.eye(d, dtype=ref.dtype, device=ref.device).expand(B, d, d)
        else:
            arr = np.asarray(prompt_W, dtype=np.float64)
            if arr.shape == (d, d):
                arr = np.broadcast_to(arr, (B, d, d))
            arr = as_float_array("prompt_W", arr, 3, (B, d, d)).copy()
            Wf = torch.as_tensor(arr, dtype=ref.dtype, device=ref.device)
        base = PromptModel(blocks["p"], Wf, prob)
    return JointModel(base, prob.v.clone()) if spec.joint else base
