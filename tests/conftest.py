"""Shared fixtures: paper-style random instances and an independent cvxpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from attnsvm.constraints import ConstraintSet
from attnsvm.instance import Instance, random_instance


@pytest.fixture(scope="session")
def small_instance() -> Instance:
    return random_instance(6, 8, 10, seed=0)


def cvxpy_fro(A: np.ndarray, Zc: np.ndarray) -> tuple[str, np.ndarray | None]:
    """Independent reference: min ||W||_F^2 s.t. a_k^T W z_k >= 1, written entry by entry."""
    import cvxpy as cp

    d1, d2 = A.shape[1], Zc.shape[1]
    W = cp.Variable((d1, d2))
    cons = [cp.sum(cp.multiply(W, np.outer(a, z))) >= 1 for a, z in zip(A, Zc, strict=True)]
    prob = cp.Problem(cp.Minimize(cp.sum_squares(W)), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return prob.status, W.value


def with_equality_rows(inst: Instance) -> ConstraintSet:
    """``inst``'s constraints with the first row of each of the first three sequences made an
    equality with ``b = 0`` (Graph-SVM style), equalities first."""
    c = inst.constraints()
    eq = np.flatnonzero(np.isin(c.index[:, 1], [1]) & (c.index[:, 0] < 3))
    order = np.concatenate([eq, np.setdiff1d(np.arange(c.m), eq)])
    b = np.concatenate([np.zeros(eq.size), np.ones(c.m - eq.size)])
    return ConstraintSet(c.A[order], c.Zc[order], c.index[order], b=b, n_eq=eq.size)
