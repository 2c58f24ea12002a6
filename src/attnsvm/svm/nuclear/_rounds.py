"""The working-set rounds of the nuclear solver (:func:`.solver.solve_nuc_constraints`).

Low-accuracy ("scouting") rounds find the working set: constraints violated (or nearly
active) at a round's solution join ``S``, clearly inactive ones (large slack) leave it, once
each; from the third round on, a round whose set gained few rows goes on from the previous
scouting iterate, carried to the new set.  When a round adds nothing, the same run goes on,
on its near-active rows, to full accuracy ("final"); constraints violated then join ``S`` for
another final round, which goes on from the last scouting iterate carried to the new set.
A final run may stop early for the tangent polish; when that does not certify, the same run
goes on to full accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..solution import OPTIMAL, SVMSolution
from . import _policy as policy
from ._ipm import IPMResult, IPMState, nuclear_ipm
from ._presolve import Presolved, Reduced, carry_state

__all__ = ["WorkingSetRounds", "initial_set"]

#: Frobenius-slack threshold (relative) and share of the support added to the first working set
_NEAR, _EXTRA = 0.5, 0.2
#: relative slack above which a working-set constraint is dropped (clearly inactive) ...
_DROP = 1e-2
#: ... or above this multiple of the round's target gap, if larger (coarse rounds)
_DROP_FACTOR = 20.0
#: a round that adds at most this fraction of its working set (after the first) goes on from
#: the last scouting run's iterate (carried to the new rows and bases) instead of starting cold
_WARM_ADDS = 0.1

#: certify(W, y, info) -> the certified solution (the tangent polish tried when it falls short)
Certify = Callable[[np.ndarray, np.ndarray, Mapping[str, object]], SVMSolution]


def initial_set(values: np.ndarray, b: np.ndarray, fro_dual: np.ndarray, n_eq: int,
                warm: np.ndarray | None) -> np.ndarray:
    """The first working set: the equalities, the Frobenius support, the warm start's rows
    and the most nearly active rows at the Frobenius solution (``values`` (m,))."""
    m = values.size
    S = np.zeros(m, dtype=bool)
    S[:n_eq] = True
    S |= fro_dual > 0
    if warm is not None:
        S[warm] = True
    # near-active constraints at the Frobenius solution: the nuclear support is usually larger
    rel = (values - b) / np.maximum(1.0, np.abs(b))
    cand = np.flatnonzero(~S & (rel < _NEAR))
    extra = max(8, int(_EXTRA * S.sum()))
    if cand.size > extra:
        cand = cand[np.argsort(rel[cand])[:extra]]
    S[cand] = True
    return np.flatnonzero(S)


class WorkingSetRounds:
    """The rounds on one problem, from a first working set ``S`` (sorted indices).

    After :meth:`run`: ``red`` is the last round's reduced set, ``S`` the working set,
    ``final`` whether the rounds reached a certified run, ``warm`` whether its last run
    started from a carried iterate, and :meth:`info` the counts for the certificate.
    """

    def __init__(self, pre: Presolved, tols: policy.Tolerances, S: np.ndarray,
                 implied: np.ndarray, live: int) -> None:
        self.pre, self.tols = pre, tols
        self.S = S
        self.implied = implied
        self.final = S.size == live  # the whole problem at once: one certified round
        m = pre.m
        self.dropped = np.zeros(m, dtype=bool)  # a constraint is dropped once only
        self.W_best = pre.W_fro  # unit scale
        self.y_full = np.zeros(m)
        self.iters = self.rounds = 0
        self.resume: tuple[Reduced, IPMState] | None = None
        self.scout: tuple[Reduced, IPMState] | None = None  # the last scouting set, iterate
        self.carry = self.warm = False
        self.deep = False  # the final run's polish fell short: full accuracy from then on
        self.red: Reduced | None = None
        self.gap_tol = tols.round_gap(self.final, True)  # the current round's target

    def info(self) -> dict[str, int]:
        return {"working_set": int(self.S.size), "rounds": self.rounds,
                "ipm_iterations": self.iters}

    def run(self, max_rounds: int, certify: Certify) -> SVMSolution:
        """Rounds until the working set is complete (or ``max_rounds``); the certified answer
        (``certify``: see :data:`Certify`)."""
        for self.rounds in range(1, max_rounds + 1):  # noqa: B007 - reported
            res = self._solve()
            viol = self._violations()
            bad = self._outside(viol)
            slack = self._clearly_inactive(viol)
            absorbable = bad.size > 0 and np.max(viol[bad]) <= self.tols.absorb
            if self.final and (absorbable or (bad.size == 0 and res.stopped_for_polish)):
                # violations the certificate's rescaling absorbs, or a run stopped at a small
                # gap with its primal residual left to the polish: keep this answer if it
                # certifies (on every row), instead of a new round
                trial = certify(self.pre.scale.lift(self.W_best), self.y_full, self.info())
                if trial.status == OPTIMAL:
                    return trial
                if bad.size == 0:  # the polish fell short: the same run goes on
                    self.deep = True
                    assert self.red is not None
                    self.resume = (self.red, res.state)
                    continue
            if bad.size == 0:
                if self.final:
                    break
                self._go_final(res, slack)
                continue
            self._grow(bad, viol, slack)
        return certify(self.pre.scale.lift(self.W_best), self.y_full, self.info())

    # ----------------------------------------------------------------- one round
    def _solve(self) -> IPMResult:
        """The round's interior-point run (a new one, or the last one going on)."""
        tols, final = self.tols, self.final
        gap_tol = tols.round_gap(final, self.rounds == 1)
        self.gap_tol = gap_tol
        polish_gap = tols.polish if final and not self.deep else None
        if self.resume is None:
            red = self.pre.apply(self.S)
            start = (carry_state(*self.scout, red) if self.carry and self.scout is not None
                     else None)
            self.warm = start is not None
            res = nuclear_ipm(red.A, red.Zq, red.loc, red.b, n_eq=red.n_eq,
                              W0=red.apply(self.W_best), gap_tol=gap_tol, start=start,
                              accept_tol=tols.accept if final else None, polish_gap=polish_gap)
        else:
            red, state = self.resume
            self.resume = None
            res = nuclear_ipm(red.A, red.Zq, red.loc, red.b, n_eq=red.n_eq, gap_tol=gap_tol,
                              start=state, accept_tol=tols.accept, polish_gap=polish_gap)
        self.red = red
        self.iters += res.iterations
        if not final:
            self.scout = (red, res.state)
        self.W_best, self.y_full = red.lift(res.W, res.y, self.pre.m)
        return res

    def _violations(self) -> np.ndarray:
        """Relative violation of every row at this round's solution (equalities 0, implied
        rows -inf: neither ever joins the set)."""
        bb = self.pre.cset.rhs
        viol = (bb - self.pre.unit.values(self.W_best)) / np.maximum(1.0, np.abs(bb))
        viol[: self.pre.cset.n_eq] = 0.0  # equalities are all in S
        viol[self.implied] = -np.inf  # never in S
        return viol

    def _outside(self, viol: np.ndarray) -> np.ndarray:
        """Rows outside the set to add: violated (scouting: or nearly active)."""
        inS = np.zeros(viol.size, dtype=bool)
        inS[self.S] = True
        bad = np.flatnonzero(~inS & (viol > self.tols.outside(self.final)))
        if (not self.final and bad.size <= max(8, self.S.size // 100)
                and np.all(viol[bad] < 1e-2)):
            # a few marginal rows: most are satisfied at the optimum; the final check
            # catches (and adds) those that are not
            bad = bad[:0]
        return bad

    def _clearly_inactive(self, viol: np.ndarray) -> np.ndarray:
        """Rows clearly inactive at this solution (mask): out of the next set, once (a coarse
        solution tells them apart only at a larger slack)."""
        slack = ~self.dropped & (-viol > max(_DROP, _DROP_FACTOR * self.gap_tol))
        slack[: self.pre.cset.n_eq] = False
        return slack

    def _go_final(self, res: IPMResult, slack: np.ndarray) -> None:
        """The working set is complete: the same run goes on, on its near-active rows."""
        assert self.red is not None
        red = self.red
        self.final = True
        near = ~slack[red.idx]
        self.dropped[red.idx[~near]] = True
        pos = np.flatnonzero(near)
        self.resume = (red.restrict(pos), res.state.restrict(pos))
        self.S = red.idx[pos]

    def _grow(self, bad: np.ndarray, viol: np.ndarray, slack: np.ndarray) -> None:
        """Add the worst outside rows, drop the clearly inactive ones."""
        S = self.S
        add = max(16, S.size // 2) if self.final else bad.size
        bad = bad[np.argsort(-viol[bad])[:add]]
        # few rows added: go on from the last scouting iterate, carried to the new set, not
        # from a cold start -- after a certified round (rows it missed), and after every
        # scouting round but the first (whose coarse iterate is too far from the answer)
        self.carry = (self.final or self.rounds >= 2) and bad.size <= _WARM_ADDS * S.size
        drop = S[slack[S]]
        self.dropped[drop] = True
        self.S = np.union1d(np.setdiff1d(S, drop), bad)
