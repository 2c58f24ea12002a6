"""The Att-SVM instance of a head's own argmax selections.

Every position of every sequence is a query (self-attention): the query is z = [x_q; 1]
(augmented so that query biases fold in, see :mod:`attnsvm.probe.capture`), its keys are the
positions it sees (all, or 0..q in a decoder), and the selected token alpha is the key of largest
model probability.  Each other key t gives one constraint ``(x_alpha - x_t)^T W [x_q; 1] >= 1``,
stored as a row of ``A`` (key side, shape (m, d)) and of ``Zc`` (query side, shape (m, d + 1)).

Degenerate selections are reported, not broken silently:

- ties: rows whose largest probability is reached by more than one key (alpha is then the
  first of them);
- identical keys: constraints with ``x_alpha == x_t`` (a zero row of ``A``; no W separates them);
- contradictory pairs: two rows with identical queries and a pair of identical key vectors
  a, b present in both, where one row selects a and the other b.

Any of these makes the instance infeasible; the solver then certifies it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .capture import Capture

__all__ = ["HeadInstance", "build_instance"]


@dataclass
class HeadInstance:
    """Constraints and row statistics of one head.

    Attributes
    ----------
    A : numpy.ndarray, shape (m, d)
        ``x_alpha - x_t`` of every constraint.
    Zc : numpy.ndarray, shape (m, d + 1)
        ``[x_q; 1]`` of every constraint.
    index : numpy.ndarray of int64, shape (m, 2)
        (query row, key position) of every constraint; query rows count over all sequences.
    row_of : numpy.ndarray of int64, shape (m,)
        Query row of every constraint (``index[:, 0]``).
    alpha : numpy.ndarray of int64, shape (n,)
        Selected key position per query row.
    max_prob : numpy.ndarray, shape (n,)
        Largest model probability per row.
    sink : numpy.ndarray of bool, shape (n,)
        Row's argmax is a special token or position 0.
    tie : numpy.ndarray of bool, shape (n,)
        More than one key reaches the largest probability.
    n_keys : numpy.ndarray of int64, shape (n,)
        Number of keys each row sees (T, or q + 1 in a decoder).
    identical_keys : int
        Constraints with ``x_alpha == x_t`` exactly.
    contradictory_pairs : int
        Pairs of rows with identical queries selecting a over b and b over a.
    qpos : numpy.ndarray of int64, shape (n,)
        Position of each row's query in its sequence.
    seq_of : numpy.ndarray of int64, shape (n,)
        Sequence (capture) index of each row.
    """

    A: np.ndarray
    Zc: np.ndarray
    index: np.ndarray
    alpha: np.ndarray
    max_prob: np.ndarray
    sink: np.ndarray
    tie: np.ndarray
    n_keys: np.ndarray
    identical_keys: int
    contradictory_pairs: int
    qpos: np.ndarray | None = None
    seq_of: np.ndarray | None = None

    @property
    def row_of(self) -> np.ndarray:
        """Query row of every constraint, shape (m,)."""
        return self.index[:, 0]

    @property
    def n(self) -> int:
        """Number of query rows."""
        return int(self.alpha.shape[0])

    @property
    def m(self) -> int:
        """Number of constraints."""
        return int(self.A.shape[0])

    def subset_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(A, Zc, index)`` restricted to the constraints of the rows ``rows`` (bool, (n,))."""
        keep = np.asarray(rows, dtype=bool)[self.row_of]
        return self.A[keep], self.Zc[keep], self.index[keep]


def _contradictions(X_rows: list[np.ndarray], Z_rows: list[np.ndarray], alpha: np.ndarray) -> int:
    """Count contradictory pairs among rows with byte-identical queries."""
    groups: dict[bytes, list[int]] = {}
    for r, z in enumerate(Z_rows):
        groups.setdefault(z.tobytes(), []).append(r)
    count = 0
    for rows in groups.values():
        if len(rows) < 2:
            continue
        keysets = [{k.tobytes() for k in X_rows[r]} for r in rows]
        chosen = [X_rows[r][alpha[r]].tobytes() for r in rows]
        for i in range(len(rows)):
            for j in range(i + 1, len(rows)):
                a, b = chosen[i], chosen[j]
                if a != b and b in keysets[i] and a in keysets[j]:
                    count += 1
    return count


def build_instance(
    captures: list[Capture],
    layer: int,
    head: int,
    causal: bool,
    features: list[tuple[np.ndarray, np.ndarray]] | None = None,
    masks: list[np.ndarray] | None = None,
) -> HeadInstance:
    """Build the Att-SVM instance of one head from the captured sequences.

    Parameters
    ----------
    captures : list of Capture
        One per sequence, holding ``X[layer]`` (T, d) and ``P[layer]`` (H, T, T).
    layer, head : int
    causal : bool
        Query q sees keys 0..q only.
    features : list of (K (T, d_k), Q (T, d_q)), optional
        Per sequence, the head's key-side and query-side features (default: ``X`` and
        ``[X; 1]``; QK-norm heads: their normalized coordinates).
    masks : list of numpy.ndarray of bool, shape (T, T), optional
        Per sequence, which keys each query sees (default: all, or the causal triangle);
        a sliding window removes keys from a row.

    Returns
    -------
    HeadInstance
    """
    A_parts, Z_parts, idx_parts = [], [], []
    alpha, max_prob, sink, tie, n_keys, qpos, seq_of = [], [], [], [], [], [], []
    X_rows: list[np.ndarray] = []
    Z_rows: list[np.ndarray] = []
    row = 0
    for si, cap in enumerate(captures):
        X = cap.X[layer]
        if features is None:
            K, Q = X, np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)
        else:
            K, Q = features[si]
        P = cap.P[layer][head]
        T = X.shape[0]
        if masks is None:
            mask = np.tril(np.ones((T, T), bool)) if causal else np.ones((T, T), bool)
        else:
            mask = masks[si]
        special = cap.sequence.special
        for q in range(T):
            seen = np.flatnonzero(mask[q])
            p = P[q, seen]
            pmax = p.max()
            winners = seen[p == pmax]
            a = int(winners[0])
            alpha.append(a)
            max_prob.append(float(pmax))
            tie.append(winners.size > 1)
            sink.append(bool(special[a]) or a == 0)
            n_keys.append(seen.size)
            qpos.append(q)
            seq_of.append(si)
            keys = K[seen]
            z = Q[q]
            X_rows.append(keys)
            Z_rows.append(z)
            others = seen[seen != a]
            if others.size:
                A_parts.append(K[a][None, :] - K[others])
                Z_parts.append(np.broadcast_to(z, (others.size, z.size)))
                idx_parts.append(np.column_stack([np.full(others.size, row), others]))
            row += 1
    d_k = K.shape[1] if captures else 0
    d_q = Q.shape[1] if captures else 1
    A = np.concatenate(A_parts) if A_parts else np.zeros((0, d_k))
    Zc = np.concatenate(Z_parts) if Z_parts else np.zeros((0, d_q))
    index = np.concatenate(idx_parts).astype(np.int64) if idx_parts else np.zeros((0, 2), np.int64)
    alpha_arr = np.asarray(alpha, dtype=np.int64)
    return HeadInstance(
        A=np.ascontiguousarray(A),
        Zc=np.ascontiguousarray(Zc),
        index=index,
        alpha=alpha_arr,
        max_prob=np.asarray(max_prob),
        sink=np.asarray(sink, dtype=bool),
        tie=np.asarray(tie, dtype=bool),
        n_keys=np.asarray(n_keys, dtype=np.int64),
        identical_keys=int(np.sum(~A.any(axis=1))) if A.size else 0,
        contradictory_pairs=_contradictions(X_rows, Z_rows, _local_alpha(X_rows, alpha_arr,
                                                                           captures, masks,
                                                                           causal, layer)),
        qpos=np.asarray(qpos, dtype=np.int64),
        seq_of=np.asarray(seq_of, dtype=np.int64),
    )


def _local_alpha(X_rows: list[np.ndarray], alpha: np.ndarray, captures: list[Capture],
                 masks: list[np.ndarray] | None, causal: bool, layer: int) -> np.ndarray:
    """Each row's selection as an index into its own key list (``X_rows[r]``)."""
    if masks is None:
        return alpha  # keys start at position 0
    out = np.empty_like(alpha)
    row = 0
    for si, cap in enumerate(captures):
        T = cap.X[layer].shape[0]
        for q in range(T):
            seen = np.flatnonzero(masks[si][q])
            out[row] = int(np.searchsorted(seen, alpha[row]))
            row += 1
    return out
