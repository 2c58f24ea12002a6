"""Primal-dual interior-point method for the nuclear-norm SVM on a working set.

The problem on a set of constraints ``k`` (reduced coordinates, ``a_k`` in R^r1, ``z_k`` in R^r2)

    (P)  min ||W||_*   s.t.  a_k^T W z_k >= b_k   (= b_k for the first n_eq)

is the semidefinite program, with ``F_k = [[0, a_k z_k^T], [z_k a_k^T, 0]]`` (N x N, N = r1+r2),

    (P') min tr X  s.t.  <F_k, X> - x_k = b_k,  X >= 0 (PSD),  x >= 0   (x only on inequalities)
    (D') max b^T y  s.t. Z = I - sum_k y_k F_k >= 0,  y_k >= 0 on inequalities,

with ``W = 2 X_12`` and ``||sum_k y_k a_k z_k^T||_op <= 1`` equivalent to ``Z >= 0``.  Each
iteration is a Mehrotra predictor-corrector step along the HKM direction; while HKM's steps
are blocked (poor centring) it takes Nesterov-Todd steps instead, until the relative gap
reaches 1e-6, where HKM finishes unless it is blocked there too (``direction="auto"``).

The parts, by job: the SDP's linear maps and Schur complements (:mod:`._sdp`), one step of
either direction with its step lengths (:mod:`._newton`), and the policy -- start, damping,
centring, the stall, stagnation and acceptance rules -- that this loop and the stacked one
(:mod:`._ipm_batch`) both read (:mod:`._policy`).  One iteration costs
``O(s^2 r1 + s^3 + N^3)`` for ``s`` constraints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _policy as policy
from ._newton import hkm_step, nt_step
from ._sdp import Operators

__all__ = ["IPMResult", "IPMState", "nuclear_ipm"]

@dataclass
class IPMState:
    """An iterate of :func:`nuclear_ipm`: ``X`` (N, N), slacks ``x`` (s,), ``y`` (s,), ``Z`` (N, N).

    :meth:`restrict` keeps some constraints, so that a run can go on after constraints that
    are clearly inactive (large slack, tiny multiplier) are dropped.
    """

    X: np.ndarray
    x: np.ndarray
    y: np.ndarray
    Z: np.ndarray

    def restrict(self, keep: np.ndarray) -> IPMState:
        """The same iterate on the constraints ``keep`` (indices)."""
        return IPMState(self.X, self.x[keep], self.y[keep], self.Z)


@dataclass
class IPMResult:
    """Outcome of :func:`nuclear_ipm` (reduced coordinates).

    Attributes
    ----------
    W : ndarray, shape (r1, r2)
        Primal ``2 X_12``.
    y : ndarray, shape (s,)
        Dual multipliers (``>= 0`` on inequalities).
    primal_objective, dual_objective : float
        ``tr X`` and ``b^T y``.
    iterations : int
    converged : bool
        Relative gap and residuals under the target.
    state : IPMState
        The last iterate (to go on from with :func:`nuclear_ipm`'s ``start``).
    stopped_for_polish : bool
        Stopped at ``polish_gap`` with a primal residual left for the caller's polish.
    """

    W: np.ndarray
    y: np.ndarray
    primal_objective: float
    dual_objective: float
    iterations: int
    converged: bool
    state: IPMState
    stopped_for_polish: bool = False


#: largest relative primal residual left to the caller's polish (``polish_gap``)
_POLISH_RESIDUAL = 1e-6


def nuclear_ipm(
    Ar: np.ndarray,
    Zq: np.ndarray,
    grp: np.ndarray,
    b: np.ndarray,
    n_eq: int = 0,
    W0: np.ndarray | None = None,
    gap_tol: float = 1e-12,
    max_iter: int = 100,
    start: IPMState | None = None,
    accept_tol: float | None = None,
    direction: str = "auto",
    centring: float = 0.0,
    polish_gap: float | None = None,
) -> IPMResult:
    """Solve the nuclear-norm SVM on ``s`` constraints by a primal-dual interior-point method.

    Parameters
    ----------
    Ar : ndarray, shape (s, r1)
        Left factors ``a_k`` (rows), reduced and at unit scale.
    Zq : ndarray, shape (g, r2)
        The distinct right factors (queries); constraint ``k`` uses ``Zq[grp[k]]``.
    grp : ndarray of int, shape (s,)
    b : ndarray, shape (s,)
        Right-hand sides.
    n_eq : int
        The first ``n_eq`` constraints are equalities.
    W0 : ndarray, shape (r1, r2), optional
        A starting primal point (e.g. the Frobenius solution); it sets the initial ``X``.
    gap_tol : float
        Target relative duality gap and relative residuals.
    max_iter : int
    start : IPMState, optional
        Go on from this iterate (e.g. a lower-accuracy run on a superset of these
        constraints, restricted with :meth:`IPMState.restrict`); ``W0`` is then ignored.
    accept_tol : float, optional
        Stop early once the best iterate's error (relative gap plus residuals) is below this
        and three iterations have not halved it (rounding limits the last digits).
    direction : {"auto", "hkm", "nt"}
        Search direction.  ``"auto"``: HKM, switching to NT while HKM's steps are blocked
        (poor centring) until the relative gap reaches 1e-6, where HKM finishes (its last
        digits are the more accurate of the two) unless its steps are blocked there too.
    centring : float
        Least centring parameter sigma (Mehrotra's choice otherwise): each step aims at no less
        than ``centring * mu``.  Slower, but it keeps degenerate problems' iterates away from
        the boundary, where their primal steps otherwise stall (the solver's retry of an
        uncertified answer uses 0.2, ``_CENTRING`` in :mod:`.solver`).
    polish_gap : float, optional
        Stop once the relative gap is below this with the dual exactly feasible and the primal
        residual below 1e-6 (``stopped_for_polish``): the caller moves ``W`` onto its active
        rows (:func:`~attnsvm.svm.nuclear._polish.tangent_polish`), which clears the
        residual, instead of spending the last iterations on it.

    Returns
    -------
    IPMResult
    """
    ops = Operators(Ar, Zq, grp)
    s, r1, N = ops.s, ops.r1, ops.N
    ineq = np.arange(s) >= n_eq
    n_in = int(ineq.sum())
    nu = N + n_in
    bnorm = 1.0 + float(np.max(np.abs(b))) if s else 1.0

    # ---- starting point (the policy's): X = xi I from W0, y small and positive
    usable = W0 is not None and bool(np.all(np.isfinite(W0)) and np.any(W0))
    nuc_w0 = float(np.linalg.svd(W0, compute_uv=False).sum()) if W0 is not None and usable else 0.0
    X = np.eye(N) * policy.start_scale(nuc_w0, usable, bnorm, N)
    Gone = ops.adjoint_block(np.where(ineq, 1.0, 0.0))
    g1 = float(np.linalg.norm(Gone, 2)) if Gone.size else 0.0
    c0 = policy.start_dual(g1)
    y = np.where(ineq, c0, 0.0)
    Z = np.eye(N) - ops.adjoint(y)
    AX = ops.apply(X, symmetric=True)
    x = np.zeros(s)
    x[ineq] = policy.start_slack((AX - b)[ineq], float(np.trace(X)), nu)
    Rd: np.ndarray | None = None  # Z = I - A^T(y) exactly, until a restricted start
    if start is not None:
        X, x, y, Z = start.X, start.x.copy(), start.y.copy(), start.Z
        # the multipliers of dropped rows leave a dual residual (full dual steps clear it)
        Rd = np.eye(N) - Z - ops.adjoint(y)

    converged = polished = False
    it = 0
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    best_hist: list[float] = []
    # the certificate's two bounds, each from its own best iterate: the primal upper bound
    # tr X after the rescaling that makes X feasible (times 1 + the equality residual), and
    # the dual lower bound b^T y while Z = I - A^T(y) exactly (so ||A^T(y)||_op <= 1)
    pos = ineq & (b > 0)
    best_ub: tuple[float, np.ndarray] | None = None
    best_lb: tuple[float, np.ndarray] | None = None
    stalls = 0
    nt_phase = endgame_nt = False
    history: list[float] = []
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        AX = ops.apply(X, symmetric=True)
        rp = b - (AX - np.where(ineq, x, 0.0))
        pobj, dobj = float(np.trace(X)), float(b @ y)
        mu = (float(np.sum(X * Z)) + float(x[ineq] @ y[ineq])) / nu
        rel_gap = abs(pobj - dobj) / max(abs(pobj), abs(dobj), 1e-300)  # as certified
        # per constraint, relative to its own right-hand side: the certificate rescales W by
        # the worst of these
        rel_p = float(np.max(np.abs(rp) / np.maximum(np.abs(b), 1e-300 + (b == 0)))) if s else 0.0
        rel_d = 0.0 if Rd is None else float(np.max(np.abs(Rd)))
        err = rel_gap + rel_p + rel_d
        if best is None or err < best[0]:
            best = (err, X.copy(), y.copy())
        AXp = AX[pos]
        if np.all(AXp > 0):
            scale = max(1.0, float(np.max(b[pos] / AXp))) if AXp.size else 1.0
            eq_res = float(np.max(np.abs(rp[:n_eq]))) if n_eq else 0.0
            ub = pobj * scale * (1.0 + eq_res)
            if best_ub is None or ub < best_ub[0]:
                best_ub = (ub, X.copy())
        if Rd is None and (best_lb is None or dobj > best_lb[0]):
            best_lb = (dobj, y.copy())
        if err < gap_tol:
            converged = True
            break
        if (polish_gap is not None and Rd is None and rel_gap < polish_gap
                and rel_p < _POLISH_RESIDUAL):
            polished = True
            break
        best_hist.append(best[0])
        if (accept_tol is not None and it > policy.ACCEPT_LAG
                and policy.accepted(best[0], best_hist[-policy.ACCEPT_LAG - 1], accept_tol)):
            break  # good enough for the caller, and not halved in three iterations
        if policy.rounding_limited(stalls, err, gap_tol):
            break  # rounding limits further progress; the best iterate is certified outside
        history.append(err)
        if (len(history) > policy.STAGNATION_AFTER
                and policy.stagnated(err, history[-policy.STAGNATION_LAG - 1])):
            break  # stagnation (blocked steps): stop; the caller certifies what was reached
        use_nt = direction == "nt" or (direction == "auto" and (
            endgame_nt or policy.nt_direction(nt_phase, rel_gap)))
        out = (nt_step if use_nt else hkm_step)(ops, ineq, X, x, y, Z, rp, Rd, mu, nu, rel_gap, b,
                                                  centring)
        if out is None:
            break
        dX, dx, dy, dZ, ap, ad = out
        stalls = policy.count_stalls(stalls, ap, ad)
        if policy.hkm_blocked(stalls, it) and not use_nt:
            # blocked HKM steps: NT (symmetric scaling) re-centres better; HKM takes over
            # again at a gap of 1e-6, unless it is blocked there too (then NT to the end)
            nt_phase = True
            endgame_nt = rel_gap <= policy.NEAR_GAP
        X = X + ap * dX
        x = x + ap * dx
        y = y + ad * dy
        X = (X + X.T) / 2
        if Rd is None or ad >= 1.0:  # dual feasible: Z formed from y (no residual to track)
            Z = np.eye(N) - ops.adjoint(y)
            Rd = None
        else:
            Z = Z + ad * dZ
            Z = (Z + Z.T) / 2
            Rd = np.eye(N) - Z - ops.adjoint(y)
    state = IPMState(X, x, y, Z)
    if best is not None and not (converged or polished):
        _, X, y = best
        if best_ub is not None and best_lb is not None:
            X, y = best_ub[1], best_lb[1]
    W = 2.0 * X[:r1, r1:]
    return IPMResult(W=W, y=y, primal_objective=float(np.trace(X)),
                     dual_objective=float(b @ y), iterations=it, converged=converged,
                     state=state, stopped_for_polish=polished)
