"""A working set of rows around an interior point (max-norm and spectral Att-SVMs).

Most rows of a large instance are inactive at the optimum (at (100, 20, 64) about 660 of
1900 for the max-norm SVM), and the interior points' row-space Newton systems cost
``m^2``-``m^3``.  So the interior point runs on the rows that the start (the Frobenius
solution) meets within a factor ``1 + FIRST`` of their right-hand side, plus the
equalities, first coarsely (to a certified gap of ``COARSE``: it only picks the rows); rows
that answer violates, or meets within ``1 + NEAR``, join, and the subset is solved again
to the caller's accuracy, and again (more rows) until the answer meets every row.  The
subset's optimum is then optimal for all rows (it is feasible and the subset problem is a
relaxation), and its multipliers, zero off the subset, certify it: the caller certifies on
all rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..constraints import ConstraintSet
from ._bounds import certify
from ._spectral_ipm import _DENSE_MAX, spectral_ipm

__all__ = ["on_working_set"]

#: rows the start meets within ``(1 + FIRST) b`` start the working set
FIRST = 0.1
#: rows the answer meets within ``(1 + NEAR) b`` (or violates) join it
NEAR = 0.05

#: the interior points use a working set from this many rows on (row-space Newton only)
MIN_ROWS = 1000
#: certified gap of the first, coarse solve (it only picks the rows)
COARSE = 1e-4

Run = Callable[[ConstraintSet, np.ndarray, float | None], tuple[np.ndarray, np.ndarray, int]]


def _close(cons: ConstraintSet, W: np.ndarray, factor: float) -> np.ndarray:
    """Rows with ``a^T W z <= factor * b`` (for ``b > 0``) or ``a^T W z <= b`` (else)."""
    b = cons.rhs
    v = cons.values(W)
    return np.asarray(np.where(b > 0, v <= factor * b, v <= b))


def on_working_set(cons: ConstraintSet, run: Run, W_start: np.ndarray, max_rounds: int = 8
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Solve on a working set of rows.

    Parameters
    ----------
    cons : ConstraintSet
        All rows (``m``).
    run : callable ``(subset, W0, target) -> (W, lam_subset, iterations)``
        The interior point on a subset of the rows from a start feasible for them, to the
        certified gap ``target`` (None: the caller's own).  The first solve is coarse
        (:data:`COARSE`): it only picks the rows; the answer is always from a full solve.
    W_start : ndarray, shape (d1, d2)
        A start feasible for every row (the Frobenius solution).
    max_rounds : int
        Solves at most; the last one is on every row when the earlier ones did not settle.

    Returns
    -------
    W : ndarray, shape (d1, d2)
    lam : ndarray, shape (m,)
        The subset's multipliers, zero off it.
    info : dict
        ``rows`` (the final subset's size), ``rounds`` and ``iterations`` (all solves).
    """
    m = cons.m
    inset = _close(cons, W_start, 1.0 + FIRST)
    inset[:cons.n_eq] = True
    iterations = rounds = 0
    W, W0, lam_s = W_start, W_start, np.zeros(0)
    v_start = cons.values(W_start)
    while True:
        rounds += 1
        if rounds >= max_rounds:
            inset[:] = True
        rows = np.flatnonzero(inset)
        coarse = rounds == 1 and rounds < max_rounds
        W, lam_s, it = run(cons.subset(rows), W0, COARSE if coarse else None)
        iterations += it
        grow = _close(cons, W, 1.0 + NEAR) & ~inset
        # a row joins only if the answer does not already meet it (to rounding)
        b, v = cons.rhs, cons.values(W)
        short = v < b - 1e-12 * np.maximum(1.0, np.abs(b))
        if not coarse and not np.any(short & ~inset):
            break
        inset |= grow | short
        # the next start: the answer moved toward the start just enough to meet every row
        # of the new set with a margin (the start meets them all)
        need = np.flatnonzero(inset)
        gap_w, gap_s = v[need] - b[need], v_start[need] - b[need]
        low = gap_w < 0.05 * np.maximum(gap_s, 0.0)
        theta = 1.0
        if np.all(gap_s[low] > gap_w[low]):
            theta = min(1.0, float(np.max((0.05 * gap_s[low] - gap_w[low])
                                          / (gap_s[low] - gap_w[low]), initial=0.0)))
        W0 = W + theta * (W_start - W)
    lam = np.zeros(m)
    lam[rows] = lam_s
    return W, lam, {"rows": int(rows.size), "rounds": rounds, "iterations": iterations}


def spectral_rows(red: ConstraintSet, W0: np.ndarray, *, target: float, max_iter: int,
                  newton: str, lam0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int,
                                                             str, dict[str, int] | None]:
    """The spectral interior point on the reduced rows ``red``, on a working set of them
    where its Newton systems are in the row space (``newton="rows"``, or "auto" above
    :data:`._spectral_ipm._DENSE_MAX` entries, no equality rows) and ``m >= min_rows``.

    Where "auto" chose the dense Newton system and its answer does not certify to
    ``10 target``, the row-space one runs too and the better answer is kept (``newton``
    then reads "dense, then rows"; ``iterations`` counts both).

    ``lam0`` (m,), optional: multipliers of all rows of ``red`` that start the dense
    interior point's dual (the Frobenius ones), used only where every row is solved at once.

    Returns ``(W, lam, iterations, newton, working_set)`` (``working_set`` None when all
    rows were solved at once).
    """
    used = {"newton": "dense"}

    def run(sub: ConstraintSet, W_0: np.ndarray, tgt: float | None = None
            ) -> tuple[np.ndarray, np.ndarray, int]:
        Zq, inv = sub.groups
        res = spectral_ipm(sub.A, sub.Zc, inv, Zq, sub.rhs, int(sub.n_eq), W_0,
                           target=tgt or target, max_iter=max_iter,
                           certify=lambda W, lam: certify(sub, W, lam, "spec").gap,
                           newton=newton, lam0=lam0 if sub is red else None)
        used["newton"] = res.newton
        return res.W, res.lam, res.iterations

    def attempt(mode: str) -> tuple[np.ndarray, np.ndarray, int, str, dict[str, int] | None]:
        nonlocal newton
        newton = mode
        rows = (mode == "rows" or (mode == "auto" and W0.size > _DENSE_MAX)) and not red.n_eq
        if rows and red.m >= MIN_ROWS:
            W, lam, ws = on_working_set(red, run, W0)
            return W, lam, ws["iterations"], used["newton"], ws
        W, lam, it = run(red, W0)
        return W, lam, it, used["newton"], None

    first = attempt(newton)
    if first[3] == "dense" and newton == "auto" and not red.n_eq:
        # the dense Newton system can stall on nearly rank-deficient factors (relative gap
        # near 1, short dual steps) where the row-space one goes on: retry, keep the better
        gap = certify(red, first[0], first[1], "spec").gap
        if not gap <= 10 * target:
            second = attempt("rows")
            if certify(red, second[0], second[1], "spec").gap < gap:
                return second[0], second[1], first[2] + second[2], "dense, then rows", second[4]
    return first
