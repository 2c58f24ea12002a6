"""Inequality rows implied by another inequality row and the equality rows of their query.

Graph-SVM constraint sets (next-token prediction) hold, for one query ``z``, the equalities
``(x_i - x_j)^T W z = 0`` between tokens of one strongly connected component and the
inequalities ``(x_i - x_k)^T W z >= 1`` and ``(x_j - x_k)^T W z >= 1`` to a token ``k`` below it.
The second inequality is the first minus the equality: given the equalities it says nothing
new.  Both rows can be active at once, so an interior-point method's Newton system turns
singular as it converges (its primal residual jumps once ``mu`` falls below about 1e-9), and
the answer cannot be certified to 1e-9.  Dropping the implied row changes neither the
feasible set nor the optimum; its multiplier is zero in the certificate.

Within a query, an inequality ``a^T W z >= b`` is written, with ``E`` (k, d1) the equality rows
``E W z = b_E`` of that query and ``a = P a + E^T c`` (``P`` the projection off the rows of
``E``), as ``(P a)^T W z >= b - c^T b_E``.  Two inequalities whose projections point the same
way are then the same constraint but for their right-hand sides: the one of larger scaled
right-hand side implies the other.  A row whose projection vanishes reads ``0 >= b - c^T b_E``
and is implied when that holds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["implied_rows"]

#: two unit projections closer than this (max-norm) are the same direction
_SAME = 1e-10
#: a projection shorter than this (relative to its row) vanishes
_VANISH = 1e-12


def implied_rows(A: np.ndarray, groups: np.ndarray, b: np.ndarray, n_eq: int) -> np.ndarray:
    """Inequality rows implied by another inequality row of the same query and its equalities.

    Parameters
    ----------
    A : ndarray, shape (m, d1)
        Left factors of the constraints ``A[k]^T W z_{groups[k]} >= b_k`` (``= b_k`` for the
        first ``n_eq``).
    groups : ndarray of int, shape (m,)
        The query (right factor) of each row; rows of one group share it exactly.
    b : ndarray, shape (m,)
    n_eq : int

    Returns
    -------
    ndarray of bool, shape (m,)
        True on rows that can be dropped without changing the feasible set (never on an
        equality; of a set of rows that imply each other, one is kept).
    """
    m = A.shape[0]
    implied = np.zeros(m, dtype=bool)
    if n_eq == 0:
        return implied
    for g in np.unique(groups[:n_eq]):
        rows = np.flatnonzero(groups == g)
        eq, ineq = rows[rows < n_eq], rows[rows >= n_eq]
        if ineq.size == 0:
            continue
        E = A[eq]
        coef = A[ineq] @ np.linalg.pinv(E)  # (n, k): the part of each row in span(E)
        proj = A[ineq] - coef @ E
        rhs = b[ineq] - coef @ b[eq]
        size = np.linalg.norm(proj, axis=1)
        vanish = size <= _VANISH * np.maximum(np.linalg.norm(A[ineq], axis=1), 1e-300)
        implied[ineq[vanish & (rhs <= 0.0)]] = True
        live = np.flatnonzero(~vanish)
        if live.size < 2:
            continue
        unit = proj[live] / size[live, None]
        level = rhs[live] / size[live]
        # candidates from the Gram matrix, confirmed entrywise (its entries lose half the digits)
        close = np.argwhere(np.triu(unit @ unit.T, 1) > 1.0 - 1e-8)
        for i, j in close:
            if implied[ineq[live[i]]] or implied[ineq[live[j]]]:
                continue
            if np.max(np.abs(unit[i] - unit[j])) <= _SAME:
                # equal levels (to rounding): the later row goes, whatever the scale
                tie = 1e-12 * max(abs(level[i]), abs(level[j]))
                weaker = j if level[i] >= level[j] - tie else i
                implied[ineq[live[weaker]]] = True
    return implied
