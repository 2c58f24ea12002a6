"""Execution engines of :func:`attnsvm.train.train`: batched torch ops, NumPy, fused Triton.

Every engine advances the iterate by a number of steps and returns the statistics of the
iterate it reaches (computed once per step: the direction of step k serves both the record of
step k and the update to step k + 1).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..exceptions import InvalidParameterError
from ._batches import BatchSchedule
from ._data import Problem
from ._direction import Direction, score_direction
from ._geometry import GEOMETRIC, geometric_step
from ._graph import capture_step, graph_supported
from ._numpy_engine import (
    NUMPY_OPTIMIZERS,
    NumpyDirection,
    NumpyState,
    numpy_direction,
    numpy_grads,
    numpy_update,
)
from .heads import Head, LinearHead
from .losses import Loss
from .models import Model
from .optim import Optimizer
from .params import ParamSpec

__all__ = ["Stats", "TorchEngine", "NumpyEngine", "FusedEngine", "choose_backend"]

#: Largest padded tile (elements) the fused kernel keeps on chip per instance.
FUSED_MAX_TILE = 8192
#: Optimizers whose every step runs inside the fused kernel (as
#: ``_fused_triton.FUSED_OPTIMIZERS``); the others of :data:`FUSED_OUTSIDE` take their polar
#: factor outside it, one launch per step (never chosen automatically).
FUSED_IN_KERNEL = ("gd", "ngd", "polyak", "md", "sign", "signum", "adam")
FUSED_OUTSIDE = ("spectral", "muon")


class Stats(NamedTuple):
    """Statistics of one iterate: loss (B,), log max prob (B, n), selected (B, n); tensors
    (NumPy arrays from the NumPy engine)."""

    loss: Any
    max_logprob: Any
    selected: Any


class TorchEngine:
    """The batched torch loop (every parametrization, head, loss and optimizer)."""

    def __init__(self, model: Model, prob: Problem, loss: Loss, head: Head, opt: Optimizer,
                 cuda_graph: bool, device: torch.device, schedule: BatchSchedule | None = None):
        self.model, self.prob, self.opt = model, prob, opt
        need_xbar = model.need_xbar
        opt.init(model.blocks)
        self._k = 0  # steps taken (the mini-batch of the next update)

        def direction() -> Direction:
            w = None if schedule is None else torch.as_tensor(
                schedule.weights(self._k), dtype=prob.X.dtype, device=prob.X.device)
            return score_direction(model.scores(prob), prob, loss, head, need_xbar=need_xbar,
                                   weights=w)

        def update(dirn: Direction) -> None:
            opt.step(model.blocks, model.neg_grads(prob, dirn), dirn.loss)
            model.after_step(prob)

        self.direction, self.update = direction, update
        if cuda_graph and schedule is None and graph_supported(model, opt, device):
            try:
                g_dir, g_upd = capture_step(model, prob, loss, head, opt, need_xbar)
                self.direction, self.update = g_dir, lambda dirn: g_upd()
            except RuntimeError as exc:  # pragma: no cover - GPU only
                warnings.warn(f"CUDA graph capture failed ({exc}); running eagerly.",
                              RuntimeWarning, stacklevel=3)
        self._dirn: Direction | None = None

    def advance(self, n: int) -> Stats:
        """``n`` updates, then the statistics of the new iterate."""
        for _ in range(n):
            d = self._dirn if self._dirn is not None else self.direction()
            self._dirn = None
            self.update(d)
            self._k += 1
        self._dirn = d = self.direction()
        return Stats(d.loss, d.max_logprob, d.selected)

    def key_query(self) -> Tensor | None:
        return self.model.key_query()

    def blocks(self) -> dict[str, Tensor]:
        return dict(zip(self.model.names, self.model.blocks, strict=True))


def _md_state(P: Any, p: float) -> Any:
    """Mirror variable ``sign(P) |P|^(p-1)`` (as :meth:`Optimizer.init`)."""
    if isinstance(P, Tensor):
        return torch.sign(P) * P.abs().pow(p - 1.0)
    return np.sign(P) * np.abs(P) ** (p - 1.0)


class NumpyEngine:
    """:mod:`attnsvm.train._numpy_engine` behind the engine interface (CPU, float64)."""

    def __init__(self, prob: Problem, names: tuple[str, ...], blocks: list[Tensor], loss: Loss,
                 opt: Optimizer, kq_eps: float, schedule: BatchSchedule | None = None):
        arrs = [b.numpy().copy() for b in blocks]
        self.schedule = schedule
        self.names = names
        self.st = NumpyState(prob.X.numpy(), prob.Z.numpy(), prob.Y.numpy(), prob.v.numpy(),
                             arrs, loss.name)
        self.opt = opt
        self.kq_eps = kq_eps
        self.psi = [_md_state(P, opt.md_p) for P in arrs] if opt.name == "md" else None
        self._geo: list[dict[str, Any]] = [{} for _ in arrs]
        self._t = 0
        self._k = 0  # steps taken (the mini-batch of the next update)
        self._dirn: NumpyDirection | None = None

    def advance(self, n: int) -> Stats:
        st, o = self.st, self.opt
        need = o.name == "polyak"
        kw = {"optimizer": o.name, "lr": o.lr, "md_p": o.md_p,
              "polyak_max_step": o.polyak_max_step, "kq_eps": self.kq_eps, "psi": self.psi}
        direction, update = numpy_direction, numpy_update
        d = self._dirn
        geo = o.name in GEOMETRIC
        sch = self.schedule
        for _ in range(n):
            if d is None:
                d = direction(st, need, None if sch is None else sch.weights(self._k))
            self._k += 1
            if geo:  # the torch rules on views of the NumPy arrays (no copies)
                self._t += 1
                for P, (Gk, lk), state in zip(st.blocks, numpy_grads(st, d.G, d.logscale,
                                                                      self.kq_eps),
                                              self._geo, strict=True):
                    geometric_step(o.name, torch.from_numpy(P), torch.from_numpy(Gk),
                                   torch.from_numpy(np.ascontiguousarray(lk)), state, self._t,
                                   lr=o.lr, betas=o.betas, eps=o.adam_eps,
                                   ns_steps=o.ns_steps)
            else:
                update(st, d.G, d.logscale, d.loss, **kw)
            d = None
        self._dirn = d = numpy_direction(st, True,
                                         None if sch is None else sch.weights(self._k))
        shape = st.shape[:2]
        return Stats(d.loss, d.max_logprob.reshape(shape), d.selected.reshape(shape))

    def key_query(self) -> np.ndarray:
        return self.st.key_query()

    def blocks(self) -> dict[str, Tensor]:
        return {k: torch.from_numpy(a) for k, a in zip(self.names, self.st.blocks, strict=True)}


class FusedEngine:
    """The fused Triton kernel (:mod:`attnsvm.train._fused_triton`).

    Every step of ``gd``, ``ngd``, ``polyak``, ``md``, ``sign``, ``signum`` and ``adam`` runs in
    the kernel (one launch per :meth:`advance`); ``spectral`` and ``muon`` take the exact block
    gradients from the kernel (one launch per step) and the polar factor from
    :func:`attnsvm.train._geometry.geometric_step`, as the torch engine does.
    """

    def __init__(self, prob: Problem, names: tuple[str, ...], blocks: list[Tensor], loss: Loss,
                 opt: Optimizer, kq_eps: float):
        from . import _fused_triton  # Triton is optional (the extra 'gpu')

        self._fused = _fused_triton
        self.names = names
        self.X, self.Z, self.Y, self.v = (
            t.contiguous() for t in (prob.X, prob.Z, prob.Y, prob.v))
        self.P = [b.contiguous() for b in blocks]
        name = opt.name
        self.S: list[Tensor] | None = None
        self.V: list[Tensor] | None = None
        self.LG: Tensor | None = None
        if name == "md":
            self.S = [_md_state(P, opt.md_p) for P in self.P]
        elif name in ("signum", "adam"):
            self.S = [torch.zeros_like(P) for P in self.P]
            self.LG = torch.full((self.P[0].shape[0], 4), -float("inf"), dtype=self.P[0].dtype,
                                 device=self.P[0].device)
            if name == "adam":
                self.V = [torch.zeros_like(P) for P in self.P]
        self.outside = name in FUSED_OUTSIDE
        self._geo: list[dict[str, Any]] = [{} for _ in self.P]
        self._cached: Any = None
        self._t = 0
        self.opt, self.loss, self.kq_eps = opt, loss, kq_eps

    def _gradient(self) -> Any:
        out = self._cached or self._fused.fused_gradient(
            self.X, self.Z, self.Y, self.v, self.P, loss=self.loss.name, kq_eps=self.kq_eps)
        self._cached = None
        return out

    def advance(self, n: int) -> Stats:
        o = self.opt
        if self.outside:
            for _ in range(n):
                grads, ls, _ = self._gradient()
                self._t += 1
                for P, Gk, st in zip(self.P, grads, self._geo, strict=True):
                    geometric_step(o.name, P, Gk, ls, st, self._t, lr=o.lr, betas=o.betas,
                                   eps=o.adam_eps, ns_steps=o.ns_steps)
            self._cached = self._gradient()
            loss, sel, mlp = self._cached[2]
            return Stats(loss, mlp, sel)
        loss, sel, mlp = self._fused.fused_steps(
            self.X, self.Z, self.Y, self.v, self.P, self.S, int(n), optimizer=o.name, lr=o.lr,
            loss=self.loss.name, md_p=o.md_p, polyak_max_step=o.polyak_max_step,
            kq_eps=self.kq_eps, betas=o.betas, adam_eps=o.adam_eps, t0=self._t, second=self.V,
            logs=self.LG)
        self._t += int(n)
        return Stats(loss, mlp, sel)

    def key_query(self) -> Tensor:
        if len(self.P) == 1:
            return self.P[0]
        return torch.bmm(self.P[0], self.P[1].transpose(1, 2))

    def blocks(self) -> dict[str, Tensor]:
        return dict(zip(self.names, self.P, strict=True))


def _p2(k: int) -> int:
    return 1 << max(0, int(k) - 1).bit_length()


def _unsupported(spec: ParamSpec, head: Head, loss: Loss, opt: Optimizer, T: int
                 ) -> str | None:
    """Why the NumPy/fused engines cannot run this configuration (None when they can)."""
    if spec.base not in ("W", "KQ") or spec.joint:
        return f"param {spec.name!r} (only 'W' and 'KQ')"
    if type(head) is not LinearHead:
        return "a non-linear head"
    if type(loss) is not Loss:
        return "a custom Loss"
    if type(opt) is not Optimizer or opt.name not in NUMPY_OPTIMIZERS:
        return f"optimizer {opt.name!r} (only {', '.join(NUMPY_OPTIMIZERS)})"
    if T < 2:
        return "sequences of one token"
    return None


def _triton_unavailable(device: torch.device) -> str | None:
    """Why the Triton kernel cannot run on ``device`` (None when it can)."""
    try:
        from . import _fused_triton
    except ImportError as exc:
        return f"Triton is not installed ({exc}); pip install 'attnsvm[gpu]'"
    if device.type == "cuda":
        return None
    if _fused_triton.interpreter_active():
        return None if device.type == "cpu" else f"device {device.type!r}"
    hint = (" (TRITON_INTERPRET=1 is set, but triton was imported before it was)"
            if os.environ.get("TRITON_INTERPRET") == "1" else "")
    return ("a CUDA device; on the CPU only Triton's interpreter runs it: set TRITON_INTERPRET=1 "
            f"before triton is first imported{hint}")


def choose_backend(backend: str, spec: ParamSpec, head: Head, loss: Loss, opt: Optimizer,
                   shape: tuple[int, int, int, int], m: int, device: torch.device,
                   dtype: torch.dtype, cuda_graph: bool, single: bool = False,
                   minibatch: bool = False) -> str:
    """Resolve ``"auto"`` and check an explicit choice; returns "torch", "numpy" or "triton".

    ``"auto"`` on the CPU takes the NumPy engine for a single instance (``single``) only, so
    that batches keep the torch engine's numbers bit for bit.

    Raises
    ------
    InvalidParameterError
        An explicit backend that cannot run this configuration (the message says why).
    """
    B, n, T, d = shape
    why = _unsupported(spec, head, loss, opt, T)
    tile = max(_p2(n) * _p2(T) * _p2(d), _p2(n) * _p2(d) * max(_p2(d), _p2(m)),
               _p2(d) ** 2 * _p2(m))
    if backend == "numpy":
        why = why or (None if device.type == "cpu" and dtype == torch.float64
                      else "a device other than the CPU or a dtype other than float64")
    elif backend == "triton":
        why = why or ("mini-batches (batch_size < n)" if minibatch else None)
        why = why or (None if dtype in (torch.float32, torch.float64)
                             else f"dtype {dtype}") or (
            None if tile <= FUSED_MAX_TILE else f"instances this large (tile {tile} elements)"
        ) or _triton_unavailable(device)
    if backend in ("numpy", "triton"):
        if why is not None:
            raise InvalidParameterError(
                f"The backend {backend!r} cannot run this training: it needs {why}."
                if why.startswith("a CUDA") or why.startswith("Triton") else
                f"The backend {backend!r} does not support {why}; use backend='torch'.")
        return backend
    if backend == "torch" or why is not None or (cuda_graph and device.type == "cuda"):
        return "torch"
    if device.type == "cuda":
        ok = (not minibatch and opt.name in FUSED_IN_KERNEL
              and dtype in (torch.float32, torch.float64) and tile <= FUSED_MAX_TILE)
        return "triton" if ok and _triton_unavailable(device) is None else "torch"
    if single and device.type == "cpu" and dtype == torch.float64:
        return "numpy"
    return "torch"
