"""Training one-layer attention on next-token prediction, batched over datasets, exactly.

Model (THEORY.md): ``s_i = softmax(X_i W x_iT)`` with the last token as the query, ``W`` or
``W = K Q^T``.  Losses:

* ``"log"`` (global experiments): ``l_i = -log sum_{t: x_it = e_y} s_it``;
* ``"ce"`` and ``"sq"`` (local experiments): logits ``E X_i^T s_i``, cross-entropy
  ``-log p_y`` or the official ``lsq2`` loss ``(1 - p_y)^2`` with ``p = softmax(E X_i^T s_i)``.

The update direction is exact after the softmax saturates, as in :mod:`attnsvm.train`: for the
log-loss, with ``u_i = lse_{t not label} a_it - lse_{t label} a_it``,

    -dL/da_it = (1/n) sigmoid(u_i) * ( q_it   on label positions,  q_it = s_it / S_iy,
                                       -s_it / sigmoid(u_i) elsewhere ),

every factor computed in log space (``log sigmoid(u_i)`` is the log of the mass off the label),
so the direction keeps every digit when ``1 - S_iy`` underflows; the local losses go through
:func:`attnsvm.train.score_direction` with their effective head.  Parameters, models and
optimizers are those of :mod:`attnsvm.train` (``WModel``, ``KQModel``, ``Optimizer``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .._validation import check_choice, check_positive
from ..exceptions import InvalidInputError
from ..train._data import Problem, resolve_device
from ..train._direction import Direction, score_direction
from ..train.heads import Head
from ..train.losses import Loss
from ..train.models import KQModel, Model, WModel
from ..train.optim import Optimizer
from .dataset import NTPDataset

__all__ = ["NTP_LOSSES", "NTPRun", "train_ntp", "log_direction"]

NTP_LOSSES = ("log", "ce", "sq")


def log_direction(a: Tensor, label: Tensor, masks: tuple[Tensor, Tensor] | None = None
                  ) -> Direction:
    """Exact ``-dL/da`` of the log-loss up to a positive factor per instance.

    Parameters
    ----------
    a : Tensor, shape (B, n, T)
        Scores.
    label : Tensor of bool, shape (B, n, T)
        Positions holding the label token.
    masks : (Tensor, Tensor), optional
        ``0 / -inf`` masks of the label and of the other positions (built when absent).

    Returns
    -------
    Direction
        ``C`` (B, n, T) and ``logscale`` (B,) with ``-dL/da = exp(logscale) C``; ``loss`` (B,).
        With ``m_i = log(1 - S_iy) = log sigmoid(u_i)`` and ``M = max_i m_i``:
        ``C = exp(a - lse_label + m_i - M)`` on label positions and
        ``-exp(a - lse_all - M)`` elsewhere (both at most 1); ``logw`` holds ``m_i``.
    """
    n = a.shape[1]
    lmask, omask = _masks(label, a.dtype) if masks is None else masks
    al, ao = a + lmask, a + omask  # -inf off the label / on the label
    lse_l = torch.logsumexp(al, -1)  # (B, n)
    lse_o = torch.logsumexp(ao, -1)  # -inf when every position holds the label
    u = lse_o - lse_l
    m = F.logsigmoid(u)  # log(1 - S_y)
    M = torch.clamp(m.amax(-1), min=-1e300)  # finite even when no sequence has other tokens
    lse_all = torch.logaddexp(lse_l, lse_o)
    C = torch.exp(al + (m - M[:, None] - lse_l)[..., None])
    C -= torch.exp(ao - (lse_all + M[:, None])[..., None])
    mx, sel = a.max(-1)
    return Direction(C=C, logscale=M - math.log(n), loss=F.softplus(u).mean(-1), logw=m,
                     selected=sel, max_logprob=mx - lse_all)


def _masks(label: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    zero = torch.zeros((), dtype=dtype, device=label.device)
    ninf = torch.full((), -math.inf, dtype=dtype, device=label.device)
    return torch.where(label, zero, ninf), torch.where(label, ninf, zero)


class _LogitHead(Head):
    """Effective head ``f_i = -l(E x_bar_i; y_i)`` of the local losses (correlation loss -u)."""

    def __init__(self, E: Tensor, labels: Tensor, kind: str):
        self.E, self.labels, self.kind = E, labels, kind  # (B, K, d), (B, n)

    def _p(self, xbar: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits = torch.einsum("bkd,bnd->bnk", self.E, xbar)
        logp = torch.log_softmax(logits, -1)
        logpy = logp.gather(-1, self.labels[..., None])[..., 0]
        ey = torch.gather(self.E, 1, self.labels[..., None].expand(-1, -1, self.E.shape[-1]))
        return logp, logpy, ey

    def value(self, xbar: Tensor, v: Tensor) -> Tensor:
        _, logpy, _ = self._p(xbar)
        if self.kind == "ce":
            return logpy
        return -(-torch.expm1(logpy)) ** 2

    def grad(self, xbar: Tensor, v: Tensor) -> Tensor:
        logp, logpy, ey = self._p(xbar)
        g = ey - torch.einsum("bnk,bkd->bnd", torch.exp(logp), self.E)  # grad log p_y
        if self.kind == "ce":
            return g
        py = torch.exp(logpy)
        return (2.0 * (1.0 - py) * py)[..., None] * g


@dataclass
class NTPRun:
    """Outcome of :func:`train_ntp` (leading batch axis B over datasets).

    Attributes
    ----------
    W : ndarray, shape (B, d, d)
        Final key-query matrix (``K Q^T`` for ``KQ``).
    K, Q : ndarray, shape (B, d, m), or None
    steps : ndarray of int, shape (S,)
        Recorded steps (0 = the start).
    W_history : ndarray, shape (S, B, d, d)
        ``W`` at the recorded steps.
    loss_history : ndarray, shape (S, B)
    probs : ndarray, shape (B, n, T)
        Final attention probabilities.
    seconds : float
    """

    W: np.ndarray
    K: np.ndarray | None
    Q: np.ndarray | None
    steps: np.ndarray
    W_history: np.ndarray
    loss_history: np.ndarray
    probs: np.ndarray
    seconds: float


def train_ntp(datasets: NTPDataset | Sequence[NTPDataset], *, param: str = "W",
              loss: str = "log", optimizer: str = "ngd", lr: float = 0.01, steps: int = 4000,
              seed: int | Sequence[int] = 0, init_scale: float = 0.01,
              record_steps: Sequence[int] | None = None,
              callback: Callable[[int], None] | None = None, device: Any = "cpu") -> NTPRun:
    """Train ``W`` (or ``K, Q``) on one or several datasets of one shape, float64.

    Parameters
    ----------
    datasets : NTPDataset or sequence of NTPDataset
        Same ``(n, T, K, d)`` for all.
    param : {"W", "KQ"}
    loss : {"log", "ce", "sq"}
    optimizer : {"gd", "ngd", "polyak", "md", "adam"}
        Normalized GD (``ngd``, per block) is the papers' protocol.
    lr : float
    steps : int
    seed : int or sequence of int
        Start: entries ``init_scale * N(0, 1)`` drawn from ``seed + b`` (or the b-th seed).
    init_scale : float
    record_steps : sequence of int, optional
        Steps at which ``W`` and the loss are recorded (default: 0 and the last).
    callback : callable, optional
        Called with the number of finished steps every 100 steps and at the end (progress).
    device : str or torch.device
        ``"cpu"`` (default), ``"cuda"`` or ``"auto"`` (CUDA when available).

    Returns
    -------
    NTPRun
    """
    t0 = time.perf_counter()
    items = [datasets] if isinstance(datasets, NTPDataset) else list(datasets)
    if not items or not all(isinstance(x, NTPDataset) for x in items):
        raise InvalidInputError("The 'datasets' argument must be an NTPDataset or a non-empty "
                                "sequence of them.")
    shape = (items[0].n, items[0].T, items[0].K, items[0].d)
    for j, ds in enumerate(items):
        if (ds.n, ds.T, ds.K, ds.d) != shape:
            raise InvalidInputError(
                f"The datasets of a batch must share (n, T, K, d) = {shape}. Dataset {j} has "
                f"{(ds.n, ds.T, ds.K, ds.d)}.")
    check_choice("param", param, ("W", "KQ"))
    check_choice("loss", loss, NTP_LOSSES)
    check_positive("steps", steps, integer=True, allow_zero=True)
    check_positive("init_scale", init_scale, allow_zero=True)
    opt = Optimizer(optimizer, lr)
    B, n, d = len(items), shape[0], shape[3]
    seeds = ([int(seed) + b for b in range(B)] if isinstance(seed, (int, np.integer))
             else [int(s) for s in seed])
    if len(seeds) != B:
        raise InvalidInputError(f"The 'seed' list must hold {B} seeds. Got {len(seeds)}.")
    rec = sorted({0, int(steps)} if record_steps is None
                 else {int(s) for s in record_steps if 0 <= int(s) <= steps})
    dt = torch.float64
    dev = resolve_device(device)

    def tensor(arr: np.ndarray, dtype: torch.dtype | None = dt) -> Tensor:
        return torch.as_tensor(arr, dtype=dtype, device=dev)

    X = tensor(np.stack([ds.X for ds in items]))  # (B, n, T, d)
    prob = Problem.from_tensors(X, X[:, :, -1].contiguous(), tensor(np.ones((B, n))),
                                tensor(np.zeros((B, d))))
    label = tensor(np.stack([ds.label_mask for ds in items]), None)
    masks = _masks(label, dt)
    head = None
    if loss != "log":
        head = _LogitHead(tensor(np.stack([ds.E for ds in items])),
                          tensor(np.stack([ds.labels for ds in items]), None), loss)
    corr = Loss("correlation")
    rngs = [np.random.default_rng(s) for s in seeds]
    model: Model
    if param == "W":
        model = WModel(tensor(np.stack([init_scale * r.standard_normal((d, d)) for r in rngs])))
    else:
        KQ = [init_scale * r.standard_normal((2, d, d)) for r in rngs]
        model = KQModel(tensor(np.stack([x[0] for x in KQ])), tensor(np.stack([x[1] for x in KQ])))
    W_hist, L_hist, rec_set = [], [], set(rec)
    with torch.no_grad():
        for step in range(int(steps) + 1):
            a = model.scores(prob)
            dirn = (log_direction(a, label, masks) if head is None
                    else score_direction(a, prob, corr, head, need_xbar=True))
            if step in rec_set:
                kq = model.key_query()
                assert kq is not None
                W_hist.append(kq.cpu().numpy().copy())
                L_hist.append(dirn.loss.cpu().numpy().copy())
            if callback is not None and (step % 100 == 0 or step == steps):
                callback(step)
            if step == steps:
                break
            opt.step(model.blocks, model.neg_grads(prob, dirn), dirn.loss)
        probs = torch.softmax(a, -1).cpu().numpy()
    kq = model.key_query()
    assert kq is not None
    return NTPRun(W=kq.cpu().numpy().copy(),
                  K=model.K.cpu().numpy().copy() if isinstance(model, KQModel) else None,
                  Q=model.Q.cpu().numpy().copy() if isinstance(model, KQModel) else None,
                  steps=np.asarray(rec, dtype=np.int64), W_history=np.stack(W_hist),
                  loss_history=np.stack(L_hist), probs=probs,
                  seconds=time.perf_counter() - t0)
