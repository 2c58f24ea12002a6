"""The rules of the nuclear-norm solver, in one place: the accuracy of each run derived from
the certified tolerance ``tol`` (:class:`Tolerances`), and the interior point's policy --
starting point, step damping, the stall and stagnation rules, when an answer is accepted --
read alike by the single (:mod:`._ipm`) and the stacked (:mod:`._ipm_batch`) interior point.

The functions take a float or an array (one entry per stacked problem) and act elementwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = ["Tolerances", "damping", "mehrotra_sigma", "rounding_limited", "stagnated",
           "accepted", "start_scale", "start_dual", "start_slack", "count_stalls",
           "hkm_blocked", "nt_direction", "leaves_stack", "STALL_STEP", "STALLS_TO_NT",
           "NT_AFTER", "NEAR_GAP", "STAGNATION_AFTER", "STAGNATION_LAG", "ACCEPT_LAG"]

F = TypeVar("F", float, np.ndarray)

# ----------------------------------------------------------------- tolerance ladder
#: accuracy (relative gap) of the rounds that only find the working set
SCOUT_GAP = 1e-3
#: the first round starts from the Frobenius support, far from the answer: coarser still
FIRST_SCOUT_GAP = 1e-2
#: the "near-active" margin (relative slack) of rows that a scouting round adds
SCOUT_NEAR = 1e-3
#: the final run stops at this share of tol in relative gap (dual feasible, primal residual
#: below 1e-6) and hands its answer to the tangent polish; full accuracy only if that falls short
POLISH_SHARE = 0.25
#: an interior-point run is accepted (stopped early) below this share of tol
ACCEPT_SHARE = 0.25


@dataclass(frozen=True)
class Tolerances:
    """Every accuracy target of one solve, derived from the certified relative gap ``tol``.

    ``final_gap`` (``min(1e-12, 1e-3 tol)``): the target of a certified run; ``accept``
    (``tol / 4``): a run stops early there once progress stalls; ``polish`` (``tol / 4``): a
    final run stops there for the tangent polish; ``outside`` (``1e-3 tol``): a row outside the
    working set violated by more joins it after a certified run; ``absorb`` (``tol / 4``):
    violations the certificate's rescaling absorbs.
    """

    tol: float

    @property
    def final_gap(self) -> float:
        return min(1e-12, self.tol * 1e-3)

    def round_gap(self, final: bool, first: bool) -> float:
        """The target relative gap of a working-set round."""
        return self.final_gap if final else FIRST_SCOUT_GAP if first else SCOUT_GAP

    @property
    def accept(self) -> float:
        return ACCEPT_SHARE * self.tol

    @property
    def polish(self) -> float:
        return POLISH_SHARE * self.tol

    @property
    def absorb(self) -> float:
        return 0.25 * self.tol

    def outside(self, final: bool) -> float:
        """Relative violation above which a row outside the working set joins it: a certified
        round adds violated rows, a scouting round also the near-active ones."""
        return 1e-3 * self.tol if final else -SCOUT_NEAR


# ----------------------------------------------------------------- interior-point policy
#: the start: y = START_DUAL / ||A^T(1)||_op on inequalities (so Z = I - A^T(y) >= I / 2) ...
START_DUAL = 0.5
#: ... and slacks at least this share of tr X / nu
START_SLACK = 1e-2
#: relative gap below which a run is "near the optimum" (finer damping; HKM finishes)
NEAR_GAP = 1e-6
#: a step shorter than this (primal or dual) counts as a stall
STALL_STEP = 0.2
#: this many stalls in a row switch HKM to NT (after iteration NT_AFTER: short first steps
#: are the start's)
STALLS_TO_NT, NT_AFTER = 3, 5
#: this many stalls in a row below the rounding floor end a run (rounding limits progress)
STALLS_ROUNDING = 4
#: stagnation: after STAGNATION_AFTER iterations, an error above half of that of
#: STAGNATION_LAG iterations back ends a run (blocked steps)
STAGNATION_AFTER, STAGNATION_LAG = 25, 15
#: acceptance: the best error below ``accept_tol`` and not halved in ACCEPT_LAG iterations
ACCEPT_LAG = 3


def damping(rel_gap: F) -> F:
    """Fraction-to-the-boundary factor of a step: 0.98 far from the optimum, 0.995 near it."""
    if isinstance(rel_gap, np.ndarray):
        return np.where(rel_gap > NEAR_GAP, 0.98, 0.995)
    return 0.98 if rel_gap > NEAR_GAP else 0.995


def mehrotra_sigma(mu_aff: F, mu: F) -> F:
    """Mehrotra's centring ``min(1, (mu_aff / mu)^3)``, 0 where ``mu <= 0``."""
    if isinstance(mu, np.ndarray):
        pos = mu > 0
        return np.where(pos, np.minimum(1.0, (mu_aff / np.where(pos, mu, 1.0)) ** 3), 0.0)
    return min(1.0, (mu_aff / mu) ** 3) if mu > 0 else 0.0


def start_scale(nuc_w0: F, usable: bool | np.ndarray, bnorm: F, N: int) -> F:
    """``xi`` of the starting ``X = xi I`` (N x N): ``||W0||_* / N`` where the starting point
    ``W0`` is usable (finite, nonzero: ``tr X`` is then an upper bound on the optimum, and
    this start centres better than ``W0``'s own factors), else ``max(1, bnorm)``."""
    if isinstance(nuc_w0, np.ndarray):
        return np.where(usable, nuc_w0 / N, np.maximum(1.0, bnorm))
    return nuc_w0 / N if usable else max(1.0, bnorm)


def start_slack(surplus: F, trace: F, nu: int) -> F:
    """Starting slacks of the inequalities: ``max(A(X) - b, START_SLACK tr X / nu, 0)``
    (``surplus = A(X) - b``)."""
    return np.maximum(np.maximum(surplus, 0.0), trace / nu * START_SLACK)


def start_dual(g1: F) -> F:
    """The starting multiplier on every inequality, for ``g1 = ||A^T(1_ineq)||_op``."""
    return START_DUAL / np.maximum(g1, 1e-12) if isinstance(g1, np.ndarray) else (
        START_DUAL / max(g1, 1e-12))


def rounding_limited(stalls: F, err: F, gap_tol: float) -> F:
    """Stalled steps with the error already near rounding: further progress is rounding's."""
    return (stalls >= STALLS_ROUNDING) & (err < min(1e3 * gap_tol, 1e-10))


def stagnated(err: F, err_then: F) -> F:
    """The error has not halved since :data:`STAGNATION_LAG` iterations back."""
    return err > 0.5 * err_then


def accepted(best: F, best_then: F, accept_tol: float) -> F:
    """The best error is good enough for the caller and has not halved since
    :data:`ACCEPT_LAG` iterations back."""
    return (best < accept_tol) & (best > 0.5 * best_then)


def count_stalls(stalls: Any, ap: Any, ad: Any) -> Any:
    """The stall count after a step of lengths ``ap``, ``ad``: one more after a short step
    (:data:`STALL_STEP`), else 0."""
    if isinstance(stalls, np.ndarray):
        return np.where(np.minimum(ap, ad) < STALL_STEP, stalls + 1, 0)
    return stalls + 1 if min(ap, ad) < STALL_STEP else 0


def hkm_blocked(stalls: Any, it: int) -> Any:
    """HKM's steps are blocked (poor centring): :data:`STALLS_TO_NT` stalls in a row after
    iteration :data:`NT_AFTER`; NT takes over."""
    return (stalls >= STALLS_TO_NT) & (it > NT_AFTER)


def nt_direction(nt_phase: Any, rel_gap: Any) -> Any:
    """A run that HKM's blocked steps switched to NT steps with NT until the relative gap is
    :data:`NEAR_GAP` (HKM's last digits are the more accurate of the two)."""
    return nt_phase & (rel_gap > NEAR_GAP)


def leaves_stack(stalls: Any, rel_gap: Any) -> Any:
    """The stacked interior point: HKM blocked (:data:`STALLS_TO_NT` stalls in a row) at a
    relative gap of at most :data:`NEAR_GAP`, where the single interior point goes on with NT
    steps to the end; the problem leaves the stack (certified as it is, else solved again by
    the single solver)."""
    return (stalls >= STALLS_TO_NT) & (rel_gap <= NEAR_GAP)
