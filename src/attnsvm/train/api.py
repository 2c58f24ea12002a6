"""High-level training entry points: :func:`train` and :func:`regularization_path`."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._validation import as_float_array, check_choice, check_positive
from ..exceptions import InvalidInputError, InvalidParameterError
from ..instance import Instance
from ._data import Problem, as_instances, resolve_device
from ._direction import Direction, score_direction
from ._graph import capture_step, graph_supported
from .heads import Head, get_head
from .losses import Loss, get_loss
from .models import JointModel, KQModel, Model, PromptModel, WModel
from .optim import Optimizer, make_optimizer
from .recorder import Recorder, as_targets

__all__ = ["PARAMS", "TrainResult", "train", "instance_seeds", "regularization_path",
           "PathResult"]

#: Parametrizations: key-query matrix, its factors, prompt, and joint head + (W or p).
PARAMS = ("W", "KQ", "p", "vW", "vp")

#: Default standard deviation of the random start (entries i.i.d. N(0, init_scale^2)).
DEFAULT_INIT_SCALE = 0.01


def instance_seeds(seed: int | Sequence[int], B: int) -> list[int]:
    """Per-instance seeds: ``seed + b`` for an int, else the given list (length B)."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return [int(seed) + b for b in range(B)]
    seeds = [int(s) for s in seed]  # type: ignore[union-attr]
    if len(seeds) != B:
        raise InvalidParameterError(
            f"The 'seed' list must have one seed per instance ({B}). Got {len(seeds)} instead.")
    return seeds


def _init_blocks(param: str, init: Any, init_scale: float, seeds: list[int], d: int, m: int
                 ) -> dict[str, np.ndarray]:
    """Initial values (B, ...) as float64 arrays; random ones drawn per instance seed."""
    table: dict[str, dict[str, tuple[int, ...]]] = {
        "W": {"W": (d, d)}, "KQ": {"K": (d, m), "Q": (d, m)}, "p": {"p": (d,)},
        "vW": {"W": (d, d)}, "vp": {"p": (d,)}}
    shapes = table[param]
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


@dataclass
class TrainResult:
    """Outcome of :func:`train`; arrays carry a leading batch axis unless a single
    :class:`~attnsvm.instance.Instance` was given.

    Attributes
    ----------
    W : ndarray (B, d, d) or None
        Final key-query matrix (``K Q^T`` for ``KQ``; None for ``p``/``vp``).
    K, Q : ndarray (B, d, m) or None
    p, v : ndarray (B, d) or None
        Prompt (``p``, ``vp``) and trained head (``vW``, ``vp``).
    selected : ndarray (B, n) int
        ``argmax_t`` of the final probabilities.
    max_prob : ndarray (B, n)
        Largest final probability per sequence.
    loss : ndarray (B,)
        Final loss.
    history : pandas.DataFrame or None
        :meth:`Recorder.frame` (one row per instance and recorded step) when recording.
    recorder : Recorder or None
        The raw recorded tensors; :attr:`sequences` builds the per-sequence frame.
    loss_history : ndarray (B, S) or None, recorded losses at ``record_steps``.
    record_steps : ndarray (S,) or None
    seconds : float
    """

    W: np.ndarray | None
    K: np.ndarray | None
    Q: np.ndarray | None
    p: np.ndarray | None
    v: np.ndarray | None
    selected: np.ndarray
    max_prob: np.ndarray
    loss: np.ndarray
    param: str
    optimizer: str
    lr: float
    steps: int
    seeds: list[int]
    seconds: float
    history: Any = None
    recorder: Recorder | None = None
    loss_history: np.ndarray | None = None
    record_steps: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sequences(self) -> Any:
        """One row per (instance, step, sequence): ``max_prob``, ``selected`` (built on demand;
        None without recording)."""
        return None if self.recorder is None else self.recorder.sequence_frame()


def _build_model(param: str, blocks: dict[str, torch.Tensor], prob: Problem, kq_eps: float,
                 prompt_W: Any, device: torch.device, dtype: torch.dtype) -> Model:
    B, n, T, d = prob.shape
    base: Model
    if param in ("W", "vW"):
        base = WModel(blocks["W"])
    elif param == "KQ":
        base = KQModel(blocks["K"], blocks["Q"], eps=kq_eps)
    else:
        if prompt_W is None:
            Wf = torch.eye(d, dtype=dtype, device=device).expand(B, d, d)
        else:
            arr = np.asarray(prompt_W, dtype=np.float64)
            if arr.shape == (d, d):
                arr = np.broadcast_to(arr, (B, d, d))
            arr = as_float_array("prompt_W", arr, 3, (B, d, d)).copy()
            Wf = torch.as_tensor(arr, dtype=dtype, device=device)
        base = PromptModel(blocks["p"], Wf, prob)
    if param in ("vW", "vp"):
        return JointModel(base, prob.v.clone())
    return base


def train(data: Instance | Sequence[Instance], param: str = "W", optimizer: str | Optimizer = "ngd",
          lr: float = 0.1, steps: int = 2000, seed: int | Sequence[int] = 0, *,
          loss: str | Loss = "logistic", head: str | Head | None = None, init: Any = "normal",
          init_scale: float = DEFAULT_INIT_SCALE, m: int | None = None,
          record_every: int | None = None, record_steps: Any = None,
          targets: Mapping[str, Any] | None = None, kq_eps: float = 0.0,
          prompt_W: Any = None, md_p: float = 3.0, polyak_max_step: float = 1e3,
          device: Any = "cpu", dtype: torch.dtype = torch.float64,
          cuda_graph: bool = False) -> TrainResult:
    """Train one-layer softmax attention on B instances at once, with exact update directions.

    Parameters
    ----------
    data : Instance or sequence of Instance
        Instances of one shape (n, T, d) with ``Y`` and ``v``; cross-attention uses ``Z``,
        self-attention the query token of each instance.
    param : {"W", "KQ", "p", "vW", "vp"}
        Key-query matrix ``W`` (d, d); factors ``K, Q`` (d, m); prompt ``p`` (d,) with fixed key
        matrix ``prompt_W`` (identity by default); or joint training of the linear head ``v``
        (started at the instance's ``v``) with ``W`` or ``p``.
    optimizer : {"gd", "ngd", "polyak", "md", "adam"} or Optimizer
        See :mod:`attnsvm.train.optim`; ``ngd`` is the papers' protocol.
    lr : float
    steps : int
    seed : int or sequence of int
        Per-instance seeds of the random start (``seed + b`` for instance b when an int), so a
        batch gives the same result as its instances trained one by one.
    loss : {"logistic", "exponential", "correlation"}
    head : None, "linear", or Head
        Output head (:class:`ReLUHead`, :class:`LambdaHead`); joint training needs "linear".
    init : {"normal", "zero"}, array or mapping
        ``"normal"`` (default): entries i.i.d. ``N(0, init_scale^2)`` from the instance's seed
        (W (d, d) = 0.01 N(0,1) by default; ``K``, ``Q`` likewise).  An array gives the start
        of the single block; a mapping ``{"K": ..., "Q": ...}`` all blocks; shapes (...) or
        (B, ...).  ``"zero"`` for ``KQ`` is a stationary point.
    init_scale : float
    m : int, optional
        Width of ``K, Q`` (default d).
    record_every : int, optional
        Record every this many steps (and the last).  ``record_steps`` gives explicit steps.
    targets : mapping name -> array (d, d) or (B, d, d), optional
        Matrices whose correlation with the key-query matrix is recorded (``corr_<name>``).
    kq_eps : float
        ``eps`` of the official ``(K, Q)`` protocol (``eps (||K||^2+||Q||^2)`` added to the loss);
        0 (default) follows the exact gradient.
    md_p, polyak_max_step : optimizer settings.
    device : str or torch.device
        ``"cpu"`` (default), ``"cuda"``, or ``"auto"``.
    dtype : torch.dtype
        float64 by default.
    cuda_graph : bool
        On CUDA, replay the step as CUDA graphs (not for joint training or Adam); falls back to
        the eager loop with a warning if capture fails.

    Returns
    -------
    TrainResult
    """
    t0 = time.perf_counter()
    instances, single = as_instances(data)
    check_choice("param", param, PARAMS)
    check_positive("steps", steps, integer=True, allow_zero=True)
    check_positive("init_scale", init_scale, allow_zero=True)
    check_positive("kq_eps", kq_eps, allow_zero=True)
    hd = get_head(head)
    if param in ("vW", "vp") and not hd.linear:
        raise InvalidParameterError("Joint training ('vW', 'vp') needs the linear head.")
    ls = get_loss(loss)
    opt = make_optimizer(optimizer, lr, md_p=md_p, polyak_max_step=polyak_max_step)
    dev = resolve_device(device)
    B = len(instances)
    n, T, d = instances[0].X.shape
    mm = d if m is None else int(check_positive("m", m, integer=True))
    seeds = instance_seeds(seed, B)
    prob = Problem.from_instances(instances, dev, dtype)
    hd = hd.to(dev, dtype)
    blocks = {k: torch.as_tensor(a, dtype=dtype, device=dev).clone()
              for k, a in _init_blocks(param, init, init_scale, seeds, d, mm).items()}
    model = _build_model(param, blocks, prob, kq_eps, prompt_W, dev, dtype)

    rec: Recorder | None = None
    if record_steps is None and record_every is not None:
        check_positive("record_every", record_every, integer=True)
        record_steps = np.unique(np.r_[np.arange(0, steps + 1, record_every), steps])
    if record_steps is not None:
        rs = np.asarray(record_steps, dtype=np.int64)
        if rs.size and (rs.min() < 0 or rs.max() > steps):
            raise InvalidParameterError(
                f"The 'record_steps' must lie in [0, {steps}]. Got {rs.min()}..{rs.max()}.")
        tg = as_targets(targets, B, (d, d), dev, dtype)
        rec = Recorder(rs, B, n, tg, dev, dtype)
    elif targets:
        raise InvalidParameterError("The 'targets' need 'record_every' or 'record_steps'.")

    need_xbar = model.need_xbar

    def direction() -> Direction:
        return score_direction(model.scores(prob), prob, ls, hd, need_xbar=need_xbar)

    def update(dirn: Direction) -> None:
        opt.step(model.blocks, model.neg_grads(prob, dirn), dirn.loss)
        model.after_step(prob)

    with torch.inference_mode():
        opt.init(model.blocks)
        if cuda_graph and steps > 0 and graph_supported(model, opt, dev):
            try:
                g_dir, g_upd = capture_step(model, prob, ls, hd, opt, need_xbar)
                direction, update = g_dir, lambda _d: g_upd()  # type: ignore[assignment]
            except RuntimeError as exc:  # pragma: no cover - GPU only
                warnings.warn(f"CUDA graph capture failed ({exc}); running eagerly.",
                              RuntimeWarning, stacklevel=2)
        for k in range(steps + 1):
            dirn = direction()
            if rec is not None and rec.wants(k):
                rec.record(k, dirn.loss, model.key_query(), dirn.max_logprob, dirn.selected)
            if k == steps:
                break
            update(dirn)

    def out(t: torch.Tensor | None) -> np.ndarray | None:
        if t is None:
            return None
        a = t.detach().cpu().numpy().copy()
        return a[0] if single else a

    KQ = model.key_query()
    res = TrainResult(
        W=out(KQ), K=out(blocks.get("K")), Q=out(blocks.get("Q")), p=out(blocks.get("p")),
        v=out(prob.v) if param in ("vW", "vp") else None,
        selected=out(dirn.selected), max_prob=out(torch.exp(dirn.max_logprob)),  # type: ignore
        loss=out(dirn.loss), param=param, optimizer=opt.name, lr=opt.lr,  # type: ignore
        steps=int(steps), seeds=seeds, seconds=0.0)
    if rec is not None:
        res.history = rec.frame()
        res.recorder = rec
        lh = rec.loss.cpu().numpy().T
        res.loss_history = lh[0] if single else lh
        res.record_steps = rec.steps
    res.seconds = time.perf_counter() - t0
    return res


@dataclass
class PathResult:
    """Outcome of :func:`regularization_path`.

    Attributes
    ----------
    radii : ndarray (R,)
    W : ndarray (R, B, d, d)
        ``W_R`` (``K_R Q_R^T`` for ``KQ``), batch axis dropped for a single instance.
    loss : ndarray (R, B)
    selected : ndarray (R, B, n)
    """

    radii: np.ndarray
    W: np.ndarray
    loss: np.ndarray
    selected: np.ndarray


def regularization_path(data: Instance | Sequence[Instance], radii: Sequence[float],
                        param: str = "W", steps_per_radius: int = 500, lr: float = 0.1,
                        seed: int | Sequence[int] = 0, *, loss: str | Loss = "logistic",
                        init_scale: float = DEFAULT_INIT_SCALE, m: int | None = None,
                        device: Any = "cpu", dtype: torch.dtype = torch.float64) -> PathResult:
    """``W_R = argmin_{||W||_F <= R} L(W)`` for growing ``R`` (warm-started projected NGD).

    For ``KQ`` the constraint is ``||K||_F^2 + ||Q||_F^2 <= 2R`` and the recorded matrix
    ``K Q^T``.  At radius ``R`` step k moves ``lr * R / sqrt(k+1)`` along the exact normalized
    negative gradient (per factor for ``KQ``), then projects back onto the ball.  Theory:
    ``W_R / R -> W^mm / ||W^mm||`` (nuclear-norm solution for ``KQ``).

    Parameters
    ----------
    data : Instance or sequence of Instance
    radii : sequence of float, increasing
    param : {"W", "KQ"}
    steps_per_radius, lr, seed, loss, init_scale, m, device, dtype : as in :func:`train`.

    Returns
    -------
    PathResult
    """
    instances, single = as_instances(data)
    check_choice("param", param, ("W", "KQ"))
    check_positive("steps_per_radius", steps_per_radius, integer=True)
    check_positive("lr", lr)
    R = np.asarray(radii, dtype=np.float64)
    if R.ndim != 1 or R.size == 0 or not np.all(np.isfinite(R)) or np.any(R <= 0):
        raise InvalidInputError("The 'radii' must be a non-empty list of finite numbers > 0.")
    ls = get_loss(loss)
    dev = resolve_device(device)
    B = len(instances)
    n, T, d = instances[0].X.shape
    mm = d if m is None else int(check_positive("m", m, integer=True))
    prob = Problem.from_instances(instances, dev, dtype)
    blocks = {k: torch.as_tensor(a, dtype=dtype, device=dev).clone()
              for k, a in _init_blocks(param, "normal", init_scale, instance_seeds(seed, B),
                                       d, mm).items()}
    model = _build_model(param, blocks, prob, 0.0, None, dev, dtype)
    hd = get_head(None)
    Ws, losses, sels = [], [], []
    with torch.inference_mode():
        for r in R:
            cap = r * r if param == "W" else 2.0 * r  # bound on the squared norm
            for k in range(steps_per_radius):
                dirn = score_direction(model.scores(prob), prob, ls, hd)
                step = lr * r / np.sqrt(k + 1.0)
                for P, (G, _) in zip(model.blocks, model.neg_grads(prob, dirn), strict=True):
                    nrm = G.reshape(B, -1).norm(dim=1).reshape((-1,) + (1,) * (G.ndim - 1))
                    P.add_(step * G / torch.where(nrm > 0, nrm, 1.0))
                sq = sum(P.reshape(B, -1).pow(2).sum(1) for P in model.blocks)
                scale = torch.sqrt(torch.clamp(cap / sq, max=1.0))  # type: ignore[operator]
                for P in model.blocks:
                    P.mul_(scale.reshape((-1,) + (1,) * (P.ndim - 1)))
            dirn = score_direction(model.scores(prob), prob, ls, hd)
            KQm = model.key_query()
            assert KQm is not None
            Ws.append(KQm.cpu().numpy().copy())
            losses.append(dirn.loss.cpu().numpy())
            sels.append(dirn.selected.cpu().numpy())
    W = np.stack(Ws)
    L = np.stack(losses)
    S = np.stack(sels)
    if single:
        W, L, S = W[:, 0], L[:, 0], S[:, 0]
    return PathResult(radii=R, W=W, loss=L, selected=S)
