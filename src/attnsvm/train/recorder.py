"""Trajectory recorder: cheap per-step statistics for B instances, as tidy DataFrames.

Values stay on the training device in preallocated tensors until :meth:`Recorder.frame` is
called, so recording every step of B = 1000 instances costs a few small copies per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import as_float_array
from ..exceptions import InvalidInputError

__all__ = ["Recorder", "batched_corr", "as_targets"]


def batched_corr(A: Tensor, B: Tensor) -> Tensor:
    """Correlation ``<A, B> / (||A||_F ||B||_F)`` per instance; (B, ...) x (B, ...) -> (B,).

    Zero matrices give NaN (undefined correlation).
    """
    a = A.reshape(A.shape[0], -1)
    b = B.reshape(B.shape[0], -1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def as_targets(targets: Mapping[str, Any] | None, B: int, shape: tuple[int, ...],
               device: torch.device, dtype: torch.dtype) -> dict[str, Tensor]:
    """Validate ``{name: array (B, *shape) or shape}`` target matrices -> tensors (B, *shape).

    A ``None`` entry or an all-NaN slice (e.g. an infeasible SVM) records NaN correlations.
    """
    out: dict[str, Tensor] = {}
    for name, val in (targets or {}).items():
        if val is None:
            arr = np.full((B,) + shape, np.nan)
        else:
            raw = np.asarray(val, dtype=np.float64)
            if raw.shape == shape:
                raw = np.broadcast_to(raw, (B,) + shape)
            if raw.shape != (B,) + shape:
                raise InvalidInputError(
                    f"The target '{name}' must have shape {shape} or {(B,) + shape}. "
                    f"Got shape {raw.shape} instead.")
            finite = np.isfinite(raw.reshape(B, -1)).all(1)
            arr = raw.copy()
            arr[~finite] = np.nan
            if finite.any():
                as_float_array(f"targets[{name!r}]", arr[finite], len(shape) + 1)
        out[str(name)] = torch.as_tensor(arr, dtype=dtype, device=device)
    return out


class Recorder:
    """Keeps, at chosen steps, per instance: loss, norm of the recorded matrix, correlation with
    each target; per sequence: largest probability and selected token.

    Parameters
    ----------
    steps : array_like of int
        Steps to record (iterate after that many updates; 0 = start).
    B, n : int
    targets : dict of name -> Tensor (B, d, d)
    device, dtype
    """

    def __init__(self, steps: Any, B: int, n: int, targets: Mapping[str, Tensor],
                 device: torch.device, dtype: torch.dtype):
        self.steps = np.unique(np.asarray(steps, dtype=np.int64))
        self._pos = {int(s): k for k, s in enumerate(self.steps)}
        S = len(self.steps)
        self.targets = dict(targets)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.loss = torch.full((S, B), np.nan, **kw)
        self.norm = torch.full((S, B), np.nan, **kw)
        self.max_prob = torch.full((S, B, n), np.nan, **kw)
        self.selected = torch.full((S, B, n), -1, device=device, dtype=torch.int64)
        self.corr = {k: torch.full((S, B), np.nan, **kw) for k in self.targets}
        # NumPy views of the CPU buffers: the NumPy engine records without torch dispatches
        self._np: dict[str, Any] | None = None if torch.device(device).type != "cpu" else {
            "loss": self.loss.numpy(), "norm": self.norm.numpy(),
            "max_prob": self.max_prob.numpy(), "selected": self.selected.numpy(),
            "targets": {k: t.numpy().reshape(B, -1) for k, t in self.targets.items()},
            "corr": {k: c.numpy() for k, c in self.corr.items()}}

    def wants(self, step: int) -> bool:
        """True when ``step`` is a recorded step."""
        return step in self._pos

    def record(self, step: int, loss: Any, M: Any, max_logprob: Any, selected: Any) -> None:
        """Store the statistics of the iterate at ``step``: tensors, or NumPy arrays on the CPU
        (``loss`` (B,), ``M`` (B, d, d) or None, ``max_logprob`` and ``selected`` (B, n))."""
        if isinstance(loss, np.ndarray) and self._np is not None:
            k = self._pos[step]
            v = self._np
            v["loss"][k] = loss
            np.exp(max_logprob, out=v["max_prob"][k])
            v["selected"][k] = selected
            if M is not None:
                flat = M.reshape(M.shape[0], -1)
                nrm = np.sqrt(np.einsum("bk,bk->b", flat, flat))
                v["norm"][k] = nrm
                for name, Tm in v["targets"].items():
                    tn = np.sqrt(np.einsum("bk,bk->b", Tm, Tm))
                    with np.errstate(invalid="ignore", divide="ignore"):  # zero -> NaN
                        v["corr"][name][k] = np.einsum("bk,bk->b", flat, Tm) / (nrm * tn)
        else:
            self._record_torch(step, loss, M, max_logprob, selected)

    @torch.no_grad()
    def _record_torch(self, step: int, loss: Tensor, M: Tensor | None, max_logprob: Tensor,
                      selected: Tensor) -> None:
        k = self._pos[step]
        self.loss[k] = loss
        self.max_prob[k] = torch.exp(max_logprob)
        self.selected[k] = selected
        if M is not None:
            self.norm[k] = M.reshape(M.shape[0], -1).norm(dim=1)
            for name, Tm in self.targets.items():
                self.corr[name][k] = batched_corr(M, Tm)

    def frame(self) -> Any:
        """One row per (instance, step): ``instance, step, loss, norm, max_prob_min,
        max_prob_mean, corr_<target>...`` (a pandas DataFrame, sorted by instance then step)."""
        import pandas as pd

        S, B = self.loss.shape
        mp = self.max_prob.cpu().numpy()  # (S, B, n)

        def col(a: np.ndarray) -> np.ndarray:  # (S, B) -> instance-major
            return np.ascontiguousarray(a.T).ravel()

        cols: dict[str, Any] = {
            "instance": np.repeat(np.arange(B), S),
            "step": np.tile(self.steps, B),
            "loss": col(self.loss.cpu().numpy()),
            "norm": col(self.norm.cpu().numpy()),
            "max_prob_min": col(mp.min(-1)),
            "max_prob_mean": col(mp.mean(-1)),
        }
        for name, c in self.corr.items():
            cols[f"corr_{name}"] = col(c.cpu().numpy())
        return pd.DataFrame(cols)

    def sequence_frame(self) -> Any:
        """One row per (instance, step, sequence): ``max_prob`` and ``selected``."""
        import pandas as pd

        S, B, n = self.selected.shape

        def col(a: np.ndarray) -> np.ndarray:  # (S, B, n) -> (B, S, n) order
            return np.ascontiguousarray(a.transpose(1, 0, 2)).ravel()

        return pd.DataFrame({
            "instance": np.repeat(np.arange(B), S * n),
            "step": np.tile(np.repeat(self.steps, n), B),
            "seq": np.tile(np.arange(n), B * S),
            "max_prob": col(self.max_prob.cpu().numpy()),
            "selected": col(self.selected.cpu().numpy()),
        })
