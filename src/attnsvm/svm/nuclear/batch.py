"""Many small nuclear-norm Att-SVMs at once: one stacked interior point per shape.

:func:`solve_nuc_many` gives, problem by problem, what :func:`.solver.solve_nuc_constraints`
gives: the same presolve (exact Frobenius solution, Farkas certificate when infeasible, unit
scaling, reduced coordinates with repeated constraints merged), the same interior point and
the same certificate (:func:`.solver.certify_nuclear`).  Only the interior point is shared:
problems whose reduced shapes ``(s, r1, g, r2, n_eq)`` agree advance together in
:func:`._ipm_batch.nuclear_ipm_batch`, so that each NumPy call serves all of them.
Random instances of one ``(n, T, d)`` generically share their shapes.

Every answer is certified exactly as the single solver's: a problem that the stacked run
does not certify as ``optimal`` (or hands back, or a problem with more than ``_SMALL``
constraints, solved in working-set rounds) is solved again by
:func:`.solver.solve_nuc_constraints`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from ..._validation import check_positive
from ...constraints import ConstraintSet
from ...exceptions import InvalidInputError
from .._instance import validated_constraints
from ..frobenius import solve_fro_constraints
from ..solution import INACCURATE, INFEASIBLE, OPTIMAL, SVMSolution
from ._ipm_batch import nuclear_ipm_batch
from ._newton import DENSE_MAX
from ._policy import Tolerances
from ._presolve import Presolved, Reduced
from .solver import _SMALL, certify_nuclear, solve_nuc_constraints

__all__ = ["solve_nuc_many"]

#: largest stack of one interior-point run, in Schur-complement entries (B s^2)
_MAX_ENTRIES = 4_000_000


@dataclass
class _Prepared:
    """One problem ready for the stacked interior point: its presolve ``pre``, the
    reduction ``red`` of all its rows and the reduced starting point ``W0`` (r1, r2)."""

    pos: int
    pre: Presolved
    red: Reduced
    W0: np.ndarray
    seconds: float

    @property
    def key(self) -> tuple[int, int, int, int, int]:
        """``(s, r1, g, r2, n_eq)``: problems with equal keys share one stacked run."""
        (s, r1), (g, r2) = self.red.A.shape, self.red.Zq.shape
        return s, r1, g, r2, self.red.n_eq


def _prepare(pos: int, cset: ConstraintSet, frobenius: SVMSolution | None, tol: float
             ) -> _Prepared | SVMSolution:
    """Presolve one problem as :func:`solve_nuc_constraints` does (a final round on every
    constraint), or its finished solution (infeasible, or too large to be solved whole)."""
    t0 = time.perf_counter()
    m = cset.m
    fro = (frobenius if frobenius is not None and frobenius.norm == "fro"
           and frobenius.constraints.m == m and frobenius.status != INACCURATE
           else solve_fro_constraints(cset))
    if fro.status == INFEASIBLE or m > _SMALL or fro.W is None:
        # the Farkas certificate, or working-set rounds: the single solver's own path
        return solve_nuc_constraints(cset, tol=tol, frobenius=fro)
    pre = Presolved.of(cset, fro)
    red = pre.apply(np.arange(m))
    return _Prepared(pos, pre, red, red.apply(pre.W_fro), time.perf_counter() - t0)


def _certify(p: _Prepared, W: np.ndarray, y: np.ndarray, iterations: int, tol: float
             ) -> SVMSolution:
    """The certificate of :func:`solve_nuc_constraints` for the reduced solution ``(W, y)``
    (W (r1, r2), y (s,)), without a warning (the caller falls back when it is inaccurate)."""
    W_full, y_full = p.pre.lift(p.red, W, y)
    return certify_nuclear(p.pre.cset, W_full, y_full, tol=tol, frobenius=p.pre.fro,
                           warn=False, working_set=p.pre.m, rounds=1, ipm_iterations=iterations)


def solve_nuc_many(
    csets: Sequence[ConstraintSet],
    *,
    tol: float = 1e-9,
    frobenius: Sequence[SVMSolution | None] | None = None,
    max_iter: int = 100,
) -> list[SVMSolution]:
    """Nuclear-norm SVMs of many constraint sets, the small ones by one stacked interior point.

    Each problem is ``min ||W||_* s.t. A[k]^T W Zc[k] >= b_k`` (``= b_k`` for ``k < n_eq``),
    solved and certified as by :func:`.solver.solve_nuc_constraints` (same presolve,
    interior point, stopping rules and certificate); problems of equal reduced shapes share
    each NumPy call, which is what costs on tiny problems.

    Parameters
    ----------
    csets : sequence of ConstraintSet
        The problems; any sizes and shapes (``A`` (m_i, d1_i), ``Zc`` (m_i, d2_i)).
    tol : float
        Largest certified relative gap reported as ``optimal`` (as the single solver).
    frobenius : sequence of SVMSolution or None, optional
        The exact Frobenius solution of each problem when the caller already has it.
    max_iter : int
        Iteration cap of the stacked interior point (a problem not certified within it is
        solved again by the single solver).

    Returns
    -------
    list of SVMSolution
        One per problem, in order; ``info["batched"]`` says whether the stacked run
        produced it (False: the single solver's answer).

    Examples
    --------
    >>> from attnsvm import random_instance
    >>> cs = [random_instance(5, 5, 4, seed=s).constraints() for s in range(4)]
    >>> sols = solve_nuc_many(cs)
    >>> [s.status for s in sols], all(s.info["certified_gap"] <= 1e-9 for s in sols)
    (['optimal', 'optimal', 'optimal', 'optimal'], True)
    """
    check_positive("tol", tol)
    check_positive("max_iter", max_iter, integer=True)
    if frobenius is not None and len(frobenius) != len(csets):
        raise InvalidInputError(f"frobenius must hold one solution per constraint set "
                                f"({len(csets)}). Got {len(frobenius)}.")
    out: list[SVMSolution | None] = [None] * len(csets)
    groups: dict[tuple[int, ...], list[_Prepared]] = defaultdict(list)
    for pos, c in enumerate(csets):
        fro = None if frobenius is None else frobenius[pos]
        prep = _prepare(pos, validated_constraints(c), fro, tol)
        if isinstance(prep, SVMSolution):
            prep.info["batched"] = False
            out[pos] = prep
        elif prep.red.A.shape[1] + prep.red.Zq.shape[1] > DENSE_MAX:
            out[pos] = _single(prep, tol)
        else:
            groups[prep.key].append(prep)
    tols = Tolerances(tol)  # the single solver's final round
    for (s, *_, n_eq), probs in groups.items():
        size = max(1, _MAX_ENTRIES // max(s * s, 1))
        for start in range(0, len(probs), size):
            chunk = probs[start:start + size]
            t0 = time.perf_counter()
            res = nuclear_ipm_batch(
                np.stack([p.red.A for p in chunk]), np.stack([p.red.Zq for p in chunk]),
                np.stack([p.red.loc for p in chunk]), np.stack([p.red.b for p in chunk]),
                n_eq=n_eq, W0=np.stack([p.W0 for p in chunk]), gap_tol=tols.final_gap,
                max_iter=max_iter, accept_tol=tols.accept)
            share = (time.perf_counter() - t0) / len(chunk)
            for p, r in zip(chunk, res, strict=True):
                t1 = time.perf_counter()
                sol = _certify(p, r.W, r.y, r.iterations, tol)
                if sol.status != OPTIMAL:
                    out[p.pos] = _single(p, tol)
                    continue
                sol.info["batched"] = True
                sol.seconds = p.seconds + share + time.perf_counter() - t1
                out[p.pos] = sol
    return cast(list[SVMSolution], out)  # every position is filled above


def _single(p: _Prepared, tol: float) -> SVMSolution:
    """The single solver's answer (its own warnings pass on)."""
    sol = solve_nuc_constraints(p.pre.cset, tol=tol, frobenius=p.pre.fro)
    sol.info["batched"] = False
    return sol
