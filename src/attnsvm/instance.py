"""Attention-SVM instances: tokens, queries, labels, head and token choice.

An instance holds ``n`` sequences of ``T`` tokens in ``R^d``:

* ``X`` (n, T, d): tokens, ``X[i, t] = x_it``;
* ``Z`` (n, d): queries ``z_i`` (cross-attention), or ``Z[i] = X[i, query_index]``
  (self-attention);
* ``Y`` (n,) in {-1, +1} and ``v`` (d,): labels and linear head, optional;
* ``alpha`` (n,): the selected token per sequence, optional.

Token scores are ``gamma_it = Y_i v^T x_it``; the optimal token is their argmax, and ties
are reported (:class:`TiedTokensError`), never broken silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_savez, read_npz
from ._numerics import safe_norm
from ._validation import as_float_array, as_int_array
from .constraints import ConstraintSet
from .exceptions import InstanceFileError, InvalidInputError

__all__ = ["Instance", "TiedTokensError", "random_instance", "check_rotary_fields"]

#: Relative tolerance under which two token scores count as tied.
TIE_RTOL = 1e-12


class TiedTokensError(InvalidInputError):
    """The optimal token of some sequence is not unique; ``ties`` maps i -> tied tokens."""

    def __init__(self, message: str, ties: dict[int, list[int]]):
        super().__init__(message)
        self.ties = ties


def check_rotary_fields(inst: Instance) -> dict[str, np.ndarray]:
    """Validated ``freqs`` (F,) float, ``pos`` (n, T) int64, ``qpos`` (n,) int64.

    Raises
    ------
    InvalidInputError
        A field missing or malformed, or no ``Z``.
    """
    missing = [k for k in ("freqs", "pos", "qpos") if getattr(inst, k) is None]
    if missing:
        raise InvalidInputError(
            "A rotary instance needs 'freqs', 'pos' and 'qpos' together. Got no "
            + " and no ".join(repr(k) for k in missing) + " instead.")
    if inst.Z is None:
        raise InvalidInputError(
            "A rotary instance needs the queries 'Z' (n, d). Got self-attention "
            "('query_index') instead.")
    n, T, _ = inst.X.shape
    freqs = as_float_array("freqs", inst.freqs, 1)
    if freqs.size == 0:
        raise InvalidInputError(
            "The 'freqs' array must hold at least one frequency. Got shape (0,) instead.")
    pos = as_int_array("pos", inst.pos, 2, (n, T))
    qpos = as_int_array("qpos", inst.qpos, 1, (n,))
    for name, arr in (("pos", pos), ("qpos", qpos)):
        if arr.size and np.max(np.abs(arr)) >= 2 ** 53:
            raise InvalidInputError(
                f"The '{name}' values must be below 2**53 in magnitude (exact in float64). "
                f"Got {int(np.max(np.abs(arr)))} instead.")
    return {"freqs": freqs, "pos": pos, "qpos": qpos}


@dataclass(frozen=True)
class Instance:
    """A validated attention-SVM instance (see the module docstring for the fields).

    Parameters
    ----------
    X : array_like, shape (n, T, d)
    Z : array_like, shape (n, d), optional
        Cross-attention queries.  Without it the query of sequence ``i`` is
        ``X[i, query_index]`` (self-attention).
    query_index : int, default 0
        Without ``Z``: the position of the query token in every sequence (a scalar;
        negative values count from the end).
    Y : array_like, shape (n,), optional
        Labels, each -1 or +1.
    v : array_like, shape (d,), optional
        Linear head; token scores are ``Y_i v^T x_it``.
    alpha : array_like, shape (n,), optional
        Chosen token per sequence, integers in ``[0, T)``.

    Examples
    --------
    >>> import numpy as np
    >>> inst = Instance(X=np.array([[[1.0, 0.0], [0.0, 1.0]]]), Z=np.array([[1.0, 0.0]]),
    ...                 Y=np.array([1]), v=np.array([1.0, 0.0]))
    >>> inst.optimal_tokens().tolist()
    [0]
    """

    X: np.ndarray
    Z: np.ndarray | None = None
    query_index: int | None = None
    Y: np.ndarray | None = None
    v: np.ndarray | None = None
    alpha: np.ndarray | None = None
    freqs: np.ndarray | None = None
    pos: np.ndarray | None = None
    qpos: np.ndarray | None = None
    _Zq: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        X = as_float_array("X", self.X, 3)
        n, T, d = X.shape
        if n < 1:
            raise InvalidInputError(
                "The 'X' array must hold at least one sequence. Got n=0 instead.")
        if T < 2:
            raise InvalidInputError(
                f"The 'X' array must hold at least 2 tokens per sequence. Got T={T} instead."
            )
        if d < 1:
            raise InvalidInputError("The 'X' array must have embedding dimension d >= 1. Got 0.")
        object.__setattr__(self, "X", X)
        if self.Z is not None:
            Z = as_float_array("Z", self.Z, 2, (n, d))
            object.__setattr__(self, "Z", Z)
            object.__setattr__(self, "query_index", None)
            Zq = Z
        else:
            q = 0 if self.query_index is None else self.query_index
            q = int(as_int_array("query_index", q, 0, low=-T, high=T))
            q = q % T
            object.__setattr__(self, "query_index", q)
            Zq = X[:, q, :]
        object.__setattr__(self, "_Zq", np.ascontiguousarray(Zq))
        if self.Y is not None:
            Y = as_float_array("Y", self.Y, 1, (n,))
            if not np.all(np.abs(Y) == 1):
                raise InvalidInputError(
                    f"The 'Y' labels must be -1 or +1. Got {sorted(set(Y.tolist()))[:5]} instead."
                )
            object.__setattr__(self, "Y", Y)
        if self.v is not None:
            object.__setattr__(self, "v", as_float_array("v", self.v, 1, (d,)))
        if self.alpha is not None:
            object.__setattr__(self, "alpha", self.check_alpha(self.alpha))
        if self.freqs is not None or self.pos is not None or self.qpos is not None:
            for k, val in check_rotary_fields(self).items():
                object.__setattr__(self, k, val)

    @property
    def is_rotary(self) -> bool:
        """True for a rotary instance (``freqs``, ``pos``, ``qpos``: the lifted Att-SVM)."""
        return self.freqs is not None

    # ------------------------------------------------------------------ sizes
    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def T(self) -> int:
        return int(self.X.shape[1])

    @property
    def d(self) -> int:
        return int(self.X.shape[2])

    @property
    def queries(self) -> np.ndarray:
        """The query of every sequence, shape (n, d) (``Z`` or ``X[:, query_index]``)."""
        return self._Zq

    @property
    def has_head(self) -> bool:
        """True when labels ``Y`` and head ``v`` are both present."""
        return self.Y is not None and self.v is not None

    # ----------------------------------------------------------------- scores
    def token_scores(self) -> np.ndarray:
        """Scores ``gamma_it = Y_i v^T x_it``, shape (n, T); needs ``Y`` and ``v``."""
        if self.Y is None or self.v is None:
            raise InvalidInputError(
                "The instance must have labels 'Y' and head 'v' to compute token scores."
            )
        return self.Y[:, None] * (self.X @ self.v)

    def score_ties(self) -> dict[int, list[int]]:
        """Sequences whose best score is shared by several tokens: ``{i: [tokens]}``."""
        g = self.token_scores()
        best = g.max(axis=1, keepdims=True)
        tol = TIE_RTOL * np.abs(g).max(axis=1, keepdims=True)  # relative to the row's scale
        tied = (best - g) <= tol
        return {int(i): np.flatnonzero(tied[i]).tolist() for i in np.flatnonzero(tied.sum(1) > 1)}

    def optimal_tokens(self) -> np.ndarray:
        """``opt_i = argmax_t gamma_it``, shape (n,).

        Raises
        ------
        TiedTokensError
            When some sequence has several tokens of maximal score.
        """
        ties = self.score_ties()
        if ties:
            first = next(iter(ties.items()))
            raise TiedTokensError(
                f"The optimal token is not unique in {len(ties)} sequence(s) "
                f"(e.g. sequence {first[0]}: tokens {first[1]}); pass 'alpha' explicitly.",
                ties,
            )
        return np.argmax(self.token_scores(), axis=1).astype(np.int64)

    def check_alpha(self, alpha: Any) -> np.ndarray:
        """Validate a token choice for this instance: integers in ``[0, T)``, shape (n,).

        Every entry point that takes ``alpha`` validates it here (no negative indices, no
        silent wrap-around).

        Returns
        -------
        ndarray of int64, shape (n,)

        Raises
        ------
        InvalidInputError
            Wrong shape, non-integral values, or values outside ``[0, T)``.
        """
        return as_int_array("alpha", alpha, 1, (self.n,), 0, self.T)

    def token_choice(self) -> np.ndarray:
        """``alpha`` when given, else the optimal tokens; shape (n,).

        Raises
        ------
        InvalidInputError
            With neither ``alpha`` nor both ``Y`` and ``v``.
        """
        if self.alpha is not None:
            return self.alpha
        if not self.has_head:
            raise InvalidInputError(
                "The instance must have 'alpha', or both 'Y' and 'v' to compute optimal tokens."
            )
        return self.optimal_tokens()

    # ------------------------------------------------------------ constraints
    def constraints(self, alpha: np.ndarray | None = None) -> ConstraintSet:
        """The Att-SVM constraints for token choice ``alpha`` (default :meth:`token_choice`)."""
        if self.is_rotary:  # the position-free rows are not this instance's Att-SVM
            raise InvalidInputError(
                "The instance is rotary (freqs, pos, qpos): its Att-SVM is the lifted one of "
                "attnsvm.svm.rotary (rotary_constraints, solve_lifted).")
        a = self.token_choice() if alpha is None else self.check_alpha(alpha)
        n, T, d = self.X.shape
        mask = np.ones((n, T), dtype=bool)
        mask[np.arange(n), a] = False
        ii, tt = np.nonzero(mask)
        A = self.X[ii, a[ii]] - self.X[ii, tt]
        Zc = self._Zq[ii]
        return ConstraintSet(A=A, Zc=Zc, index=np.stack([ii, tt], axis=1).astype(np.int64))

    def margins(self, W: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        """Per-constraint values ``(x_{i,alpha_i} - x_it)^T W z_i`` as an (n, T) array.

        The entry at ``(i, alpha_i)`` is ``+inf`` (no constraint).
        """
        a = self.token_choice() if alpha is None else self.check_alpha(alpha)
        W = as_float_array("W", W, 2, (self.d, self.d))
        s = np.einsum("ntd,nd->nt", self.X, self._Zq @ W.T)  # (n, T): x_it^T W z_i
        out = s[np.arange(self.n), a][:, None] - s
        out[np.arange(self.n), a] = np.inf
        return out

    def margin(self, W: np.ndarray, alpha: np.ndarray | None = None, normalized: bool = True
               ) -> float:
        """``min_{i, t != alpha_i} (x_{i,alpha_i} - x_it)^T W z_i``, divided by ``||W||_F``
        when ``normalized``."""
        val = float(np.min(self.margins(W, alpha)))
        if normalized:
            nrm = safe_norm(W)
            return val / nrm if nrm > 0 else 0.0
        return val

    # --------------------------------------------------------------- file I/O
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Instance:
        """Read an instance from the ``.npz`` format of SPEC.md (never unpickles).

        Raises
        ------
        InstanceFileError
            Missing file, not a ``.npz`` archive, or missing ``X``.
        InvalidInputError
            Any field malformed.
        """
        p = Path(path)
        fields = read_npz(p, what="instance file")
        if "X" not in fields:
            raise InstanceFileError(
                f"The instance file '{p}' has no 'X' array (tokens, (n, T, d)).")
        known = {"X", "Z", "query_index", "Y", "v", "alpha", "freqs", "pos", "qpos"}
        kwargs: dict[str, Any] = {k: fields[k] for k in known if k in fields}
        if "query_index" in kwargs:
            qi = kwargs["query_index"]
            if np.ndim(qi) != 0:
                raise InvalidInputError(
                    f"The 'query_index' array must be a scalar (the position of the query "
                    f"token in every sequence). Got shape {np.shape(qi)} instead.")
            kwargs["query_index"] = int(as_int_array("query_index", qi, 0))
        return cls(**kwargs)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the instance in the ``.npz`` format of SPEC.md (atomically)."""
        out: dict[str, np.ndarray] = {"X": self.X}
        if self.Z is not None:
            out["Z"] = self.Z
        else:
            out["query_index"] = np.array(self.query_index, dtype=np.int64)
        for k in ("Y", "v", "alpha", "freqs", "pos", "qpos"):
            val = getattr(self, k)
            if val is not None:
                out[k] = val
        atomic_savez(path, **out)


def random_instance(n: int, T: int, d: int, seed: int | np.random.Generator | None = None,
                    cross: bool = True) -> Instance:
    """The papers' data generator: Gaussian tokens and queries normalized to unit length, ``v`` a
    random unit vector, ``Y`` the sign of a Gaussian.

    Parameters
    ----------
    n, T, d : int
        Sequences, tokens per sequence, embedding dimension.
    seed : int or Generator, optional
    cross : bool, default True
        Cross-attention (random ``Z``); else self-attention with the query at position 0.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, d))
    X /= np.linalg.norm(X, axis=2, keepdims=True)
    Z = None
    if cross:
        Z = rng.standard_normal((n, d))
        Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    Y = np.sign(rng.standard_normal(n))
    Y[Y == 0] = 1.0
    return Instance(X=X, Z=Z, query_index=None if cross else 0, Y=Y, v=v)
