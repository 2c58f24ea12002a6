"""Rows implied by another row and the equalities of their query (Graph-SVM degeneracy), and
the Schur-complement solve where such rows leave the Newton system singular."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from attnsvm.constraints import ConstraintSet
from attnsvm.ntp.dataset import random_ntp_dataset
from attnsvm.ntp.graph import priority_graphs
from attnsvm.ntp.svm import graph_svm_constraints
from attnsvm.svm.nuclear import solve_nuc_constraints
from attnsvm.svm.nuclear._implied import implied_rows
from attnsvm.svm.nuclear._sdp import schur_solver
from references import check_nuclear_certificate, cvxpy_nuc


def _tokens(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((5, 6))  # tokens x_0..x_4 in R^6


def test_handmade_rows():
    x = _tokens()
    i, j, k, l, o = range(5)
    rows = [  # (a, query, b); the first is the equality x_i ~ x_j of query 0
        (x[i] - x[j], 0, 0.0),
        (x[i] - x[k], 0, 1.0),  # kept: (j,k) says the same given the equality
        (x[j] - x[k], 0, 1.0),  # implied (same level, the later row goes)
        (x[i] - x[l], 0, 1.0),  # implied by (j,l) >= 2
        (x[j] - x[l], 0, 2.0),
        (x[k] - x[l], 0, 1.0),  # no twin
        (x[j] - x[i], 0, -1.0),  # the equality itself: 0 >= -1
        (2 * (x[j] - x[o]), 0, 1.0),  # twin of (i,o) at half its level: implied
        (x[i] - x[o], 0, 1.0),
        (x[j] - x[k], 1, 1.0),  # another query: no equality there
        (x[i] - x[k], 1, 1.0),
    ]
    A = np.array([r[0] for r in rows])
    groups = np.array([r[1] for r in rows])
    b = np.array([r[2] for r in rows])
    got = implied_rows(A, groups, b, n_eq=1)
    expected = np.zeros(len(rows), dtype=bool)
    expected[[2, 3, 6, 7]] = True
    np.testing.assert_array_equal(got, expected)
    # no equality: nothing is implied, repeated rows included (merged elsewhere)
    assert not implied_rows(A[1:], groups[1:], b[1:], n_eq=0).any()


def _graph_svm(seed: int) -> ConstraintSet:
    ds = random_ntp_dataset(20, 6, 10, 12, cyclic=True, seed=seed)
    return graph_svm_constraints(ds, priority_graphs(ds))[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_implied_rows_hold_on_the_equality_subspace(seed):
    c = _graph_svm(seed)
    _, groups = c.groups
    imp = implied_rows(c.A, groups, c.rhs, c.n_eq)
    assert imp.any() and not imp[: c.n_eq].any()
    # every W that meets the equalities and the kept rows meets the implied rows: the least
    # value of an implied row's margin over {equalities, kept rows >= b} is checked by the
    # identity a_r = (rho_r / rho_q) a_q + E^T c on the row's query, with the kept twin q
    for r in np.flatnonzero(imp):
        same = np.flatnonzero(groups == groups[r])
        E = c.A[same[same < c.n_eq]]
        kept = same[(same >= c.n_eq) & ~imp[same]]
        ok = False
        for q in kept:
            M = np.vstack([c.A[q], E]).T  # a_r = t a_q + E^T c
            coef, *_ = np.linalg.lstsq(M, c.A[r], rcond=None)
            if np.linalg.norm(M @ coef - c.A[r]) <= 1e-10 * np.linalg.norm(c.A[r]) and coef[0] > 0:
                # a_r^T W z = t (a_q^T W z) + c^T b_E >= t b_q + c^T b_E >= b_r
                ok = coef[0] * c.rhs[q] + coef[1:] @ c.rhs[same[same < c.n_eq]] >= c.rhs[r] - 1e-12
                break
        assert ok, f"row {r} is not implied by a kept row and the equalities"


@pytest.mark.parametrize("seed", [0, 2])
def test_graph_svm_with_implied_rows_matches_cvxpy(seed):
    c = _graph_svm(seed)
    sol = solve_nuc_constraints(c)
    check_nuclear_certificate(sol)
    _, groups = c.groups
    imp = implied_rows(c.A, groups, c.rhs, c.n_eq)
    assert np.all(sol.dual[imp] == 0.0)
    assert sol.objective == pytest.approx(cvxpy_nuc(c), rel=1e-6)
    # the same optimum without the implied rows
    rest = solve_nuc_constraints(c.subset(~imp))
    assert rest.objective == pytest.approx(sol.objective, rel=1e-9)


def test_schur_solve_of_a_badly_scaled_matrix_singular_to_rounding():
    """Near the optimum the Schur complement is ``D^1/2 C D^1/2`` with ``D`` spanning many
    orders of magnitude (the inverse slacks of active and inactive rows) and ``C`` singular
    (dependent active rows): rounding leaves it indefinite.  The shifted Cholesky still solves
    it to working accuracy in every direction it determines; a pseudo-inverse truncated
    relative to ``||M||`` dropped the directions of small ``D``."""
    rng = np.random.default_rng(0)
    s = 40
    B = rng.standard_normal((s, s - 1))  # C = B B^T: rank s - 1
    C = B @ B.T
    d = np.logspace(0, 16, s)
    rng.shuffle(d)
    M = np.sqrt(d)[:, None] * C * np.sqrt(d)[None, :]
    M = (M + M.T) / 2
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(M)
    x0 = rng.standard_normal(s) / np.sqrt(d)  # a solution of unit size in the scaled space
    r = M @ x0
    solve = schur_solver(M)
    x = solve(r)
    x = x + solve(r - M @ x)  # one step of refinement, as the interior point takes
    # the residual, row by row relative to that row's scale
    res = np.abs(M @ x - r) / np.sqrt(d)
    assert np.max(res) <= 1e-8 * np.max(np.abs(r) / np.sqrt(d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xp = np.linalg.pinv(M, rcond=1e-14, hermitian=True) @ r
    assert np.max(np.abs(M @ xp - r) / np.sqrt(d)) > 1e3 * np.max(res)
