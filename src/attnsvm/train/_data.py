"""Batched problem data: B instances of equal shape as torch tensors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..exceptions import InvalidInputError, InvalidParameterError
from ..instance import Instance

__all__ = ["Problem", "as_instances", "resolve_device"]


def resolve_device(device: Any) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidParameterError(
            f"The 'device' parameter must be a torch device. Got {device!r} instead.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError("The 'device' parameter asks for CUDA, which is unavailable.")
    return dev


def _not_rotary(inst: Instance, k: int) -> None:
    """Refuse a rotary instance: its scores depend on positions (attnsvm.train.rotary)."""
    if inst.is_rotary:
        raise InvalidInputError(
            f"The 'data' item {k} is a rotary instance (freqs, pos, qpos); train it with "
            f"attnsvm.train.rotary.train_rotary, not the position-free model.")


def as_instances(data: Instance | Sequence[Instance]) -> tuple[list[Instance], bool]:
    """Normalize the input of :func:`train` to a list; the flag is True for a single instance."""
    if isinstance(data, Instance):
        _not_rotary(data, 0)
        return [data], True
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise InvalidInputError(
            f"The 'data' argument must be an Instance or a sequence of Instances. "
            f"Got {type(data).__name__} instead.")
    items = list(data)
    if not items:
        raise InvalidInputError("The 'data' argument must hold at least one Instance. Got 0.")
    for k, inst in enumerate(items):
        if not isinstance(inst, Instance):
            raise InvalidInputError(
                f"The 'data' item {k} must be an Instance. Got {type(inst).__name__} instead.")
        _not_rotary(inst, k)
    shape = items[0].X.shape
    for k, inst in enumerate(items):
        if inst.X.shape != shape:
            raise InvalidInputError(
                f"The instances of a batch must share one shape (n, T, d). Got {shape} for item 0 "
                f"and {inst.X.shape} for item {k} instead.")
    return items, False


@dataclass
class Problem:
    """B instances stacked.

    Attributes
    ----------
    X : Tensor, shape (B, n, T, d)
    Z : Tensor, shape (B, n, d)
        Queries (cross-attention ``Z`` or the self-attention query token).
    Y : Tensor, shape (B, n)
    v : Tensor, shape (B, d)
    H : Tensor, shape (B, n, T)
        ``h_it = v^T x_it`` (recomputed by joint training when ``v`` moves).
    Xt : Tensor, shape (B, n, d, T)
        Contiguous transpose of ``X`` (faster contractions over ``t``).
    """

    X: Tensor
    Z: Tensor
    Y: Tensor
    v: Tensor
    H: Tensor
    Xt: Tensor

    @classmethod
    def from_tensors(cls, X: Tensor, Z: Tensor, Y: Tensor, v: Tensor) -> Problem:
        """Build from tensors ``X`` (B, n, T, d), ``Z`` (B, n, d), ``Y`` (B, n), ``v`` (B, d)."""
        H = torch.einsum("bntd,bd->bnt", X, v)
        return cls(X=X, Z=Z, Y=Y, v=v, H=H, Xt=X.transpose(2, 3).contiguous())

    @classmethod
    def from_instances(cls, instances: Sequence[Instance], device: torch.device,
                       dtype: torch.dtype, need_head: bool = True) -> Problem:
        """Stack instances (all must carry ``Y`` and ``v`` when ``need_head``)."""
        for k, inst in enumerate(instances):
            if need_head and not inst.has_head:
                raise InvalidInputError(
                    f"Training needs labels 'Y' and head 'v'; instance {k} lacks them.")
        n, _, d = instances[0].X.shape
        X = np.stack([inst.X for inst in instances])
        Z = np.stack([inst.queries for inst in instances])
        Y = np.stack([inst.Y if inst.Y is not None else np.ones(n) for inst in instances])
        v = np.stack([inst.v if inst.v is not None else np.zeros(d) for inst in instances])
        t = {k: torch.as_tensor(a, dtype=dtype, device=device) for k, a in
             {"X": X, "Z": Z, "Y": Y, "v": v}.items()}
        return cls.from_tensors(t["X"], t["Z"], t["Y"], t["v"])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(B, n, T, d)."""
        B, n, T, d = self.X.shape
        return int(B), int(n), int(T), int(d)

    def set_head(self, v: Tensor) -> None:
        """Replace ``v`` (B, d) and recompute ``H``."""
        self.v = v
        self.H = torch.einsum("bntd,bd->bnt", self.X, v)
