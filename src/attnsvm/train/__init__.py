"""PyTorch models and trainers of one-layer softmax attention with exact update directions.

Torch is imported only inside this sub-package.  The main entry point is :func:`train`::

    from attnsvm.instance import random_instance
    from attnsvm.train import train
    res = train(random_instance(6, 8, 10, seed=0), param="W", optimizer="ngd", steps=2000)
    res.W, res.selected, res.max_prob

Settings can also be gathered in a :class:`TrainConfig` (``train(inst, cfg, steps=500)``).
Three engines give the same iterates up to rounding: batched torch ops (every feature), NumPy
(CPU, float64; chosen automatically for a single instance) and a fused Triton kernel (CUDA,
``backend="triton"``; chosen automatically on CUDA); see :class:`TrainConfig`.

Batches of instances of one shape train together (``train([inst0, inst1, ...])``) with
per-instance seeds, with the same results as one by one.
"""

from __future__ import annotations

from ._data import Problem
from ._direction import Direction, score_direction
from .api import TrainResult, train
from .compare import compare_with_svms, matrix_corr
from .config import BACKENDS, TrainConfig, instance_seeds
from .heads import Head, LambdaHead, LinearHead, ReLUHead
from .losses import LOSSES, Loss
from .models import JointModel, KQModel, Model, PromptModel, WModel, build_model
from .optim import OPTIMIZERS, Optimizer
from .params import PARAMETRIZATIONS, PARAMS, ParamSpec
from .path import PathResult, regularization_path
from .recorder import Recorder, batched_corr
from .reference import autograd_loss, reference_train

__all__ = [
    "train", "TrainConfig", "TrainResult", "compare_with_svms", "matrix_corr", "BACKENDS",
    "PARAMETRIZATIONS", "ParamSpec",
    "build_model", "regularization_path", "PathResult", "instance_seeds", "PARAMS",
    "OPTIMIZERS", "LOSSES", "Optimizer", "Loss", "Head", "LinearHead", "ReLUHead", "LambdaHead",
    "Model", "WModel", "KQModel", "PromptModel", "JointModel", "Problem", "Direction",
    "score_direction", "Recorder", "batched_corr", "autograd_loss", "reference_train",
]
