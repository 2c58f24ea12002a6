"""The nuclear solver's presolve: what a problem becomes before an interior point sees it,
and how an interior point's answer is lifted back.

``apply``: the constraints at unit scale (:class:`~attnsvm.svm._scale.UnitScale`), then a set
``S`` of them in reduced coordinates (``W = U M V^T`` on the ranges of its factors, every row
at unit norm, repeated rows merged: :class:`Reduced`).  ``lift``: the reduced answer
``(M, y)`` back to ``(W, mu)`` of the original problem, ``W = U M V^T / (sA sZ)`` and
``mu[idx] = y / rs``.  The single solver, its working-set rounds and the batched solver all
go through these two maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..._numerics import row_space_basis
from ...constraints import ConstraintSet
from .._scale import UnitScale
from ..solution import SVMSolution
from ._implied import implied_rows
from ._ipm import IPMState

__all__ = ["Presolved", "Reduced", "carry_state"]

#: how far a carried iterate is moved towards the centre (X to a multiple of I, Z to I)
_BACK_OFF = 0.1


@dataclass
class Reduced:
    """A set of constraints in reduced coordinates (``W = U M V^T``), rows at unit norm,
    repeated constraints merged: what one interior-point run solves.

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
              n_eq: int) -> Reduced:
        """The rows ``S`` (sorted indices) of the unit-scale constraints ``unit``, whose
        distinct queries are ``Zq_all`` (g, d2) with ``ginv`` (m,) the query of each row."""
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

    def restrict(self, pos: np.ndarray) -> Reduced:
        """The rows ``pos`` (sorted positions; every equality among them), same bases."""
        return Reduced(self.U, self.V, self.A[pos], self.Zq, self.loc[pos], self.b[pos],
                       self.idx[pos], self.rs[pos], int(np.sum(pos < self.n_eq)))

    def apply(self, W: np.ndarray) -> np.ndarray:
        """A unit-scale point ``W`` (d1, d2) in reduced coordinates, ``U^T W V`` (r1, r2)."""
        return self.U.T @ W @ self.V

    def lift(self, M: np.ndarray, y: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """A reduced answer ``M`` (r1, r2), ``y`` (s,) as the unit-scale ``U M V^T`` (d1, d2)
        and multipliers on all ``m`` rows (zero off this set)."""
        y_full = np.zeros(m)
        y_full[self.idx] = y / self.rs
        return self.U @ M @ self.V.T, y_full


@dataclass
class Presolved:
    """A feasible problem ready for the interior point.

    Attributes
    ----------
    cset : ConstraintSet
        The validated constraints at their original scale (``m`` rows).
    fro : SVMSolution
        Their exact Frobenius solution (feasibility; the starting point).
    scale : UnitScale
    unit : ConstraintSet
        The constraints at unit scale.
    Zq : ndarray, shape (g, d2)
        The distinct queries of ``unit``; ``ginv`` (m,) the query of each row.
    W_fro : ndarray, shape (d1, d2)
        The Frobenius solution at unit scale.
    """

    cset: ConstraintSet
    fro: SVMSolution
    scale: UnitScale
    unit: ConstraintSet
    Zq: np.ndarray
    ginv: np.ndarray
    W_fro: np.ndarray

    @classmethod
    def of(cls, cset: ConstraintSet, fro: SVMSolution) -> Presolved:
        """The presolve of ``cset`` given its feasible Frobenius solution ``fro``."""
        scale = UnitScale.of(cset.A, cset.Zc)
        unit = scale.apply(cset)
        Zq, ginv = unit.groups  # (g, d2) distinct queries, (m,) the group of each row
        assert fro.W is not None
        return cls(cset, fro, scale, unit, Zq, ginv, scale.to_unit(fro.W))

    @property
    def m(self) -> int:
        return self.cset.m

    def implied(self) -> np.ndarray:
        """Rows (mask, shape (m,)) implied by another row and the equalities of their query
        (Graph-SVMs): kept out of every working set, multiplier zero."""
        return implied_rows(self.unit.A, self.ginv, self.cset.rhs, int(self.cset.n_eq))

    def apply(self, S: np.ndarray) -> Reduced:
        """The rows ``S`` (sorted indices) in reduced coordinates."""
        return Reduced.build(self.unit, S, self.Zq, self.ginv, int(self.cset.n_eq))

    def lift(self, red: Reduced, M: np.ndarray, y: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """A reduced answer on ``red`` as ``W`` (d1, d2) at the original scale and ``y`` (m,)."""
        W_unit, y_full = red.lift(M, y, self.m)
        return self.scale.lift(W_unit), y_full


def carry_state(old: Reduced, state: IPMState, new: Reduced) -> IPMState | None:
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
