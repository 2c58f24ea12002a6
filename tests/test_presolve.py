"""The presolve maps (unit scale, reduced coordinates) and the stacked Cholesky factor."""

from __future__ import annotations

import numpy as np

from attnsvm import random_instance
from attnsvm.constraints import ConstraintSet
from attnsvm.svm import solve_fro_constraints
from attnsvm.svm._scale import UnitScale
from attnsvm.svm.nuclear._presolve import Presolved
from attnsvm.svm.nuclear._stack import chol


def test_unit_scale_apply_then_lift_is_the_scale_covariance():
    """A -> A / sA, Zc -> Zc / sZ multiplies the optimum by sA sZ: solving the applied
    problem and lifting its answer gives the original optimum."""
    c = random_instance(6, 5, 4, seed=2).constraints()
    big = ConstraintSet(A=c.A * 3e3, Zc=c.Zc * 2e-4, index=c.index, b=c.b, n_eq=c.n_eq)
    scale = UnitScale.of(big.A, big.Zc)
    unit = scale.apply(big)
    assert np.isclose(np.linalg.norm(unit.A, axis=1).max(), 1.0)
    assert np.isclose(np.linalg.norm(unit.Zc, axis=1).max(), 1.0)
    W = solve_fro_constraints(big).W
    W_unit = solve_fro_constraints(scale.apply(big)).W
    np.testing.assert_allclose(scale.lift(W_unit), W, rtol=1e-10, atol=0)
    np.testing.assert_allclose(scale.to_unit(W), W_unit, rtol=1e-10, atol=0)


def test_reduced_lift_inverts_apply_on_the_factor_ranges():
    """On a set whose factors span the ranges, U^T W V lifted back is the projection of W
    onto them, and values of the lifted point equal the reduced constraint values times rs."""
    c = random_instance(8, 5, 12, seed=3).constraints()
    fro = solve_fro_constraints(c)
    pre = Presolved.of(c, fro)
    red = pre.apply(np.arange(c.m))
    M = red.apply(pre.W_fro)
    W_unit, _ = red.lift(M, np.zeros(red.idx.size), c.m)
    np.testing.assert_allclose(W_unit, pre.W_fro, rtol=1e-10, atol=1e-12 * np.abs(W_unit).max())
    vals = np.einsum("kd,kd->k", red.A, (red.Zq @ M.T)[red.loc])
    np.testing.assert_allclose(vals * red.rs, pre.unit.values(W_unit)[red.idx], rtol=1e-10)
    W, y = pre.lift(red, M, red.b * 0 + 1.0)
    np.testing.assert_allclose(W, fro.W, rtol=1e-10, atol=1e-12 * np.abs(fro.W).max())
    np.testing.assert_allclose(y[red.idx], 1.0 / red.rs)


def test_stacked_cholesky_marks_the_indefinite_factors():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((4, 5, 5))
    Ms = B @ np.swapaxes(B, 1, 2) + 0.1 * np.eye(5)
    L, ok = chol(Ms)
    assert ok.all()
    np.testing.assert_allclose(L @ np.swapaxes(L, 1, 2), Ms, rtol=1e-12)
    Ms[2] = -np.eye(5)  # indefinite: no factor, the identity in its place
    L2, ok2 = chol(Ms)
    assert ok2.tolist() == [True, True, False, True]
    np.testing.assert_array_equal(L2[[0, 1, 3]], L[[0, 1, 3]])
    np.testing.assert_array_equal(L2[2], np.eye(5))
