"""Mini-batch schedules: which sequences each step of :func:`attnsvm.train.train` uses.

With ``batch_size = k < n`` step ``s`` (counted from ``batch_start``) takes the loss
``(1/k) sum_{i in B_s} l(u_i)``, where ``B_s`` are positions ``s k, ..., s k + k - 1`` of an
endless stream of sequence indices: the stream is ``0, 1, ..., n-1, 0, 1, ...`` for
``"cyclic"`` (incremental methods), and a fresh permutation of ``0..n-1`` per epoch for
``"random"`` (random reshuffling; epoch ``e`` of instance seed ``s`` uses
``numpy.random.default_rng([SALT, s mod 2^32, e]).permutation(n)``, so a run in segments,
continued with ``batch_start``, is the same run, and a batch of instances gives the results of
its instances one by one).  A sequence that occurs twice in one batch (a batch across an epoch
boundary) counts twice.

The weights ``w`` (B, n) count each sequence's occurrences in the step's batch; the exact
score direction then uses ``c_i -> w_i c_i`` and ``log(k)`` in place of ``log(n)``
(:func:`attnsvm.train._direction.score_direction`).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_choice, check_positive
from ..exceptions import InvalidParameterError

__all__ = ["BATCH_ORDERS", "BatchSchedule", "make_schedule"]

BATCH_ORDERS = ("cyclic", "random")
_SALT = 0xBA7C4


class BatchSchedule:
    """Per-step sequence weights for B instances of n sequences.

    Parameters
    ----------
    n : int
        Sequences per instance.
    size : int
        Sequences per step, ``1 <= size <= n``.
    order : {"cyclic", "random"}
    seeds : list of int
        Per-instance seeds (random order).
    start : int
        Steps already taken (the schedule continues from there).
    """

    def __init__(self, n: int, size: int, order: str, seeds: list[int], start: int = 0):
        self.n, self.size, self.order = int(n), int(size), order
        self.seeds = [int(s) % 2**32 for s in seeds]
        self.start = int(start)
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        """(B, n) permutation of each instance for ``epoch`` (identity rows when cyclic)."""
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            if self.order == "cyclic":
                p = np.tile(np.arange(self.n), (len(self.seeds), 1))
            else:
                p = np.stack([np.random.default_rng([_SALT, s, epoch]).permutation(self.n)
                              for s in self.seeds])
            self._perms[epoch] = p
        return self._perms[epoch]

    def indices(self, step: int) -> np.ndarray:
        """Sequence indices (B, size) of local step ``step`` (0-based)."""
        pos = (self.start + int(step)) * self.size + np.arange(self.size)
        ep, k = np.divmod(pos, self.n)
        return np.stack([self._perm(int(e))[:, int(j)] for e, j in zip(ep, k, strict=True)],
                        axis=1)

    def weights(self, step: int) -> np.ndarray:
        """Occurrence counts (B, n) float64 of each sequence in the batch of ``step``."""
        idx = self.indices(step)
        w = np.zeros((idx.shape[0], self.n))
        for j in range(self.size):
            w[np.arange(idx.shape[0]), idx[:, j]] += 1.0
        return w


def make_schedule(batch_size: int | None, order: str, start: int, n: int, seeds: list[int]
                  ) -> BatchSchedule | None:
    """A :class:`BatchSchedule`, or None for full batches (``batch_size`` None or ``n``).

    Raises
    ------
    InvalidParameterError
        ``batch_size`` not an integer in [1, n], an unknown ``order``, a negative ``start``.
    """
    check_choice("batch_order", order, BATCH_ORDERS)
    check_positive("batch_start", start, integer=True, allow_zero=True)
    if batch_size is None:
        return None
    check_positive("batch_size", batch_size, integer=True)
    if batch_size > n:
        raise InvalidParameterError(
            f"The 'batch_size' parameter must be at most the number of sequences ({n}). "
            f"Got {batch_size} instead.")
    if batch_size == n:
        return None
    return BatchSchedule(n, int(batch_size), order, seeds, int(start))
