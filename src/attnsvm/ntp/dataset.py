"""Next-token prediction datasets: embeddings, token ids, labels (SPEC.md "Next-token datasets").

A dataset holds a vocabulary of ``K`` token embeddings ``E`` (K, d), ``n`` sequences of ``T``
token ids and one label (the next token) per sequence that occurs in its sequence.  The query of
sequence ``i`` is its last token ``e_{tokens[i, T-1]}``, itself one of the keys.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .._io import atomic_savez, read_npz
from .._validation import as_float_array, as_int_array, check_positive
from ..exceptions import InstanceFileError, InvalidInputError, InvalidParameterError
from .graph import label_graphs

__all__ = ["NTPDataset", "random_ntp_dataset"]


@dataclass(frozen=True, eq=False)
class NTPDataset:
    """A next-token prediction dataset.

    Parameters
    ----------
    E : array_like, shape (K, d)
        Token embeddings (finite reals).
    tokens : array_like of int, shape (n, T)
        Token ids in ``[0, K)``; the query of row ``i`` is ``tokens[i, T-1]``.
    labels : array_like of int, shape (n,)
        Next token of each row; it must occur in its row.

    Raises
    ------
    InvalidInputError
        Wrong shapes or dtypes, non-finite embeddings, ids out of range, a label that does not
        occur in its sequence.

    Examples
    --------
    >>> ds = NTPDataset(np.eye(3), [[0, 1, 2], [1, 0, 2]], [1, 0])
    >>> ds.n, ds.T, ds.K, ds.d, ds.queries.tolist()
    (2, 3, 3, 3, [2, 2])
    """

    E: np.ndarray
    tokens: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        E = as_float_array("E", self.E, 2)
        if E.shape[0] < 1 or E.shape[1] < 1:
            raise InvalidInputError(
                f"The 'E' array must have shape (K, d) with K >= 1 and d >= 1. "
                f"Got shape {E.shape} instead.")
        K = E.shape[0]
        tokens = as_int_array("tokens", self.tokens, 2, low=0, high=K)
        if tokens.shape[0] < 1 or tokens.shape[1] < 1:
            raise InvalidInputError(
                f"The 'tokens' array must have shape (n, T) with n >= 1 and T >= 1. "
                f"Got shape {tokens.shape} instead.")
        labels = as_int_array("labels", self.labels, 1, (tokens.shape[0],), low=0, high=K)
        missing = np.flatnonzero(~(tokens == labels[:, None]).any(axis=1))
        if missing.size:
            i = int(missing[0])
            raise InvalidInputError(
                f"The 'labels' value of sequence {i} must occur in its sequence "
                f"{tokens[i].tolist()}. Got {int(labels[i])} instead "
                f"({missing.size} sequence(s) affected).")
        for name, arr in (("E", E), ("tokens", tokens), ("labels", labels)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # ----------------------------------------------------------------- shape
    @property
    def K(self) -> int:
        """Vocabulary size."""
        return int(self.E.shape[0])

    @property
    def d(self) -> int:
        """Embedding dimension."""
        return int(self.E.shape[1])

    @property
    def n(self) -> int:
        """Number of sequences."""
        return int(self.tokens.shape[0])

    @property
    def T(self) -> int:
        """Tokens per sequence."""
        return int(self.tokens.shape[1])

    @property
    def queries(self) -> np.ndarray:
        """Last-token id of every sequence, shape (n,)."""
        return self.tokens[:, -1]

    @cached_property
    def X(self) -> np.ndarray:
        """Embedded sequences ``E[tokens]``, shape (n, T, d) (read-only)."""
        X = self.E[self.tokens]
        X.setflags(write=False)
        return X

    @cached_property
    def label_mask(self) -> np.ndarray:
        """``tokens == labels[:, None]``, shape (n, T) bool (the label's copies; read-only)."""
        mask = self.tokens == self.labels[:, None]
        mask.setflags(write=False)
        return mask

    # --------------------------------------------------------------- file I/O
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NTPDataset:
        """Read the ``.npz`` format of SPEC.md (``E``, ``tokens``, ``labels``; never unpickles).

        Raises
        ------
        InstanceFileError
            Missing or unreadable file, not a ``.npz`` archive, or a missing array.
        InvalidInputError
            Any array malformed.
        """
        p = Path(path)
        if not p.is_file():
            raise InstanceFileError(f"The dataset file '{p}' does not exist or is not a file.")
        if not zipfile.is_zipfile(p):
            raise InstanceFileError(f"The dataset file '{p}' is not a .npz archive.")
        # headers first, no allocation beyond what the file holds, never unpickles
        fields = {k: v for k, v in read_npz(p, what="dataset file").items()
                  if k in ("E", "tokens", "labels")}
        for key, what in (("E", "token embeddings, (K, d)"), ("tokens", "token ids, (n, T)"),
                          ("labels", "next-token ids, (n,)")):
            if key not in fields:
                raise InstanceFileError(f"The dataset file '{p}' has no '{key}' array ({what}).")
        return cls(E=fields["E"], tokens=fields["tokens"], labels=fields["labels"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the ``.npz`` format of SPEC.md (atomically)."""
        atomic_savez(path, E=self.E, tokens=self.tokens, labels=self.labels)

    def __repr__(self) -> str:
        return f"NTPDataset(n={self.n}, T={self.T}, K={self.K}, d={self.d})"


def _draw(rng: np.random.Generator, n: int, T: int, K: int) -> tuple[np.ndarray, np.ndarray]:
    """The official generator: distinct tokens per row, label uniform on [0, K) and, when it is
    not in the row, replaced by a uniform token of the row."""
    tokens = np.argsort(rng.random((n, K)), axis=1)[:, :T]  # T distinct ids per row
    labels = rng.integers(0, K, size=n)
    for i in range(n):
        if labels[i] not in tokens[i]:
            labels[i] = tokens[i, rng.integers(T)]
    return tokens, labels


def _has_cycle(tokens: np.ndarray, labels: np.ndarray, K: int) -> bool:
    return any(g.cyclic for g in label_graphs(tokens, labels, K).values())


def random_ntp_dataset(n: int, T: int, K: int, d: int, *, cyclic: bool | None = None,
                       seed: int | np.random.Generator | None = None,
                       tries: int = 20) -> NTPDataset:
    """A random dataset in the official code's style, acyclic or cyclic on request.

    Embeddings are Gaussian rows normalized to unit length; each sequence holds ``T`` distinct
    tokens; the label is uniform on ``[0, K)``, replaced by a uniform token of the sequence when
    absent from it (as in the official ``data_generator``).

    Parameters
    ----------
    n, T, K, d : int
        Sequences, tokens per sequence (``T <= K``), vocabulary size, embedding dimension.
    cyclic : bool, optional
        ``None``: as drawn.  ``False``: every token-priority graph acyclic.  ``True``: some graph
        has an SCC of two or more tokens (needs ``n >= 2`` and ``T >= 2``).
    seed : int or Generator, optional
    tries : int
        Official-style draws tried before the bounded construction below (no unbounded
        rejection loop): acyclic -- labels are the highest-priority token of their sequence
        under a random priority order per last token; cyclic -- sequence 1 becomes sequence 0
        reordered (same last token) with a different label of that sequence, a 2-cycle.

    Returns
    -------
    NTPDataset
    """
    for name, val in (("n", n), ("T", T), ("K", K), ("d", d)):
        check_positive(name, val, integer=True)
    check_positive("tries", tries, integer=True, allow_zero=True)
    if T > K:
        raise InvalidParameterError(
            f"The 'T' parameter must be <= K={K} (distinct tokens per sequence). Got {T} instead.")
    if cyclic and (n < 2 or T < 2):
        raise InvalidParameterError(
            f"A cyclic dataset needs n >= 2 and T >= 2. Got n={n}, T={T} instead.")
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((K, d))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    tokens, labels = _draw(rng, n, T, K)
    for _ in range(tries):
        if cyclic is None or _has_cycle(tokens, labels, K) == cyclic:
            return NTPDataset(E, tokens, labels)
        tokens, labels = _draw(rng, n, T, K)
    if cyclic is None or _has_cycle(tokens, labels, K) == cyclic:
        return NTPDataset(E, tokens, labels)
    if cyclic:
        row = tokens[0].copy()
        head = rng.permutation(row[:-1])
        tokens[1] = np.concatenate([head, row[-1:]])
        others = row[row != labels[0]]
        labels[1] = others[rng.integers(others.size)]
    else:
        prio: dict[int, np.ndarray] = {}
        for i in range(n):
            k = int(tokens[i, -1])
            rank = prio.setdefault(k, rng.permutation(K))  # rank[token]: lower = higher priority
            labels[i] = tokens[i, np.argmin(rank[tokens[i]])]
    return NTPDataset(E, tokens, labels)
