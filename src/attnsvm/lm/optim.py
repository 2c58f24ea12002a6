"""Optimizers of ``attnsvm pretrain``: AdamW, SGD with momentum, and Muon.

Muon (Jordan et al. 2024) is spectral descent with momentum (THEORY.md, optimizer geometry):
for each hidden weight matrix ``W`` (m, n) with gradient ``G``,

    B <- mu B + G,    D = G + mu B  (Nesterov),    W <- (1 - lr wd) W - lr s polar(D),

with ``polar(D) = U V^T`` for the thin SVD ``D = U S V^T`` (computed exactly, not by
Newton-Schulz) and ``s = sqrt(max(1, m / n))``.  Embeddings, norms, biases and the output layer
are updated by AdamW, as in the reference recipe.
"""

from __future__ import annotations

from typing import Any

import torch

from .config import PretrainConfig

__all__ = ["Muon", "polar", "make_optimizers", "is_hidden_matrix"]

#: AdamW step size of the parameters Muon does not update.
MUON_ADAMW_LR = 3e-3


def polar(D: torch.Tensor) -> torch.Tensor:
    """The orthogonal polar factor ``U V^T`` of a matrix (its thin SVD's ``U V^T``).

    >>> import torch
    >>> P = polar(torch.tensor([[2.0, 0.0], [0.0, -3.0]]))
    >>> P.tolist()
    [[1.0, 0.0], [0.0, -1.0]]
    """
    U, _, Vh = torch.linalg.svd(D, full_matrices=False)
    return U @ Vh


class Muon(torch.optim.Optimizer):
    """Momentum + exact polar factor, for 2-D parameters only.

    Parameters
    ----------
    params : iterable of torch.Tensor
        Matrices (2-D).
    lr : float
    momentum : float
    weight_decay : float
    """

    def __init__(self, params: Any, lr: float = 0.02, momentum: float = 0.95,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """One update of every matrix with a gradient."""
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                buf = st.get("momentum")
                if buf is None:
                    buf = st["momentum"] = torch.zeros_like(p)
                buf.mul_(mu).add_(p.grad)
                D = p.grad + mu * buf
                scale = max(1.0, p.shape[0] / p.shape[1]) ** 0.5
                if wd:
                    p.mul_(1.0 - lr * wd)
                p.add_(polar(D), alpha=-lr * scale)


def is_hidden_matrix(name: str, p: torch.Tensor) -> bool:
    """True for the 2-D weights inside the blocks (not embeddings, positions or output)."""
    if p.ndim != 2:
        return False
    return not any(k in name for k in ("embed", "wte", "wpe", "lm_head"))


def make_optimizers(model: Any, cfg: PretrainConfig) -> list[torch.optim.Optimizer]:
    """The optimizers of ``cfg.optimizer`` over ``model``'s parameters (one or two)."""
    lr = cfg.resolved_lr()
    named = list(model.named_parameters())
    if cfg.optimizer == "adamw":
        return [torch.optim.AdamW([p for _, p in named], lr=lr, weight_decay=0.0)]
    if cfg.optimizer == "sgd":
        return [torch.optim.SGD([p for _, p in named], lr=lr, momentum=0.9)]
    hidden = [p for n, p in named if is_hidden_matrix(n, p)]
    rest = [p for n, p in named if not is_hidden_matrix(n, p)]
    return [Muon(hidden, lr=lr), torch.optim.AdamW(rest, lr=MUON_ADAMW_LR, weight_decay=0.0)]
