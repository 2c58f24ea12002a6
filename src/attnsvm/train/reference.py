"""Autograd references: a stable autograd loss (for gradient checks) and the official protocol
(plain autograd, softmax then ``log(1 + exp(-u))``, normalized GD, one instance at a time),
which the benchmark and the accuracy comparison run against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import check_choice
from ..instance import Instance
from ._data import Problem
from .heads import Head, get_head
from .losses import Loss, get_loss
from .models import Model

__all__ = ["autograd_loss", "reference_train"]


def autograd_loss(model: Model, prob: Problem, loss: str | Loss = "logistic",
                  head: Head | None = None) -> Tensor:
    """Per-instance loss (B,) built from differentiable torch ops (log-softmax based).

    Differentiate it with ``torch.autograd`` after setting ``requires_grad`` on the model's
    blocks (and ``prob.v`` for joint training); accurate while the softmax is not saturated.
    """
    hd = get_head(head)
    lo = get_loss(loss)
    s = torch.exp(torch.log_softmax(model.scores(prob), dim=-1))
    xbar = torch.einsum("bnt,bntd->bnd", s, prob.X)
    f = hd.value(xbar, prob.v)
    return lo.value(prob.Y * f).mean(-1)


def reference_train(instance: Instance, param: str = "W", lr: float = 0.1, steps: int = 2000,
                    init: Any = None, eps: float = 2.2e-16,
                    record_steps: Sequence[int] | None = None) -> dict[str, Any]:
    """The official protocol: torch autograd in float64, one instance, normalized GD.

    Parameters
    ----------
    instance : Instance
        With ``Y`` and ``v``.
    param : {"W", "KQ"}
    lr, steps : float, int
    init : array (d, d) for W, or (K, Q) tuple of (d, m) arrays
        Default: zeros for W; for KQ it is required.
    eps : float
        ``eps (||K||^2 + ||Q||^2)`` added to the loss for KQ (official value 2.2e-16).
    record_steps : list of int, optional
        Steps at which the key-query matrix is kept.

    Returns
    -------
    dict
        ``W`` (d, d) final key-query matrix, ``K``/``Q`` for KQ, ``trajectory`` list of
        (step, W) pairs.
    """
    check_choice("param", param, ("W", "KQ"))
    X = torch.as_tensor(instance.X)
    Z = torch.as_tensor(instance.queries)
    Y = torch.as_tensor(instance.Y)
    v = torch.as_tensor(instance.v)
    d = X.shape[2]
    if param == "W":
        Winit = np.zeros((d, d)) if init is None else np.asarray(init, dtype=np.float64)
        params = [torch.tensor(Winit, requires_grad=True)]
    else:
        K0, Q0 = init
        params = [torch.tensor(np.asarray(K0, dtype=np.float64), requires_grad=True),
                  torch.tensor(np.asarray(Q0, dtype=np.float64), requires_grad=True)]
    want = set(record_steps or [])
    traj: list[tuple[int, np.ndarray]] = []

    def keyq() -> Tensor:
        return params[0] if param == "W" else params[0] @ params[1].T

    for k in range(steps + 1):
        if k in want:
            traj.append((k, keyq().detach().numpy().copy()))
        if k == steps:
            break
        W = keyq()
        a = torch.einsum("ntd,nd->nt", X, Z @ W.T)
        s = torch.softmax(a, dim=1)
        f = torch.einsum("nt,ntd->nd", s, X) @ v
        L = torch.log(1 + torch.exp(-Y * f)).mean()
        if param == "KQ":
            L = L + eps * (params[0].pow(2).sum() + params[1].pow(2).sum())
        grads = torch.autograd.grad(L, params)
        with torch.no_grad():
            for P, g in zip(params, grads, strict=True):
                P -= lr * g / g.norm()
    out: dict[str, Any] = {"W": keyq().detach().numpy().copy(), "trajectory": traj}
    if param == "KQ":
        out["K"] = params[0].detach().numpy().copy()
        out["Q"] = params[1].detach().numpy().copy()
    return out
