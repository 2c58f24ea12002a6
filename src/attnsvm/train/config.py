"""Settings of :func:`attnsvm.train.train`, in one dataclass, and the random start."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validation import MAX_STEPS, as_float_array, check_choice, check_positive, check_steps
from ..exceptions import InvalidParameterError
from .params import PARAMETRIZATIONS

__all__ = ["TrainConfig", "BACKENDS", "DEFAULT_INIT_SCALE", "MAX_STEPS", "instance_seeds",
           "init_blocks", "resolve_threads"]

#: Default standard deviation of the random start (entries i.i.d. N(0, init_scale^2)).
DEFAULT_INIT_SCALE = 0.01

#: Execution backends of the trainer.
BACKENDS = ("auto", "torch", "numpy", "triton")


@dataclass
class TrainConfig:
    """Every setting of :func:`attnsvm.train.train` (see there for their meaning).

    ``train(data, config, **overrides)`` and ``train(data, **settings)`` are equivalent ways to
    pass them.

    Attributes
    ----------
    param, optimizer, lr, steps, seed, loss, head, init, init_scale, m, record_every,
    record_steps, targets, kq_eps, prompt_W, md_p, polyak_max_step, betas, adam_eps,
    ns_steps, batch_size, batch_order, batch_start, device, dtype, cuda_graph
        As documented in :func:`attnsvm.train.train`.
    backend : {"auto", "torch", "numpy", "triton"}
        ``"torch"``: batched torch ops (every feature); ``"numpy"``: the NumPy engine (CPU,
        float64, ``W``/``KQ``, linear head, every optimizer, mini-batches); ``"triton"``: the
        fused GPU kernel (CUDA, or Triton's interpreter with ``TRITON_INTERPRET=1``; the
        features of numpy but full batches only, float32 or float64; spectral and Muon take
        the kernel's gradients and an SVD per step outside it).  ``"auto"``: triton on CUDA
        when supported (not for spectral and Muon); on the CPU numpy
        for a single :class:`~attnsvm.instance.Instance` when supported (a list, even of one,
        keeps the torch engine and its numbers), else torch.
    threads : int, optional
        Torch threads during the call (restored afterwards).  Default: the environment
        variable ``ATTNSVM_THREADS``, else 1 (one thread per worker process).
    progress : callable, optional
        Called as ``progress(done_steps, total_steps)`` during the run (a few times a second
        at most, and at the end).
    """

    param: str = "W"
    optimizer: Any = "ngd"
    lr: float = 0.1
    steps: int = 2000
    seed: Any = 0
    loss: Any = "logistic"
    head: Any = None
    init: Any = "normal"
    init_scale: float = DEFAULT_INIT_SCALE
    m: int | None = None
    record_every: int | None = None
    record_steps: Any = None
    targets: Mapping[str, Any] | None = None
    kq_eps: float = 0.0
    prompt_W: Any = None
    md_p: float = 3.0
    polyak_max_step: float = 1e3
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    ns_steps: int = 0
    batch_size: int | None = None
    batch_order: str = "cyclic"
    batch_start: int = 0
    device: Any = "cpu"
    dtype: torch.dtype = torch.float64
    cuda_graph: bool = False
    backend: str = "auto"
    threads: int | None = None
    progress: Callable[[int, int], None] | None = None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``; unknown names raise :class:`InvalidParameterError`."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise InvalidParameterError(
                f"Unknown training setting(s) {unknown}; valid settings are {sorted(names)}.")
        return dataclasses.replace(self, **changes)

    def check(self) -> TrainConfig:
        """Validate the plain settings (returns ``self``)."""
        check_choice("param", self.param, tuple(PARAMETRIZATIONS))
        check_steps(self.steps)
        check_positive("init_scale", self.init_scale, allow_zero=True)
        check_positive("kq_eps", self.kq_eps, allow_zero=True)
        check_choice("backend", self.backend, BACKENDS)
        if self.threads is not None:
            check_positive("threads", self.threads, integer=True)
        if self.progress is not None and not callable(self.progress):
            raise InvalidParameterError("The 'progress' setting must be callable or None.")
        return self


def resolve_threads(threads: int | None) -> int:
    """``threads``, else ``$ATTNSVM_THREADS``, else 1."""
    if threads is not None:
        return int(threads)
    env = os.environ.get("ATTNSVM_THREADS", "").strip()
    if env:
        try:
            val = int(env)
        except ValueError:
            val = 0
        if val < 1:
            raise InvalidParameterError(
                f"The ATTNSVM_THREADS variable must be an integer >= 1. Got {env!r} instead.")
        return val
    return 1


def instance_seeds(seed: int | Sequence[int], B: int) -> list[int]:
    """Per-instance seeds: ``seed + b`` for an int, else the given list (length B)."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return [int(seed) + b for b in range(B)]
    seeds = [int(s) for s in seed]  # type: ignore[union-attr]
    if len(seeds) != B:
        raise InvalidParameterError(
            f"The 'seed' list must have one seed per instance ({B}). Got {len(seeds)} instead.")
    return seeds


def init_blocks(param: str, init: Any, init_scale: float, seeds: list[int], d: int, m: int
                ) -> dict[str, np.ndarray]:
    """Initial values (B, ...) as float64 arrays; random ones drawn per instance seed."""
    shapes = PARAMETRIZATIONS[param].block_shapes(d, m)
    B = len(seeds)
    if isinstance(init, str):
        check_choice("init", init, ("normal", "zero"))
        if init == "zero":
            return {k: np.zeros((B,) + s) for k, s in shapes.items()}
        out: dict[str, list[np.ndarray]] = {k: [] for k in shapes}
        for sd in seeds:
            rng = np.random.default_rng(sd)
            for k, s in shapes.items():
                out[k].append(init_scale * rng.standard_normal(s))
        return {k: np.stack(v) for k, v in out.items()}
    if not isinstance(init, Mapping):
        init = {next(iter(shapes)): init}
    res = {}
    for k, s in shapes.items():
        if k not in init:
            raise InvalidParameterError(
                f"The 'init' mapping must give {sorted(shapes)}. Got {sorted(init)} instead.")
        arr = np.asarray(init[k], dtype=np.float64)
        if arr.shape == s:
            arr = np.broadcast_to(arr, (B,) + s)
        res[k] = as_float_array(f"init[{k!r}]", arr, len(s) + 1, (B,) + s).copy()
    return res
