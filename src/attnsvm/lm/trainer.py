"""Train the model of a :class:`PretrainConfig` and write its checkpoint series.

Deterministic: the initialization is seeded with ``torch.manual_seed(seed)``, the batches with
``numpy.random.default_rng([seed, 0])``, the run uses one torch thread and
``torch.use_deterministic_algorithms(True)`` (both restored afterwards), so the same
configuration writes the same checkpoints bit for bit on one machine.

Layout of ``out``::

    run.json          resolved configuration, seed, schedule, losses at the checkpoints,
                      versions (written last)
    step-000000/ ...  one Hugging Face model folder per scheduled step (step 0 = the init)

A run writes into a staging folder inside ``out`` and moves the step folders into place at the
end: an interrupted or failed run leaves ``out`` as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text
from ..exceptions import InvalidInputError, require
from ..reporting import provenance
from .checkpoints import save_checkpoint, schedule, step_dirname
from .config import PretrainConfig
from .model import build_model
from .optim import make_optimizers
from .tasks import make_task

__all__ = ["pretrain", "PretrainResult", "check_pretrain_out", "RUN_FILE"]

RUN_FILE = "run.json"
#: ``progress(step, steps, loss)`` after every optimizer step.
StepFn = Callable[[int, int, float], None]


@dataclass
class PretrainResult:
    """What :func:`pretrain` wrote.

    Attributes
    ----------
    out_dir : pathlib.Path
    checkpoints : list of pathlib.Path
        The step folders, in step order.
    run : dict
        The contents of ``run.json``.
    """

    out_dir: Path
    checkpoints: list[Path]
    run: dict[str, Any]


def check_pretrain_out(out: str | os.PathLike[str]) -> Path:
    """The output folder: new, empty, or the output of an earlier run (which is replaced).

    Raises
    ------
    InvalidInputError
        ``out`` is a file, or a non-empty folder without ``run.json``.
    """
    p = Path(out)
    if str(out) == "" or (p.exists() and not p.is_dir()):
        raise InvalidInputError(f"The 'out' option must be a folder. Got {str(out)!r} instead.")
    if p.is_dir() and any(p.iterdir()) and not (p / RUN_FILE).is_file():
        raise InvalidInputError(
            f"The 'out' folder '{p}' is not empty and holds no {RUN_FILE} of an earlier "
            "pretrain run; choose a new or empty folder.")
    return p


@contextlib.contextmanager
def _deterministic_torch() -> Iterator[Any]:
    import torch

    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield torch
    finally:
        torch.use_deterministic_algorithms(det)
        torch.set_num_threads(threads)


def pretrain(cfg: PretrainConfig, out: str | os.PathLike[str],
             progress: StepFn | None = None) -> PretrainResult:
    """Train from scratch and write ``len(schedule) = cfg.checkpoints + 1`` checkpoints.

    Parameters
    ----------
    cfg : PretrainConfig
    out : path-like
        Output folder (see the module docstring).
    progress : callable, optional
        Called as ``progress(step, steps, loss)`` after every step.

    Returns
    -------
    PretrainResult
    """
    out_dir = check_pretrain_out(out)
    require("safetensors", "probe")
    require("tokenizers", "probe")
    transformers: Any = require("transformers", "probe")
    transformers.utils.logging.disable_progress_bar()  # attnsvm reports its own progress
    t0 = time.perf_counter()
    task = make_task(cfg)
    steps = schedule(cfg.steps, cfg.checkpoints)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / f".pretrain-partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    meta = task.metadata(cfg)
    losses: dict[int, float | None] = {}
    try:
        with _deterministic_torch() as torch:
            torch.manual_seed(cfg.seed)
            model = build_model(cfg, task.vocab_size, task.bos_id)
            model.train()
            opts = make_optimizers(model, cfg)
            rng = np.random.default_rng([cfg.seed, 0])
            save_checkpoint(stage / step_dirname(0), model, task.tokenizer, meta, task.eval_text)
            losses[0] = None
            for step in range(1, cfg.steps + 1):
                raw = task.batch(rng, cfg.batch)  # (B, T)
                ids, labels = torch.from_numpy(raw), torch.from_numpy(task.labels(raw))
                loss = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                             labels=labels).loss
                for opt in opts:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                for opt in opts:
                    opt.step()
                value = float(loss.detach())
                if not np.isfinite(value):
                    raise InvalidInputError(
                        f"The training loss became {value} at step {step}; lower the 'lr' "
                        f"({cfg.resolved_lr():g}).")
                if step in steps:
                    save_checkpoint(stage / step_dirname(step), model, task.tokenizer, meta,
                                    task.eval_text)
                    losses[step] = value
                if progress is not None:
                    progress(step, cfg.steps, value)
        run = {"config": cfg.to_dict(), "seed": cfg.seed, "schedule": steps,
               "checkpoints": [step_dirname(s) for s in steps],
               "loss": {str(k): v for k, v in losses.items()}, "task": meta,
               "architecture": type(model).__name__, "seconds": time.perf_counter() - t0,
               "provenance": provenance(("numpy", "torch", "transformers", "tokenizers",
                                         "safetensors"))}
        for old in out_dir.glob("step-*"):
            if old.is_dir():
                shutil.rmtree(old)
        for s in steps:
            (stage / step_dirname(s)).rename(out_dir / step_dirname(s))
        atomic_write_text(out_dir / RUN_FILE, json.dumps(run, indent=1) + "\n")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return PretrainResult(out_dir, [out_dir / step_dirname(s) for s in steps], run)
