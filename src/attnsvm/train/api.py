"""The trainer :func:`train`: B instances at once, exact update directions, three engines.

Settings live in :class:`~attnsvm.train.config.TrainConfig`; parametrizations in
:mod:`attnsvm.train.params`; the regularization path in :mod:`attnsvm.train.path`.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._validation import check_positive
from ..exceptions import InvalidParameterError
from ..instance import Instance
from ._batches import make_schedule
from ._data import Problem, as_instances, resolve_device
from ._engines import FusedEngine, NumpyEngine, TorchEngine, choose_backend
from .config import (
    DEFAULT_INIT_SCALE,
    TrainConfig,
    init_blocks,
    instance_seeds,
    resolve_threads,
)
from .heads import get_head
from .losses import get_loss
from .models import build_model
from .optim import make_optimizer
from .params import PARAMS, get_param
from .path import PathResult, regularization_path
from .recorder import Recorder, as_targets

__all__ = ["PARAMS", "TrainConfig", "TrainResult", "train", "instance_seeds",
           "regularization_path", "PathResult", "DEFAULT_INIT_SCALE"]

#: Memory the recorder may preallocate (bytes); larger requests are refused up front.
MAX_RECORD_BYTES = 4 * 2**30


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
        :meth:`Recorder.frame` (one row per instance and recorded step) when recording; built
        on first access (so that pandas is imported only when needed).
    recorder : Recorder or None
        The raw recorded tensors; :attr:`sequences` builds the per-sequence frame.
    loss_history : ndarray (B, S) or None, recorded losses at ``record_steps``.
    record_steps : ndarray (S,) or None
    seconds : float
    backend : str
        The engine that ran: "torch", "numpy" or "triton".
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
    recorder: Recorder | None = None
    loss_history: np.ndarray | None = None
    record_steps: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    backend: str = "torch"

    @property
    def history(self) -> Any:
        """One row per (instance, recorded step), built on first access (None without
        recording)."""
        if self.recorder is None:
            return None
        if "history" not in self.extra:
            self.extra["history"] = self.recorder.frame()
        return self.extra["history"]

    @property
    def sequences(self) -> Any:
        """One row per (instance, step, sequence): ``max_prob``, ``selected`` (built on demand;
        None without recording)."""
        return None if self.recorder is None else self.recorder.sequence_frame()


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` torch threads inside the block, restore the previous count after."""
    old = torch.get_num_threads()
    if n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != old:
            torch.set_num_threads(old)


def _segments(steps: int, record: np.ndarray | None, progress: bool) -> list[int]:
    """Step counts at which the engine stops (records, progress reports, the end)."""
    stops = {steps}
    if record is not None:
        stops.update(int(s) for s in record)
    if progress and steps > 0:
        chunk = max(1, -(-steps // 200))
        stops.update(range(chunk, steps, chunk))
    return sorted(stops)


def _check_record_size(S: int, B: int, n: int, targets: Any) -> None:
    """Refuse recordings whose preallocated arrays would exceed :data:`MAX_RECORD_BYTES`."""
    need = S * B * (3 * n + 3 + len(targets or {})) * 8
    if need > MAX_RECORD_BYTES:
        raise InvalidParameterError(
            f"Recording {S} steps of {B} instances needs {need / 2**30:.1f} GiB; "
            f"record fewer steps (at most {MAX_RECORD_BYTES / 2**30:.0f} GiB).")


def train(data: Instance | Sequence[Instance], config: TrainConfig | None = None,
          **settings: Any) -> TrainResult:
    """Train one-layer softmax attention on B instances at once, with exact update directions.

    Parameters
    ----------
    data : Instance or sequence of Instance
        Instances of one shape (n, T, d) with ``Y`` and ``v``; cross-attention uses ``Z``,
        self-attention the query token of each instance.
    config : TrainConfig, optional
        All settings; keyword ``settings`` override its fields.  The settings:

        param : {"W", "KQ", "p", "vW", "vp"}, default "W"
            Key-query matrix ``W`` (d, d); factors ``K, Q`` (d, m); prompt ``p`` (d,) with
            fixed key matrix ``prompt_W`` (identity by default); or joint training of the
            linear head ``v`` (started at the instance's ``v``) with ``W`` or ``p``
            (:mod:`attnsvm.train.params`).
        optimizer : {"gd", "ngd", "polyak", "md", "adam", "sign", "spectral", "signum", "muon"}
            or Optimizer, default "ngd"
            See :mod:`attnsvm.train.optim`; ``ngd`` is the papers' protocol.
        lr : float, default 0.1
        steps : int, default 2000 (at most 1e9)
        seed : int or sequence of int, default 0
            Per-instance seeds of the random start (``seed + b`` for instance b when an int),
            so a batch gives the same result as its instances trained one by one.
        loss : {"logistic", "exponential", "correlation"}
        head : None, "linear", or Head
            Output head (:class:`ReLUHead`, :class:`LambdaHead`); joint training needs
            "linear".
        init : {"normal", "zero"}, array or mapping
            ``"normal"`` (default): entries i.i.d. ``N(0, init_scale^2)`` from the instance's
            seed.  An array gives the start of the single block; a mapping
            ``{"K": ..., "Q": ...}`` all blocks; shapes (...) or (B, ...).  ``"zero"`` for
            ``KQ`` is a stationary point.
        init_scale : float, default 0.01
        m : int, optional
            Width of ``K, Q`` (default d).
        record_every : int, optional
            Record every this many steps (and the last).  ``record_steps`` gives explicit
            steps.
        targets : mapping name -> array (d, d) or (B, d, d), optional
            Matrices whose correlation with the key-query matrix is recorded
            (``corr_<name>``).
        kq_eps : float, default 0
            ``eps`` of the official ``(K, Q)`` protocol (``eps (||K||^2+||Q||^2)`` added to
            the loss); 0 follows the exact gradient.
        md_p, polyak_max_step, betas, adam_eps, ns_steps : optimizer settings.
        batch_size : int, optional
            Sequences per step (default: all n).  Step ``s`` then follows the loss
            ``(1/k) sum_{i in B_s} l(u_i)`` of its batch, exactly (:mod:`attnsvm.train._batches`);
            ``W``, ``KQ`` and ``p`` only, not Polyak (which needs the batch's loss).  The
            reported loss stays the full mean.
        batch_order : {"cyclic", "random"}, default "cyclic"
            Sequences in order ``0, 1, ..., n-1, 0, ...`` (incremental), or a seeded
            permutation per epoch (random reshuffling, from the instance seeds).
        batch_start : int, default 0
            Steps already taken: the schedule continues from there (a run in segments).
        device : str or torch.device, default "cpu"
            ``"cpu"``, ``"cuda"``, or ``"auto"``.
        dtype : torch.dtype, default float64
        cuda_graph : bool, default False
            On CUDA with the torch engine, replay the step as CUDA graphs (not for joint
            training or Adam).
        backend : {"auto", "torch", "numpy", "triton"}, default "auto"
            See :class:`TrainConfig`; all engines give the same iterates up to rounding.
        threads : int, optional
            Torch threads during the call (default ``$ATTNSVM_THREADS`` or 1).
        progress : callable, optional
            ``progress(done_steps, total_steps)``, called during the run.

    Returns
    -------
    TrainResult

    Raises
    ------
    InvalidInputError
        Bad instances (shapes, missing ``Y``/``v``).
    InvalidParameterError
        Bad settings, or a backend that cannot run them.
    """
    t0 = time.perf_counter()
    cfg = (config or TrainConfig()).replace(**settings) if settings else (config or TrainConfig())
    instances, single = as_instances(data)
    cfg.check()
    spec = get_param(cfg.param)
    steps = int(cfg.steps)
    hd = get_head(cfg.head)
    if spec.joint and not hd.linear:
        raise InvalidParameterError("Joint training ('vW', 'vp') needs the linear head.")
    ls = get_loss(cfg.loss)
    opt = make_optimizer(cfg.optimizer, cfg.lr, md_p=cfg.md_p,
                         polyak_max_step=cfg.polyak_max_step, betas=cfg.betas,
                         adam_eps=cfg.adam_eps, ns_steps=cfg.ns_steps)
    dev = resolve_device(cfg.device)
    dtype = cfg.dtype
    B = len(instances)
    n, T, d = instances[0].X.shape
    mm = d if cfg.m is None else int(check_positive("m", cfg.m, integer=True))
    seeds = instance_seeds(cfg.seed, B)

    record_steps = cfg.record_steps
    if record_steps is None and cfg.record_every is not None:
        check_positive("record_every", cfg.record_every, integer=True)
        _check_record_size(steps // cfg.record_every + 2, B, n, cfg.targets)
        record_steps = np.unique(np.r_[np.arange(0, steps + 1, cfg.record_every), steps])
    rs: np.ndarray | None = None
    if record_steps is not None:
        rs = np.unique(np.asarray(record_steps, dtype=np.int64))
        if rs.size and (rs.min() < 0 or rs.max() > steps):
            raise InvalidParameterError(
                f"The 'record_steps' must lie in [0, {steps}]. Got {rs.min()}..{rs.max()}.")
        _check_record_size(rs.size, B, n, cfg.targets)
    elif cfg.targets:
        raise InvalidParameterError("The 'targets' need 'record_every' or 'record_steps'.")
    schedule = make_schedule(cfg.batch_size, cfg.batch_order, cfg.batch_start, n, seeds)
    if schedule is not None and (spec.joint or opt.name == "polyak"):
        raise InvalidParameterError(
            "The 'batch_size' setting needs param 'W', 'KQ' or 'p' and an optimizer other "
            f"than 'polyak'. Got param {cfg.param!r}, optimizer {opt.name!r}.")
    backend = choose_backend(cfg.backend, spec, hd, ls, opt, (B, n, T, d), mm, dev, dtype,
                             cfg.cuda_graph, single, minibatch=schedule is not None)

    with _torch_threads(resolve_threads(cfg.threads)), torch.inference_mode():
        prob = Problem.from_instances(instances, dev, dtype)
        hd = hd.to(dev, dtype)
        blocks = {k: torch.as_tensor(a, dtype=dtype, device=dev).clone()
                  for k, a in init_blocks(cfg.param, cfg.init, cfg.init_scale, seeds, d,
                                          mm).items()}
        rec: Recorder | None = None
        if rs is not None:
            tg = as_targets(cfg.targets, B, (d, d), dev, dtype)
            rec = Recorder(rs, B, n, tg, dev, dtype)
        names = tuple(blocks)
        engine: Any
        if backend == "numpy":
            engine = NumpyEngine(prob, names, list(blocks.values()), ls, opt, cfg.kq_eps,
                                 schedule)
        elif backend == "triton":
            engine = FusedEngine(prob, names, list(blocks.values()), ls, opt, cfg.kq_eps)
        else:
            model = build_model(cfg.param, blocks, prob, cfg.kq_eps, cfg.prompt_W)
            engine = TorchEngine(model, prob, ls, hd, opt, cfg.cuda_graph, dev, schedule)
        try:
            stats = engine.advance(0)  # compiles the fused kernel
        except Exception as exc:  # pragma: no cover - GPU only: Triton compile failure
            if backend != "triton" or cfg.backend != "auto":
                raise
            warnings.warn(f"The fused Triton kernel failed ({exc}); using the torch engine.",
                          RuntimeWarning, stacklevel=2)
            backend = "torch"
            model = build_model(cfg.param, blocks, prob, cfg.kq_eps, cfg.prompt_W)
            engine = TorchEngine(model, prob, ls, hd, opt, cfg.cuda_graph, dev)
            stats = engine.advance(0)
        done = 0
        last_report = time.perf_counter()
        for stop in _segments(steps, rs, cfg.progress is not None):
            if stop > done:
                stats = engine.advance(stop - done)
                done = stop
            if rec is not None and rec.wants(done):
                rec.record(done, stats.loss, engine.key_query(), stats.max_logprob,
                           stats.selected)
            if cfg.progress is not None and (
                    done == steps or time.perf_counter() - last_report > 0.2):
                cfg.progress(done, steps)
                last_report = time.perf_counter()
        final = engine.blocks()
        KQ = engine.key_query()

    def out(t: Any) -> np.ndarray | None:
        if t is None:
            return None
        a = np.array(t) if isinstance(t, np.ndarray) else t.detach().cpu().numpy().copy()
        return a[0] if single else a

    res = TrainResult(
        W=out(KQ), K=out(final.get("K")), Q=out(final.get("Q")), p=out(final.get("p")),
        v=out(final.get("v")) if spec.joint else None,
        selected=out(stats.selected), max_prob=np.exp(out(stats.max_logprob)),  # type: ignore
        loss=out(stats.loss), param=cfg.param, optimizer=opt.name, lr=opt.lr,  # type: ignore
        steps=steps, seeds=seeds, seconds=0.0, backend=backend)
    if rec is not None:
        res.recorder = rec
        lh = rec.loss.cpu().numpy().T
        res.loss_history = lh[0] if single else lh
        res.record_steps = rec.steps
    res.seconds = time.perf_counter() - t0
    return res
