"""Training trajectories for the figures, built on :func:`attnsvm.train.train`.

:func:`trajectory` trains a batch of instances and keeps the iterate (key-query matrix, or the
prompt / head) at chosen steps by running the trainer segment by segment, each segment started
from where the previous one stopped.  For the stateless update rules (gd, ngd, polyak) this is
exactly the uninterrupted run; for mirror descent the mirror variable is rebuilt from the
iterate at each segment boundary (equal up to rounding).  The SVM targets depend on the token
choice GD ends at, so correlations are computed afterwards from the kept iterates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..instance import Instance
from ..train import train
from ..train.params import get_param

__all__ = ["Trajectory", "trajectory"]


@dataclass
class Trajectory:
    """Iterates of B runs at recorded steps.

    Attributes
    ----------
    steps : ndarray (S,)
    W : ndarray (S, B, d, d) or None
        Key-query matrix (``K Q^T`` for ``KQ``).
    p, v : ndarray (S, B, d) or None
        Prompt and head (``p``, ``vp``).
    max_prob : ndarray (S, B, n)
        Largest attention probability per sequence.
    selected : ndarray (S, B, n)
        Token of largest probability.
    loss : ndarray (S, B)
    seconds : float
    """

    steps: np.ndarray
    W: np.ndarray | None
    p: np.ndarray | None
    v: np.ndarray | None
    max_prob: np.ndarray
    selected: np.ndarray
    loss: np.ndarray
    seconds: float

    @property
    def final_selected(self) -> np.ndarray:
        """(B, n) token choice at the last step."""
        return self.selected[-1]


def _blocks(res: Any, param: str) -> dict[str, np.ndarray]:
    if param in ("W", "vW"):
        return {"W": res.W}
    if param == "KQ":
        return {"K": res.K, "Q": res.Q}
    return {"p": res.p}


def trajectory(instances: Sequence[Instance], record_steps: Sequence[int] | np.ndarray, *,
               param: str = "W", optimizer: str = "ngd", lr: float = 0.1,
               seeds: Sequence[int] | int = 0,
               **train_kw: Any) -> Trajectory:
    """Train ``instances`` (one shape) and keep the iterates at ``record_steps``.

    Parameters
    ----------
    instances : sequence of Instance
    record_steps : sequence of int
        Steps to keep (0 = the random start); the last one is the number of steps.
    param, optimizer, lr : as in :func:`attnsvm.train.train`.
    seeds : int or sequence of int
        Per-instance seeds of the random start.
    **train_kw
        Passed to :func:`attnsvm.train.train` (``loss``, ``head``, ``kq_eps``, ``init_scale``,
        ``init``, ``md_p``, ...).
    """
    import time

    # torch (heavy): imported when a figure trains, not when figures are listed

    t0 = time.perf_counter()
    steps = np.unique(np.asarray(record_steps, dtype=np.int64))
    insts = list(instances)
    init = train_kw.pop("init", "normal")
    Ws: list[Any] = []
    ps: list[Any] = []
    vs: list[Any] = []
    probs, sels, losses = [], [], []
    done = 0
    for s in steps:
        res = train(insts, param=param, optimizer=optimizer, lr=lr, steps=int(s - done),
                    seed=seeds, init=init, **train_kw)
        done = int(s)
        init = _blocks(res, param)
        if get_param(param).joint:  # the head restarts from the instance's v: carry it over
            vv = np.asarray(res.v)
            insts = [dataclasses.replace(inst, v=vv[b]) for b, inst in enumerate(insts)]
        Ws.append(None if res.W is None else res.W.copy())
        ps.append(None if res.p is None else res.p.copy())
        vs.append(None if res.v is None else res.v.copy())
        probs.append(res.max_prob.copy())
        sels.append(res.selected.copy())
        losses.append(np.asarray(res.loss).copy())
    return Trajectory(
        steps=steps, W=None if Ws[0] is None else np.stack(Ws),
        p=None if ps[0] is None else np.stack(ps), v=None if vs[0] is None else np.stack(vs),
        max_prob=np.stack(probs), selected=np.stack(sels), loss=np.stack(losses),
        seconds=time.perf_counter() - t0)
