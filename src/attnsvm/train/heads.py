"""Output heads ``f_i = head(x_bar_i)`` applied to the attention output ``x_bar_i = X_i^T s_i``.

The exact-direction machinery needs, per sequence, the value ``f_i`` and the gradient
``g_i = grad f(x_bar_i)`` (the *effective linear head*): the derivative of ``f_i`` in the score
``a_it`` is ``s_it g_i^T (x_it - x_bar_i)``, exactly as for a linear head ``v = g_i``.

* :class:`LinearHead` -- ``f = v^T x_bar`` with the instance's ``v`` (default).
* :class:`ReLUHead` -- ``f = 1^T relu(V^T x_bar)``, ``V`` of shape (d, m).
* :class:`LambdaHead` -- ``f = x_bar^T v - lam ||x_bar||^2``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import as_float_array, check_positive
from ..exceptions import InvalidParameterError

__all__ = ["Head", "LinearHead", "ReLUHead", "LambdaHead", "get_head"]


class Head:
    """Base class; ``linear`` heads take the fast path with precomputed ``h_it = v^T x_it``."""

    linear: bool = False
    name: str = "head"

    def value(self, xbar: Tensor, v: Tensor) -> Tensor:
        """Head output ``f``; ``xbar`` (B, n, d), ``v`` (B, d) -> (B, n)."""
        raise NotImplementedError

    def grad(self, xbar: Tensor, v: Tensor) -> Tensor:
        """``grad f(xbar)``; ``xbar`` (B, n, d), ``v`` (B, d) -> (B, n, d)."""
        raise NotImplementedError

    def to(self, device: Any, dtype: torch.dtype) -> Head:
        """Move the head's own tensors (if any); returns ``self``."""
        return self


class LinearHead(Head):
    """``f = v^T x_bar`` with the instance's head ``v``."""

    linear = True
    name = "linear"

    def value(self, xbar: Tensor, v: Tensor) -> Tensor:
        return torch.einsum("bnd,bd->bn", xbar, v)

    def grad(self, xbar: Tensor, v: Tensor) -> Tensor:
        return v[:, None, :].expand_as(xbar)


class ReLUHead(Head):
    """ReLU value layer ``f = 1^T relu(V^T x_bar)`` (TF-SVM multi-token experiment).

    Parameters
    ----------
    V : array_like, shape (d, m) or (B, d, m)
        Value matrix (fixed).  The subgradient of relu at 0 is taken as 0, as in torch.
    """

    name = "relu"

    def __init__(self, V: Any):
        arr = np.asarray(V.detach().cpu().numpy() if isinstance(V, Tensor) else V)
        if arr.ndim not in (2, 3):
            raise InvalidParameterError(
                f"The 'V' matrix of ReLUHead must have shape (d, m) or (B, d, m). "
                f"Got shape {arr.shape} instead.")
        arr = as_float_array("V", arr, arr.ndim)
        self.V = torch.as_tensor(arr)

    def to(self, device: Any, dtype: torch.dtype) -> ReLUHead:
        self.V = self.V.to(device=device, dtype=dtype)
        return self

    def _V(self, B: int) -> Tensor:
        return self.V.expand(B, *self.V.shape) if self.V.ndim == 2 else self.V

    def value(self, xbar: Tensor, v: Tensor) -> Tensor:
        return torch.relu(torch.bmm(xbar, self._V(xbar.shape[0]))).sum(-1)

    def grad(self, xbar: Tensor, v: Tensor) -> Tensor:
        V = self._V(xbar.shape[0])
        act = (torch.bmm(xbar, V) > 0).to(xbar.dtype)  # (B, n, m)
        return torch.bmm(act, V.transpose(1, 2))


class LambdaHead(Head):
    """``f = x_bar^T v - lam ||x_bar||^2`` with the instance's ``v``.

    Parameters
    ----------
    lam : float, > 0
    """

    name = "lambda"

    def __init__(self, lam: float):
        self.lam = float(check_positive("lam", lam))

    def value(self, xbar: Tensor, v: Tensor) -> Tensor:
        return torch.einsum("bnd,bd->bn", xbar, v) - self.lam * (xbar * xbar).sum(-1)

    def grad(self, xbar: Tensor, v: Tensor) -> Tensor:
        return v[:, None, :] - 2.0 * self.lam * xbar


def get_head(head: str | Head | None) -> Head:
    """``None``/``"linear"`` -> :class:`LinearHead`; a :class:`Head` is returned unchanged."""
    if head is None or head == "linear":
        return LinearHead()
    if isinstance(head, Head):
        return head
    raise InvalidParameterError(
        f"The 'head' parameter must be 'linear' or a Head instance (ReLUHead(V), "
        f"LambdaHead(lam)). Got {head!r} instead.")
