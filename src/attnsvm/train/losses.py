"""Decreasing losses ``l(u)`` of the margin ``u_i = Y_i f_i``, in a form safe for log space.

Each loss provides its value and ``log(-l'(u))``, the log of the positive weight that multiplies
a sequence's contribution to the gradient.  Working with ``log(-l'(u))`` keeps the update
direction defined when ``-l'(u)`` itself underflows (e.g. the exponential loss at ``u > 745``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .._validation import check_choice

__all__ = ["Loss", "LOSSES", "get_loss"]


class Loss:
    """A decreasing loss of the margin.

    Parameters
    ----------
    name : {"logistic", "exponential", "correlation"}
        ``log(1 + e^-u)``, ``e^-u`` or ``-u``.
    """

    def __init__(self, name: str):
        self.name = check_choice("loss", name, LOSSES)

    def value(self, u: Tensor) -> Tensor:
        """Loss of every margin, same shape as ``u``."""
        if self.name == "logistic":
            return F.softplus(-u)
        if self.name == "exponential":
            return torch.exp(-u)
        return -u

    def log_neg_deriv(self, u: Tensor) -> Tensor:
        """``log(-l'(u))``, finite for every finite ``u``; same shape as ``u``."""
        if self.name == "logistic":
            return -F.softplus(u)  # log sigmoid(-u)
        if self.name == "exponential":
            return -u
        return torch.zeros_like(u)

    def __repr__(self) -> str:
        return f"Loss({self.name!r})"


LOSSES = ("logistic", "exponential", "correlation")


def get_loss(loss: str | Loss) -> Loss:
    """Return ``loss`` as a :class:`Loss` (a name is validated)."""
    return loss if isinstance(loss, Loss) else Loss(loss)
