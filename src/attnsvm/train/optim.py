"""Batched optimizers acting on exact, log-scaled descent directions.

Each step receives, per trainable block ``k``, a pair ``(G_k, logscale_k)`` with
``-grad_k = exp(logscale_k) * G_k`` per instance (``G_k`` of order one even when the gradient
underflows).  Scale-free methods (normalized GD, mirror descent) use ``G_k`` alone, so their
direction stays exact after the softmax saturates.

* ``gd``: ``P <- P - lr grad`` (the true gradient; it may underflow, as it does in exact arithmetic
  rounded to float64).
* ``ngd``: ``P <- P - lr grad / ||grad||_F`` per block and instance (the papers' protocol; for
  ``(K, Q)`` each factor is normalized separately).
* ``polyak``: ``P <- P - eta grad`` with ``eta = (L - L*) / ||grad||^2`` (all blocks together,
  ``L* = 0``); the step length ``eta ||grad||`` is computed in log space and capped at
  ``max_step`` because with a fixed head ``L`` does not reach ``L*``.
* ``md``: l_p mirror descent (Julistiono et al.) per block:
  ``psi = sign(P)|P|^(p-1) - lr grad/||grad||_q``, ``P = sign(psi)|psi|^(1/(p-1))``, 1/p+1/q=1.
* ``adam``: Adam (``adam_eps >= 0``, ``betas``), its moments kept in log scale so that it
  stays exact after saturation (:mod:`._geometry`).
* ``sign``, ``spectral``, ``signum``, ``muon``: steepest descent in the max norm and in the
  spectral norm, without and with momentum (:mod:`._geometry`); each block its own step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._validation import check_choice, check_positive
from ..exceptions import InvalidParameterError
from ._geometry import GEOMETRIC, geometric_step

__all__ = ["OPTIMIZERS", "Optimizer", "make_optimizer"]

OPTIMIZERS = ("gd", "ngd", "polyak", "md", "adam", "sign", "spectral", "signum", "muon")

Grad = tuple[Tensor, Tensor]


def _bnorm(G: Tensor, p: float = 2.0) -> Tensor:
    """Per-instance norm of ``G`` (B, ...) -> (B, 1, ..., 1) for broadcasting."""
    flat = G.reshape(G.shape[0], -1)
    nrm = flat.norm(dim=1) if p == 2.0 else flat.abs().pow(p).sum(1).pow(1.0 / p)
    return nrm.reshape((-1,) + (1,) * (G.ndim - 1))


def _bcast(x: Tensor, like: Tensor) -> Tensor:
    return x.reshape((-1,) + (1,) * (like.ndim - 1))


class Optimizer:
    """Batched optimizer; see the module docstring for the rules.

    Parameters
    ----------
    name : {"gd", "ngd", "polyak", "md", "adam", "sign", "spectral", "signum", "muon"}
    lr : float
    md_p : float, default 3
        Exponent of the l_p mirror map (``md`` only), > 1.
    polyak_max_step : float, default 1e3
        Cap of the Polyak step length ``eta ||grad||``.
    betas : (float, float), default (0.9, 0.999)
        Adam's moment decays; ``betas[0]`` is also the momentum of ``signum`` and ``muon``.
    adam_eps : float, default 1e-8
        Adam's ``eps`` (``>= 0``; 0 makes Adam scale-free).
    ns_steps : int, default 0
        ``muon``: 0 for the exact polar factor, else this many Newton-Schulz iterations.
    """

    def __init__(self, name: str, lr: float, *, md_p: float = 3.0,
                 polyak_max_step: float = 1e3, betas: tuple[float, float] = (0.9, 0.999),
                 adam_eps: float = 1e-8, ns_steps: int = 0):
        self.name = check_choice("optimizer", name, OPTIMIZERS)
        self.lr = float(check_positive("lr", lr))
        self.md_p = float(check_positive("md_p", md_p))
        if self.md_p <= 1:
            raise InvalidParameterError(
                f"The 'md_p' parameter must be > 1. Got {md_p!r} instead.")
        self.md_q = self.md_p / (self.md_p - 1.0)
        self.polyak_max_step = float(check_positive("polyak_max_step", polyak_max_step))
        b = tuple(float(x) for x in betas)
        if len(b) != 2 or not all(0.0 <= x < 1.0 for x in b):
            raise InvalidParameterError(
                f"The 'betas' parameter must be two numbers in [0, 1). Got {betas!r} instead.")
        self.betas = (b[0], b[1])
        self.adam_eps = float(check_positive("adam_eps", adam_eps, allow_zero=True))
        self.ns_steps = int(check_positive("ns_steps", ns_steps, integer=True, allow_zero=True))
        self._state: list[dict[str, Any]] = []
        self._t = 0

    def init(self, blocks: Sequence[Tensor]) -> None:
        """Prepare state for the given blocks (mirror variables, Adam moments)."""
        self._t = 0
        self._state = []
        for P in blocks:
            st: dict[str, Tensor] = {}
            if self.name == "md":
                st["psi"] = torch.sign(P) * P.abs().pow(self.md_p - 1.0)
            self._state.append(st)

    @torch.no_grad()
    def step(self, blocks: Sequence[Tensor], grads: Sequence[Grad], loss: Tensor) -> None:
        """Update ``blocks`` in place.

        Parameters
        ----------
        blocks : list of Tensor, each (B, ...)
        grads : list of (G, logscale), ``G`` like the block, ``logscale`` (B,)
        loss : Tensor, shape (B,)
            Current loss (Polyak step).
        """
        if not self._state:
            self.init(blocks)
        self._t += 1
        name = self.name
        if name == "ngd":
            for P, (G, _) in zip(blocks, grads, strict=True):
                nrm = _bnorm(G)
                P.addcmul_(G, self.lr / torch.where(nrm > 0, nrm, 1.0))
        elif name == "gd":
            for P, (G, ls) in zip(blocks, grads, strict=True):
                P.add_(self.lr * _bcast(torch.exp(ls), G) * G)
        elif name == "polyak":
            # log ||grad||^2 over all blocks, then log of eta * exp(ls_k) per block.
            parts = [2.0 * (ls + torch.log(_bnorm(G).reshape(-1))) for G, ls in grads]
            lg2 = torch.logsumexp(torch.stack(parts), dim=0)  # (B,)
            lL = torch.log(torch.clamp(loss, min=0.0))
            step_len = torch.exp(torch.clamp(lL - 0.5 * lg2, max=math.log(self.polyak_max_step)))
            gnorm_half = 0.5 * lg2
            for P, (G, ls) in zip(blocks, grads, strict=True):
                # eta * exp(ls) * G = step_len * exp(ls - log||grad||) * G
                coef = step_len * torch.exp(ls - gnorm_half)
                coef = torch.where(torch.isfinite(coef), coef, 0.0)
                P.add_(_bcast(coef, G) * G)
        elif name == "md":
            for P, (G, _), st in zip(blocks, grads, self._state, strict=True):
                nrm = _bnorm(G, self.md_q)
                psi = st["psi"]
                psi.add_(self.lr * G / torch.where(nrm > 0, nrm, 1.0))
                P.copy_(torch.sign(psi) * psi.abs().pow(1.0 / (self.md_p - 1.0)))
        else:
            assert name in GEOMETRIC
            for P, (G, ls), st in zip(blocks, grads, self._state, strict=True):
                geometric_step(name, P, G, ls, st, self._t, lr=self.lr, betas=self.betas,
                               eps=self.adam_eps, ns_steps=self.ns_steps)


def make_optimizer(optimizer: str | Optimizer, lr: float, **kwargs: Any) -> Optimizer:
    """An :class:`Optimizer` from a name (or return the given one)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    return Optimizer(optimizer, lr, **kwargs)  # type: ignore[arg-type]
