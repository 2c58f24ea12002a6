"""CUDA-graph execution of the training loop (optional fast path on a GPU).

A training step launches a few dozen small kernels; for B up to ~1e5 their launch overhead
dominates on a GPU.  Capturing the step into two CUDA graphs -- the exact score direction, then
the optimizer update -- and replaying them removes that overhead while keeping the loop's
semantics (statistics are recorded between the two replays).

Not exercised in the CPU test suite (no GPU there); :func:`train` falls back to the eager loop
with a warning if capture fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._data import Problem
from ._direction import Direction, score_direction
from .heads import Head
from .losses import Loss
from .models import JointModel, Model
from .optim import Optimizer

__all__ = ["graph_supported", "capture_step"]


def graph_supported(model: Model, opt: Optimizer, device: torch.device) -> bool:
    """CUDA graphs need a CUDA device, static tensors (not joint training) and an update whose
    constants do not change between steps (not Adam's bias correction)."""
    return device.type == "cuda" and not isinstance(model, JointModel) and opt.name != "adam"


def capture_step(model: Model, prob: Problem, loss: Loss, head: Head, opt: Optimizer,
                 need_xbar: bool) -> tuple[Callable[[], Direction], Callable[[], None]]:
    """Capture the direction and the update; returns ``(direction, update)`` replay functions.

    The model's blocks and the optimizer state are restored after the warm-up run, so the
    captured loop starts from the current iterate.
    """
    blocks = model.blocks
    saved = [b.clone() for b in blocks]
    saved_state = [{k: v.clone() for k, v in st.items()} for st in opt._state]

    def direction() -> Direction:
        return score_direction(model.scores(prob), prob, loss, head, need_xbar=need_xbar)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    try:
        with torch.cuda.stream(side):
            for _ in range(2):
                d = direction()
                opt.step(blocks, model.neg_grads(prob, d), d.loss)
        torch.cuda.current_stream().wait_stream(side)
    finally:  # the warm-up must leave no trace
        for b, s in zip(blocks, saved, strict=True):
            b.copy_(s)
        for st, sv in zip(opt._state, saved_state, strict=True):
            for k, v in sv.items():
                st[k].copy_(v)
    g_dir: Any = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g_dir):
        static_dir = direction()
    g_upd: Any = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g_upd):
        opt.step(blocks, model.neg_grads(prob, static_dir), static_dir.loss)

    def run_direction() -> Direction:
        g_dir.replay()
        return static_dir

    def run_update() -> None:
        g_upd.replay()

    return run_direction, run_update
