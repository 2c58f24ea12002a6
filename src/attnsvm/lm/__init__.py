"""Train small decoder-only transformers from scratch and follow their heads over training.

``attnsvm pretrain`` (:func:`pretrain`) writes a checkpoint series of Hugging Face model folders
(LLaMA with rotary positions, or GPT-2 with learned positions) trained on the induction task or
the shipped corpus; ``attnsvm track`` (:func:`track`) probes every checkpoint of a series.

>>> from attnsvm.lm import PretrainConfig, pretrain              # doctest: +SKIP
>>> res = pretrain(PretrainConfig(steps=200, checkpoints=4), "run")  # doctest: +SKIP
>>> [p.name for p in res.checkpoints]                            # doctest: +SKIP
['step-000000', 'step-000001', 'step-000006', 'step-000034', 'step-000200']
"""

from __future__ import annotations

from .checkpoints import Checkpoint, architecture, find_checkpoints, schedule, step_dirname
from .config import DEFAULT_LR, OPTIMIZERS, POSITIONS, TASKS, PretrainConfig
from .tasks import Task, induction_targets, induction_tokenizer, make_task
from .track import SERIES_FIELDS, TrackOptions, TrackResult, jaccard, support_set, track
from .trainer import PretrainResult, check_pretrain_out, pretrain

__all__ = [
    "PretrainConfig",
    "TASKS",
    "POSITIONS",
    "OPTIMIZERS",
    "DEFAULT_LR",
    "pretrain",
    "PretrainResult",
    "check_pretrain_out",
    "Task",
    "make_task",
    "induction_targets",
    "induction_tokenizer",
    "Checkpoint",
    "find_checkpoints",
    "architecture",
    "schedule",
    "step_dirname",
    "track",
    "TrackOptions",
    "TrackResult",
    "SERIES_FIELDS",
    "support_set",
    "jaccard",
]
