"""AttSVM as a scikit-learn estimator, and the registry's per-norm tolerance and options."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from attnsvm import random_instance
from attnsvm.exceptions import InvalidParameterError
from attnsvm.svm import SOLVERS, AttSVM, solve
from attnsvm.svm.registry import TOLERANCES, solver_tol


def test_get_set_params_and_clone():
    est = AttSVM(norm="nuc", tol=1e-8)
    assert est.get_params() == {"norm": "nuc", "p": None, "tol": 1e-8, "solver": "CLARABEL"}
    assert est.set_params(norm="lp", p=3.0) is est
    assert (est.norm, est.p) == ("lp", 3.0)
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    assert repr(twin) == "AttSVM(norm='lp', p=3.0, tol=1e-08)"
    with pytest.raises(InvalidParameterError, match="Invalid parameter 'C'"):
        est.set_params(C=1.0)


def test_clone_is_unfitted_and_refits_to_the_same_answer():
    inst = random_instance(6, 5, 6, seed=1)
    est = AttSVM(norm="nuc").fit(inst)
    twin = clone(est)
    assert not hasattr(twin, "W_")
    twin.fit(inst)
    np.testing.assert_array_equal(twin.W_, est.W_)
    # the fitted answer is the certified optimum: sum of multipliers = ||W||_* at the margin
    assert est.solution_.info["certified_gap"] <= 1e-9
    assert est.margin_ > 0


def test_tolerance_meaning_lives_in_the_registry():
    assert solver_tol("fro", 1e-10) == 1e-10
    assert solver_tol("nuc", 1e-12) == 1e-9 and solver_tol("nuc", 1e-6) == 1e-6
    assert solver_tol("lp", 1e-10) == pytest.approx(1e-6)
    assert set(TOLERANCES) <= set(SOLVERS)
    inst = random_instance(5, 4, 5, seed=0)
    est = AttSVM(norm="nuc", tol=1e-12).fit(inst)  # the estimator asks the registry
    assert est.solution_.status == "optimal"


def test_warm_start_reaches_every_solver_that_takes_one(monkeypatch):
    inst = random_instance(5, 4, 5, seed=0)
    first = solve(inst, "fro")
    seen = {}

    def takes(constraints, *, tol=1e-9, warm_start=None):
        seen["warm_start"] = warm_start
        return SOLVERS["fro"](constraints, tol=tol)

    def refuses(constraints, *, tol=1e-9):
        return SOLVERS["fro"](constraints, tol=tol)

    monkeypatch.setitem(SOLVERS, "nuc", takes)
    solve(inst, "nuc", warm_start=first)
    assert seen["warm_start"] is first
    monkeypatch.setitem(SOLVERS, "nuc", refuses)
    sol = solve(inst, "nuc", warm_start=first, solver="SCS")  # neither passed on
    np.testing.assert_allclose(sol.W, first.W)
    # the lp solver takes a backend but no warm start
    lp = solve(inst, "lp", p=2.0, warm_start=first, solver="CLARABEL")
    assert lp.status == "optimal"
    np.testing.assert_allclose(lp.W, first.W, atol=1e-5 * np.abs(first.W).max())
