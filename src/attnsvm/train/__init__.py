"""PyTorch models and trainers of one-layer softmax attention with exact update directions.

Torch is imported only inside this sub-package.  The main entry point is :func:`train`::

    from attnsvm.instance import random_instance
    from attnsvm.train import train
    res = train(random_instance(6, 8, 10, seed=0), param="W", optimizer="ngd", steps=2000)
    res.W, res.selected, res.max_prob

Batches of instances of one shape train together (``train([inst0, inst1, ...])``) with
per-instance seeds, with the same results as one by one.
"""

from __future__ import annotations

from ._data import Problem
from ._direction import Direction, score_direction
from .api import PARAMS, PathResult, TrainResult, instance_seeds, regularization_path, train
from .heads import Head, LambdaHead, LinearHead, ReLUHead
from .losses import LOSSES, Loss
from .models import JointModel, KQModel, Model, PromptModel, WModel
from .optim import OPTIMIZERS, Optimizer
from .recorder import Recorder, batched_corr
from .reference import autograd_loss, reference_train

__all__ = [
    "train", "TrainResult", "regularization_path", "PathResult", "instance_seeds", "PARAMS",
    "OPTIMIZERS", "LOSSES", "Optimizer", "Loss", "Head", "LinearHead", "ReLUHead", "LambdaHead",
    "Model", "WModel", "KQModel", "PromptModel", "JointModel", "Problem", "Direction",
    "score_direction", "Recorder", "batched_corr", "autograd_loss", "reference_train",
]
