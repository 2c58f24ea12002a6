"""The settings of one ``attnsvm pretrain`` run, checked once when built.

>>> cfg = PretrainConfig(task="induction", layers=2, heads=2, d_model=32, steps=200)
>>> cfg.resolved_lr(), cfg.resolved_seq_len()
(0.003, 33)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .._validation import check_choice
from ..exceptions import InvalidParameterError

__all__ = ["PretrainConfig", "TASKS", "POSITIONS", "OPTIMIZERS", "DEFAULT_LR"]

TASKS = ("induction", "corpus")
POSITIONS = ("rope", "learned")
OPTIMIZERS = ("adamw", "sgd", "muon")
#: Step size per optimizer when ``lr`` is not given (Muon: its matrices; the rest use AdamW 3e-3).
DEFAULT_LR = {"adamw": 3e-3, "sgd": 0.1, "muon": 0.02}


def _int_in(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (
            hi is not None and value > hi):
        span = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise InvalidParameterError(
            f"The '{name}' parameter must be an integer {span}. Got {value!r} instead.")
    return value


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run.

    Attributes
    ----------
    task : {"induction", "corpus"}
        ``induction``: sequences ``[BOS] a r b r c`` of a random segment ``r`` of ``segment``
        distinct tokens, repeated after a gap, amid ``noise`` other distinct tokens split at
        random into ``a``, ``b``, ``c`` (in the second copy the next token is the one after the
        earlier occurrence of the current one); ``corpus``: next-token prediction on
        the probe's shipped English corpus with the MiniLM tokenizer.
    layers, heads, d_model : int
        Decoder layers (1-8), heads per layer, width (a multiple of ``heads``).
    positions : {"rope", "learned"}
        Rotary embeddings (a LLaMA model) or learned absolute positions (a GPT-2 model).
    optimizer : {"adamw", "sgd", "muon"}
        Muon updates the hidden matrices with the polar factor of their momentum and the
        embeddings, norms and output layer with AdamW.
    steps, checkpoints : int
        Optimizer steps, and checkpoints after step 0 (log-spaced, the last at ``steps``).
    seed : int
        Seeds the initialization (torch) and the data (NumPy).
    lr : float or None
        Step size; None: :data:`DEFAULT_LR` of the optimizer.
    batch : int
        Sequences per step.
    seq_len : int or None
        Tokens per sequence; None: ``1 + 2 * segment + noise`` (induction) or 32 (corpus).
    vocab, segment, noise : int
        Induction task: random tokens, length of the repeated segment, and noise tokens around
        and between its two copies (``segment + noise <= vocab``).
    """

    task: str = "induction"
    layers: int = 2
    heads: int = 2
    d_model: int = 32
    positions: str = "rope"
    optimizer: str = "adamw"
    steps: int = 200
    checkpoints: int = 4
    seed: int = 0
    lr: float | None = None
    batch: int = 32
    seq_len: int | None = None
    vocab: int = 32
    segment: int = 8
    noise: int = 16

    def __post_init__(self) -> None:
        check_choice("task", self.task, TASKS)
        check_choice("positions", self.positions, POSITIONS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _int_in("layers", self.layers, 1, 8)
        _int_in("heads", self.heads, 1, 64)
        _int_in("d-model", self.d_model, 2, 1024)
        if self.d_model % self.heads:
            raise InvalidParameterError(
                f"The 'd-model' parameter must be a multiple of heads ({self.heads}). "
                f"Got {self.d_model} instead.")
        if self.positions == "rope" and (self.d_model // self.heads) % 2:
            raise InvalidParameterError(
                "The 'd-model' parameter must give an even head width with rotary positions "
                f"(d_model / heads = {self.d_model // self.heads}).")
        _int_in("steps", self.steps, 1, 10_000_000)
        _int_in("checkpoints", self.checkpoints, 1, 1000)
        if self.checkpoints > self.steps:
            raise InvalidParameterError(
                f"The 'checkpoints' parameter must be at most steps ({self.steps}). "
                f"Got {self.checkpoints} instead.")
        _int_in("seed", self.seed, 0, 2**32 - 1)
        _int_in("batch", self.batch, 1, 4096)
        _int_in("vocab", self.vocab, 2, 100_000)
        _int_in("segment", self.segment, 1, 4096)
        _int_in("noise", self.noise, 0, 4096)
        if self.segment + self.noise > self.vocab:
            raise InvalidParameterError(
                f"The 'vocab' parameter must be at least segment + noise "
                f"({self.segment + self.noise}). Got {self.vocab} instead.")
        if self.seq_len is not None:
            _int_in("seq-len", self.seq_len, 4, 4096)
            if self.task == "induction" and self.seq_len != self._induction_len():
                raise InvalidParameterError(
                    f"The 'seq-len' parameter of the induction task must be 1 + 2 * segment + "
                    f"noise ({self._induction_len()}). Got {self.seq_len} instead.")
        if self.lr is not None:
            lr = self.lr
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < 1e3:
                raise InvalidParameterError(
                    f"The 'lr' parameter must be a number in (0, 1000). Got {lr!r} instead.")

    def resolved_lr(self) -> float:
        """The step size in use."""
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.optimizer]

    def resolved_seq_len(self) -> int:
        """Tokens per training sequence."""
        if self.seq_len is not None:
            return self.seq_len
        return self._induction_len() if self.task == "induction" else 32

    def _induction_len(self) -> int:
        return 1 + 2 * self.segment + self.noise

    def to_dict(self) -> dict[str, Any]:
        """The resolved settings (``lr`` and ``seq_len`` filled in), JSON-ready."""
        d = asdict(self)
        d["lr"] = self.resolved_lr()
        d["seq_len"] = self.resolved_seq_len()
        return d
