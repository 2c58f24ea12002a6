"""Nuclear-norm Att-SVM ``W_*^mm``, the limit direction of the (K, Q) parametrization.

    W_*^mm = argmin ||W||_*  s.t.  a_k^T W z_k >= b_k   (= b_k for k < n_eq),  a_k z_k^T = G_k.

A dedicated method, exact up to floating point and certified:

1. The exact Frobenius solver runs first.  Feasibility does not depend on the norm, so an
   infeasible problem is returned at once with its Farkas certificate; otherwise the Frobenius
   support seeds the working set.
2. On a working set ``S`` of constraints, reduced to the ranges of its factors
   (``W = U M V^T``), a primal-dual interior-point method solves the semidefinite form of the
   problem (:mod:`._nuclear_ipm`): its Newton system is built from Hadamard products of
   ``s x s`` Gram-like blocks, never from the ``m x d^2`` constraint matrix.
3. Low-accuracy rounds find the working set: constraints violated (or nearly active) at a
   round's solution join ``S``, clearly inactive ones (large slack) leave it, once each; from
   the third round on, a round whose set gained few rows goes on from the previous round's
   iterate, carried to the new set.  When a round adds nothing, the same run goes on, on its
   near-active rows, to full accuracy; constraints violated then join ``S`` for another
   full-accuracy round, which goes on from the last low-accuracy iterate carried to the new
   set (a cold start when that falls short).
4. Certificate: ``W`` is rescaled to be exactly feasible (upper bound ``||W||_*``), the dual
   weights ``mu >= 0`` are divided by ``||sum_k mu_k G_k||_op`` (lower bound ``sum mu_k b_k``),
   and the relative difference of the bounds is the certified gap.  The rank is read from the
   spectra of ``W`` and of the dual matrix (see :func:`certified_rank`), not from a tolerance.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..._numerics import row_space_basis
from ..._validation import as_float_array, check_positive
from ...constraints import ConstraintSet
from ...exceptions import ConvergenceWarning, InvalidInputError
from ...instance import Instance
from .._instance import solve_on_instance
from ..frobenius import solve_fro_constraints
from ..norms import row_scale
from ..solution import INACCURATE, INFEASIBLE, OPTIMAL, SVMSolution
from ._implied import implied_rows
from ._ipm import IPMState, nuclear_ipm
from ._polish import face_candidates, tangent_polish

__all__ = ["solve_nuc", "solve_nuc_constraints", "certified_rank", "certify_nuclear"]

#: Frobenius-slack threshold (relative) and share of the support added to the first working set
_NEAR, _EXTRA = 0.5, 0.2
#: accuracy of the rounds that only find the working set, and the "near-active" margin they add
_SCOUT_GAP, _SCOUT_NEAR = 1e-3, 1e-3
#: the first round starts from the Frobenius support, far from the answer: coarser still
_FIRST_SCOUT_GAP = 1e-2
#: relative slack above which a working-set constraint is dropped (clearly inactive) ...
_DROP = 1e-2
#: ... or above this multiple of the round's target gap, if larger (coarse rounds)
_DROP_FACTOR = 20.0
#: problems with at most this many constraints are solved whole
_SMALL = 300
#: a round that adds at most this fraction of its working set (after the first) goes on from
#: the last scouting run's iterate (carried to the new rows and bases) instead of starting cold
_WARM_ADDS = 0.1
#: how far a carried iterate is moved towards the centre (X to a multiple of I, Z to I)
_BACK_OFF = 0.1
#: the final run stops at this share of tol in relative gap (dual feasible, primal residual
#: below 1e-6) and hands its answer to the tangent polish; full accuracy only if that falls short
_POLISH_GAP = 0.25
#: least centring parameter of the retry of an answer left uncertified (degenerate problems)
_CENTRING = 0.2
METHOD = ("working-set interior point (HKM, NT where HKM stalls; rank-one Schur complement), "
          "certified")


def certified_rank(W: np.ndarray, G: np.ndarray) -> dict[str, float | int | bool]:
    """Rank of a nuclear-norm solution read from a certified spectral gap.

    With ``||G||_op <= 1``, von Neumann's inequality gives
    ``eps = ||W||_* - <G, W> >= sum_i sigma_i(W) (1 - sigma_i(G))``, every term non-negative,
    so ``sigma_i(W) <= eps / (1 - sigma_i(G))`` for every ``i``.  The rank ``r`` is the one
    that best separates ``sigma_r(W)`` from that bound on the tail,
    ``ratio_r = sigma_r(W) (1 - sigma_{r+1}(G)) / eps``; it is certified when the ratio exceeds
    1e3 (the tail of ``W`` is provably a thousandth of its smallest kept singular value).

    Parameters
    ----------
    W : ndarray, shape (d1, d2)
    G : ndarray, shape (d1, d2)
        Dual matrix with ``||G||_op <= 1``.

    Returns
    -------
    dict
        ``rank``, ``rank_certified``, ``rank_separation`` (the ratio), ``spectral_gap``
        (``1 - sigma_{r+1}(G)``), ``complementarity_eps``.
    """
    sw = np.linalg.svd(W, compute_uv=False)
    sg = np.linalg.svd(G, compute_uv=False)
    k = min(sw.size, sg.size)
    nuc = float(sw.sum())
    if k == 0 or nuc == 0.0:
        return {"rank": 0, "rank_certified": True, "rank_separation": float("inf"),
                "spectral_gap": 1.0, "complementarity_eps": 0.0}
    eps = max(nuc - float(np.vdot(G, W)), np.finfo(float).eps * nuc)
    best_r, best_ratio, best_gap = k, 0.0, 0.0
    for r in range(1, k + 1):
        gap = 1.0 - float(sg[r]) if r < sg.size else 1.0
        ratio = float(sw[r - 1]) * max(gap, 0.0) / eps
        if ratio > best_ratio:
            best_r, best_ratio, best_gap = r, ratio, gap
    return {"rank": int(best_r), "rank_certified": bool(best_ratio > 1e3),
            "rank_separation": best_ratio, "spectral_gap": best_gap,
            "complementarity_eps": eps}


@dataclass
class _Reduced:
    """A working set in reduced coordinates (``W = U M V^T``), rows at unit norm, repeated
    constraints merged: what one interior-point run solves.

    ``A`` (s, r1), ``Zq`` (g, r2) and ``loc`` (s,) are its factors, ``b`` (s,) its right-hand
    sides, ``idx`` (s,) the original constraint indices, ``rs`` (s,) the row scales
    (``y_original = y / rs``).
    """

    U: np.ndarray
    V: np.ndarray
    A: np.ndarray
    Zq: np.ndarray
    loc: np.ndarray
    b: np.ndarray
    idx: np.ndarray
    rs: np.ndarray
    n_eq: int

    @classmethod
    def build(cls, unit: ConstraintSet, S: np.ndarray, Zq_all: np.ndarray, ginv: np.ndarray,
              n_eq: int) -> _Reduced:
        gS = np.unique(ginv[S])
        U = row_space_basis(unit.A[S])
        V = row_space_basis(Zq_all[gS])
        loc = np.searchsorted(gS, ginv[S])
        Ar = unit.A[S] @ U
        Zq = Zq_all[gS] @ V
        # every constraint at unit norm (the problem is invariant to scaling a row and its b)
        na = np.linalg.norm(Ar, axis=1)
        na[na == 0] = 1.0
        nz = np.linalg.norm(Zq, axis=1)
        nz[nz == 0] = 1.0
        rs = na * nz[loc]
        An, Zn, bn = Ar / na[:, None], Zq / nz[:, None], unit.rhs[S] / rs
        # repeated constraints make the Newton system singular: keep one copy of each
        key = np.concatenate([An, Zn[loc], bn[:, None], (S < n_eq)[:, None]], axis=1)
        _, keep = np.unique(key, axis=0, return_index=True)
        keep = np.sort(keep)  # equalities (the first n_eq indices) stay first
        return cls(U, V, An[keep], Zn, loc[keep], bn[keep], S[keep], rs[keep],
                   int(np.sum(S[keep] < n_eq)))

    def restrict(self, pos: np.ndarray) -> _Reduced:
        """The rows ``pos`` (sorted positions; every equality among them), same bases."""
        return _Reduced(self.U, self.V, self.A[pos], self.Zq, self.loc[pos], self.b[pos],
                        self.idx[pos], self.rs[pos], int(np.sum(pos < self.n_eq)))


def _carry_state(old: _Reduced, state: IPMState, new: _Reduced) -> IPMState | None:
    """An interior-point iterate on the working set ``old`` carried to the set ``new`` (rows
    dropped, rows added, bases changed), or None when its dual slack cannot be kept definite.

    ``X`` and ``Z`` are mapped through the bases' overlap ``T`` (``X`` gets ``mu`` on the new
    directions, ``Z`` the identity, as at a cold start); kept rows keep their multipliers and
    slacks (rescaled to the new row norms); added rows get a slack of at least ``10 mu`` and a
    multiplier ``mu / slack``, shrunk until ``Z - A^T(y_new)`` stays positive definite (the
    slack then grown to keep ``x y = mu``).  The dual residual left by dropped rows and
    changed bases is the interior point's to clear.
    """
    r1o, r1n = old.U.shape[1], new.U.shape[1]
    No, Nn = state.X.shape[0], r1n + new.V.shape[1]
    T = np.zeros((Nn, No))
    T[:r1n, :r1o] = new.U.T @ old.U
    T[r1n:, r1o:] = new.V.T @ old.V
    ineq_o = np.arange(old.idx.size) >= old.n_eq
    nu = No + int(ineq_o.sum())
    mu = (float(np.sum(state.X * state.Z)) + float(state.x[ineq_o] @ state.y[ineq_o])) / nu
    TT = T @ T.T
    X = T @ state.X @ T.T + mu * (np.eye(Nn) - TT)
    Z = np.eye(Nn) + T @ (state.Z - np.eye(No)) @ T.T
    # back off towards the centre (the iterate sits near the boundary)
    X = (1.0 - _BACK_OFF) * X + _BACK_OFF * float(np.trace(X)) / Nn * np.eye(Nn)
    Z = (1.0 - _BACK_OFF) * Z + _BACK_OFF * np.eye(Nn)
    mu = (float(np.sum(X * Z)) + float(state.x[ineq_o] @ state.y[ineq_o])) / nu
    # rows by original index (both idx arrays ascending)
    at = np.minimum(np.searchsorted(old.idx, new.idx), old.idx.size - 1)
    kept = old.idx[at] == new.idx
    y = np.zeros(new.idx.size)
    x = np.zeros(new.idx.size)
    y[kept] = state.y[at[kept]] / old.rs[at[kept]] * new.rs[kept]
    x[kept] = state.x[at[kept]] * old.rs[at[kept]] / new.rs[kept]
    added = np.flatnonzero(~kept)
    ineq = np.arange(new.idx.size) >= new.n_eq
    if np.any(added < new.n_eq):
        return None  # (equalities are in every working set)
    X12 = X[:r1n, r1n:]
    vals = 2.0 * np.einsum("kd,kd->k", new.A[added], new.Zq[new.loc[added]] @ X12.T)
    x[added] = np.maximum(vals - new.b[added], 10.0 * mu)
    y_add = mu / x[added]
    for _ in range(12):
        G = (new.A[added] * y_add[:, None]).T @ new.Zq[new.loc[added]]
        Zt = Z.copy()
        Zt[:r1n, r1n:] -= G
        Zt[r1n:, :r1n] -= G.T
        try:
            np.linalg.cholesky(Zt)
        except np.linalg.LinAlgError:
            y_add = y_add / 10.0
            continue
        y[added] = y_add
        x[added] = np.maximum(x[added], mu / y_add)  # centred: x y = mu on the added rows
        x[~ineq] = 0.0
        return IPMState(X, x, y, Zt)
    return None


def _initial_set(values: np.ndarray, b: np.ndarray, fro_dual: np.ndarray, n_eq: int,
                 warm: np.ndarray | None) -> np.ndarray:
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


def validated_constraints(constraints: ConstraintSet) -> ConstraintSet:
    """The constraint set with float arrays ``A`` (m, d1), ``Zc`` (m, d2), ``b`` (m,), checked
    (one-line :class:`InvalidInputError` naming the field otherwise; ``m >= 1``)."""
    A = as_float_array("A", constraints.A, 2)
    Zc = as_float_array("Zc", constraints.Zc, 2, (A.shape[0], None))
    m = A.shape[0]
    if m == 0:
        raise InvalidInputError("The constraint set must hold at least one constraint. Got m=0.")
    bb = as_float_array("b", constraints.rhs, 1, (m,))
    idx = np.asarray(constraints.index, dtype=np.int64)
    return ConstraintSet(A=A, Zc=Zc, index=idx, b=bb, n_eq=int(constraints.n_eq))


def solve_nuc_constraints(
    constraints: ConstraintSet,
    *,
    tol: float = 1e-9,
    warm_start: SVMSolution | np.ndarray | None = None,
    max_rounds: int = 30,
    frobenius: SVMSolution | None = None,
) -> SVMSolution:
    """Nuclear-norm SVM ``min ||W||_* s.t. A[k]^T W Zc[k] >= b_k`` (``= b_k``, ``k < n_eq``).

    Parameters
    ----------
    constraints : ConstraintSet
        Factors ``A`` (m, d1), ``Zc`` (m, d2), ``index`` (m, 2) (rows with equal ``i`` share
        ``Zc``), ``b`` (default ones) and ``n_eq``.
    tol : float
        Largest certified relative gap (and constraint violation) reported as ``optimal``;
        anything looser is ``inaccurate`` with a :class:`ConvergenceWarning`.
    warm_start : SVMSolution or ndarray of int, optional
        A related problem's solution (its positive-multiplier constraints) or constraint
        indices to put in the first working set.
    max_rounds : int
        Cap on working-set rounds.
    frobenius : SVMSolution, optional
        The exact Frobenius solution of these same constraints when the caller already has it
        (it decides feasibility and seeds the working set); solved here otherwise.

    Returns
    -------
    SVMSolution
        ``dual`` holds ``mu >= 0`` with ``||sum_k mu_k G_k||_op <= 1``; ``info`` has
        ``certified_gap``, ``lower_bound``, ``upper_bound``, ``rank`` (with
        ``rank_certified``, ``spectral_gap``), ``working_set`` and ``ipm_iterations``.

    Examples
    --------
    >>> from attnsvm import random_instance
    >>> sol = solve_nuc_constraints(random_instance(6, 8, 10, seed=0).constraints())
    >>> sol.status, sol.info["certified_gap"] < 1e-9
    ('optimal', True)
    """
    t0 = time.perf_counter()
    check_positive("tol", tol)
    cset = validated_constraints(constraints)
    m, n_eq, bb = cset.m, int(cset.n_eq), cset.rhs

    fro = (frobenius if frobenius is not None and frobenius.norm == "fro"
           and frobenius.constraints.m == m and frobenius.status != INACCURATE
           else solve_fro_constraints(cset))
    if fro.status == INFEASIBLE:
        sol = SVMSolution(INFEASIBLE, "nuc", None, cset, bb, np.zeros(m),
                          certificate=fro.certificate, n_eq=n_eq,
                          solver=METHOD + " (certificate: exact working-set Frobenius)")
        sol.seconds = time.perf_counter() - t0
        return sol

    # unit scale: A -> A / sA, Zc -> Zc / sZ, W -> sA sZ W
    sA, sZ = row_scale(cset.A), row_scale(cset.Zc)
    unit = cset.scaled(sA, sZ)
    Zq_all, ginv = unit.groups  # (g, d2) distinct queries, (m,) the group of each row
    assert fro.W is not None
    W_unit = fro.W * (sA * sZ)
    warm_idx = None
    if isinstance(warm_start, SVMSolution):
        warm_idx = np.flatnonzero(warm_start.dual > 0) if warm_start.dual.size == m else None
    elif warm_start is not None:
        warm_idx = np.asarray(warm_start, dtype=np.int64)
    # rows implied by another row and the equalities of their query (Graph-SVMs): kept out of
    # every working set (they make the Newton system singular), multiplier zero
    implied = implied_rows(unit.A, ginv, bb, n_eq)
    live = np.flatnonzero(~implied)
    if live.size <= _SMALL:
        S = live  # small problems: every constraint, one certified round
    else:
        S = np.setdiff1d(_initial_set(unit.values(W_unit), bb, fro.dual, n_eq, warm_idx),
                         np.flatnonzero(implied))

    W_best = W_unit
    y_full = np.zeros(m)
    iters = 0
    rounds = 0
    final = S.size == live.size  # scouting rounds first (low accuracy), then one certified round
    dropped = np.zeros(m, dtype=bool)  # a constraint is dropped from the working set once only
    resume: tuple[_Reduced, IPMState] | None = None
    scout: tuple[_Reduced, IPMState] | None = None  # the last scouting run's set and iterate
    carry = warm = False
    absorbed: SVMSolution | None = None  # certified with outside violations rescaled away
    deep = False  # the final run's polish fell short: full accuracy from then on
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - reported
        gap_tol = (min(1e-12, tol * 1e-3) if final
                   else _FIRST_SCOUT_GAP if rounds == 1 else _SCOUT_GAP)
        polish_gap = _POLISH_GAP * tol if final and not deep else None
        if resume is None:
            red = _Reduced.build(unit, S, Zq_all, ginv, n_eq)
            start = _carry_state(*scout, red) if carry and scout is not None else None
            warm = start is not None
            res = nuclear_ipm(red.A, red.Zq, red.loc, red.b, n_eq=red.n_eq,
                              W0=red.U.T @ W_best @ red.V, gap_tol=gap_tol, start=start,
                              accept_tol=0.25 * tol if final else None, polish_gap=polish_gap)
        else:
            red, state = resume
            resume = None
            res = nuclear_ipm(red.A, red.Zq, red.loc, red.b, n_eq=red.n_eq, gap_tol=gap_tol,
                              start=state, accept_tol=0.25 * tol, polish_gap=polish_gap)
        iters += res.iterations
        if not final:
            scout = (red, res.state)
        W_best = red.U @ res.W @ red.V.T
        y_full = np.zeros(m)
        y_full[red.idx] = res.y / red.rs
        viol = (bb - unit.values(W_best)) / np.maximum(1.0, np.abs(bb))
        viol[:n_eq] = 0.0  # equalities are all in S
        viol[implied] = -np.inf  # never in S
        inS = np.zeros(m, dtype=bool)
        inS[S] = True
        bad = np.flatnonzero(~inS & (viol > (1e-3 * tol if final else -_SCOUT_NEAR)))
        # clearly inactive at this solution: out of the next working set (once)
        # (a coarse solution tells them apart only at a larger slack)
        slack = ~dropped & (-viol > max(_DROP, _DROP_FACTOR * gap_tol))
        slack[:n_eq] = False
        if not final and bad.size <= max(8, S.size // 100) and np.all(viol[bad] < 1e-2):
            # a few marginal rows: most are satisfied at the optimum; the final check
            # catches (and adds) those that are not
            bad = bad[:0]
        absorbable = bad.size > 0 and np.max(viol[bad]) <= 0.25 * tol
        if final and (absorbable or (bad.size == 0 and res.stopped_for_polish)):
            # violations the certificate's rescaling absorbs, or a run stopped at a small gap
            # with its primal residual left to the polish: keep this answer if it certifies
            # (on every row), instead of a new round
            trial = _certify_polished(cset, W_best / (sA * sZ), y_full, tol, fro,
                                      {"working_set": int(S.size), "rounds": rounds,
                                       "ipm_iterations": iters})
            if trial.status == OPTIMAL:
                absorbed = trial
                break
            if bad.size == 0:  # the polish fell short: the same run goes on to full accuracy
                deep = True
                resume = (red, res.state)
                continue
        if bad.size == 0:
            if final:
                break
            final = True
            # the working set is complete: go on with this same run, on its near-active rows
            near = ~slack[red.idx]
            dropped[red.idx[~near]] = True
            pos = np.flatnonzero(near)
            resume = (red.restrict(pos), res.state.restrict(pos))
            S = red.idx[pos]
            continue
        add = max(16, S.size // 2) if final else bad.size
        bad = bad[np.argsort(-viol[bad])[:add]]
        # few rows added: go on from the last scouting iterate, carried to the new set, not
        # from a cold start -- after the certified round (rows it missed), and after every
        # scouting round but the first (whose coarse iterate, carried, measured slower than
        # a cold start); on MiniLM layer 0 the later scouting rounds then take 6 to 9
        # iterations instead of 15, and the heads' solves 188 s instead of 214 s in all
        carry = (final or rounds >= 2) and bad.size <= _WARM_ADDS * S.size
        drop = S[slack[S]]
        dropped[drop] = True
        S = np.union1d(np.setdiff1d(S, drop), bad)

    info = {"working_set": int(S.size), "rounds": rounds, "ipm_iterations": iters}
    sol = absorbed if absorbed is not None else _certify_polished(
        cset, W_best / (sA * sZ), y_full, tol, fro, info)
    # cold starts on the last round's set (``red``), the better certificate kept: after a
    # carried iterate that fell short; with a centring floor (degenerate problems); on small
    # problems each direction alone
    retries = ([("auto", 0.0)] if warm and final else []) + [("auto", _CENTRING)] + (
        [("hkm", 0.0), ("nt", 0.0)] if S.size == live.size else [])
    for direction, centring in retries:
        if sol.status == OPTIMAL:
            break
        res = nuclear_ipm(red.A, red.Zq, red.loc, red.b, n_eq=red.n_eq,
                          W0=red.U.T @ W_unit @ red.V, gap_tol=min(1e-12, tol * 1e-3),
                          accept_tol=0.25 * tol, direction=direction, centring=centring)
        y_try = np.zeros(m)
        y_try[red.idx] = res.y / red.rs
        info["ipm_iterations"] += res.iterations
        other = _certify_polished(cset, red.U @ res.W @ red.V.T / (sA * sZ), y_try, tol, fro,
                                  info)
        if other.info["certified_gap"] < sol.info["certified_gap"]:
            sol = other
    if sol.status != OPTIMAL and S.size == live.size and sol.W is not None:
        # small problems: the active rows pin the optimum (nearly infeasible instances,
        # whose Newton systems lose the last digits): solve them directly
        for W_face, y_face in face_candidates(cset, sol.W):
            other = certify_nuclear(cset, W_face, y_face, tol=tol, frobenius=fro, warn=False,
                                    face_polished=True, **info)
            if other.info["certified_gap"] < sol.info["certified_gap"]:
                sol = other
            if sol.status == OPTIMAL:
                break
    if sol.status == INACCURATE:
        _warn_inaccurate(sol, tol, stacklevel=3)
    sol.seconds = time.perf_counter() - t0
    return sol


def _certify_polished(cset: ConstraintSet, W: np.ndarray, y: np.ndarray, tol: float,
                      fro: SVMSolution, info: Mapping[str, object]) -> SVMSolution:
    """Certify ``(W, y)``; when that falls short, also its tangent polish (the active rows met
    only to ~1e-9: the rescaling then costs the gap), and keep the better certificate."""
    sol = certify_nuclear(cset, W, y, tol=tol, frobenius=fro, warn=False, **info)
    if sol.status == OPTIMAL or sol.W is None:
        return sol
    Wp = tangent_polish(cset, sol.W, sol.dual, int(sol.info["rank"]))
    if Wp is None:
        return sol
    other = certify_nuclear(cset, Wp, sol.dual, tol=tol, frobenius=fro, warn=False,
                            **info, tangent_polished=True)
    return other if other.info["certified_gap"] < sol.info["certified_gap"] else sol


def _warn_inaccurate(sol: SVMSolution, tol: float, stacklevel: int) -> None:
    warnings.warn(
        f"the nuclear-norm solver certified a relative gap of {sol.info['certified_gap']:.1e} "
        f"(equality residual {sol.info['equality_residual']:.1e}) > tol {tol:g}",
        ConvergenceWarning, stacklevel=stacklevel)


def certify_nuclear(cset: ConstraintSet, W: np.ndarray, y: np.ndarray, *, tol: float,
                    frobenius: SVMSolution | None = None, warn: bool = True,
                    **info: object) -> SVMSolution:
    """Certify a candidate nuclear-norm solution ``(W, y)`` and wrap it as an SVMSolution.

    ``W`` is rescaled to be exactly feasible (upper bound ``||W||_*``), the multipliers
    ``mu = y`` (clipped at 0 on inequalities) are divided by ``||sum_k mu_k G_k||_op`` (lower
    bound ``sum mu_k b_k``); the relative difference is the certified gap.  Above ``tol`` (or
    with an equality residual above ``tol``) the status is ``inaccurate`` with a
    :class:`ConvergenceWarning`, never ``optimal``.

    Parameters
    ----------
    cset : ConstraintSet
        The constraints, ``m`` of them, at their original scale.
    W : ndarray, shape (d1, d2)
        Candidate primal solution.
    y : ndarray, shape (m,)
        Candidate multipliers.
    tol : float
    frobenius : SVMSolution, optional
        The Frobenius solution of the same constraints, kept in ``info``.
    warn : bool
        Warn (:class:`ConvergenceWarning`) when the answer is ``inaccurate``.
    **info
        Extra entries for ``info`` (working set, rounds, iterations).

    Returns
    -------
    SVMSolution
    """
    m, n_eq = cset.m, int(cset.n_eq)
    bb = cset.rhs
    vals = cset.values(W)
    ineq = np.arange(m) >= n_eq
    pos = ineq & (bb > 0)
    scale = 1.0
    if np.any(pos):
        ratio = bb[pos] / np.where(vals[pos] > 0, vals[pos], np.nan)
        scale = float(np.nanmax(ratio)) if np.all(vals[pos] > 0) else np.inf
    mu = y.copy()
    mu[ineq] = np.maximum(mu[ineq], 0.0)
    G = cset.combine(mu)
    g_op = float(np.linalg.norm(G, 2)) if G.size else 0.0
    if np.isfinite(scale) and scale > 1.0:
        W = W * scale
    nuc = float(np.linalg.svd(W, compute_uv=False).sum())
    lower = float(mu @ bb) / g_op if g_op > 0 else 0.0
    mu_n = mu / g_op if g_op > 0 else mu
    gap = (nuc - lower) / max(nuc, 1e-300) if np.isfinite(scale) else np.inf
    sol = SVMSolution(OPTIMAL, "nuc", W, cset, bb, mu_n, n_eq=n_eq, solver=METHOD)
    eq_res = (float(np.max(np.abs(sol.values[:n_eq] - bb[:n_eq])
                           / np.maximum(1.0, np.abs(bb[:n_eq])))) if n_eq else 0.0)
    rk = certified_rank(W, G / g_op if g_op > 0 else G)
    sol.info.update(certified_gap=float(gap), lower_bound=lower, upper_bound=nuc,
                    equality_residual=eq_res, **rk, **info)
    iters = info.get("ipm_iterations")
    if isinstance(iters, int):
        sol.iterations = iters
    sol.info["frobenius_solution"] = frobenius  # the exact Frobenius Att-SVM, same constraints
    if not (gap <= tol and sol.primal_residual() <= tol):  # equality rows included
        sol.status = INACCURATE
        if warn:
            _warn_inaccurate(sol, tol, stacklevel=3)
    return sol

def solve_nuc(instance: Instance, alpha: np.ndarray | None = None, *, tol: float = 1e-9,
              warm_start: SVMSolution | np.ndarray | None = None,
              frobenius: SVMSolution | None = None) -> SVMSolution:
    """Nuclear-norm Att-SVM ``W_*^mm`` of an instance for token choice ``alpha``.

    Parameters
    ----------
    instance : Instance
    alpha : ndarray of int, shape (n,), optional
        Default :meth:`Instance.token_choice`.
    tol : float
        Largest certified relative gap reported as ``optimal``.
    warm_start : SVMSolution or ndarray of int, optional
    frobenius : SVMSolution, optional
        The instance's Frobenius solution for the same ``alpha``, if already computed.

    Returns
    -------
    SVMSolution
        ``W`` of shape (d, d), ``alpha`` and ``shape = (n, T)``.
    """
    return solve_on_instance(solve_nuc_constraints, instance, alpha, tol=tol,
                             warm_start=warm_start, frobenius=frobenius)
