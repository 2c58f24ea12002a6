"""One table of standard problems run through every solver and the estimator.

Each answer is checked by one helper against the conditions that define it (cvxpy's
``solver_test_helpers`` style): primal feasibility, dual feasibility, stationarity
(``M = sum mu_k G_k`` has dual norm 1 and ``<M, W> = ||W||``), complementarity and a zero
duality gap, all recomputed here from ``W`` and the multipliers, not read from the solver.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnsvm import Instance, random_instance
from attnsvm.svm import AttSVM, solve


def _rank_deficient() -> Instance:
    rng = np.random.default_rng(4)
    B = np.linalg.qr(rng.standard_normal((10, 4)))[0]
    X = rng.standard_normal((8, 5, 4)) @ B.T
    Z = rng.standard_normal((8, 4)) @ B.T
    return Instance(X=X, Z=Z, alpha=np.zeros(8, dtype=np.int64))


def _repeated() -> Instance:
    inst = random_instance(5, 6, 8, seed=5)
    a = inst.token_choice()
    return Instance(X=np.concatenate([inst.X, inst.X[:2]]), Z=np.concatenate([inst.Z, inst.Z[:2]]),
                    alpha=np.concatenate([a, a[:2]]))


PROBLEMS = {
    "paper": lambda: random_instance(6, 8, 10, seed=0),
    "self-attention": lambda: random_instance(6, 6, 8, seed=3, cross=False),
    "rank-deficient": _rank_deficient,
    "repeated": _repeated,
    "two-tokens": lambda: random_instance(4, 2, 3, seed=1),
}

DUAL_NORM = {"fro": lambda M: np.linalg.norm(M), "nuc": lambda M: np.linalg.norm(M, 2),
             "lp": lambda M: np.sum(np.abs(M) ** 1.5) ** (1 / 1.5)}  # p = 3, q = 3/2
PRIMAL_NORM = {"fro": lambda W: np.linalg.norm(W),
               "nuc": lambda W: np.linalg.svd(W, compute_uv=False).sum(),
               "lp": lambda W: np.sum(np.abs(W) ** 3) ** (1 / 3)}
TOL = {"fro": 1e-9, "nuc": 1e-8, "lp": 1e-5}


def check_kkt(inst: Instance, W: np.ndarray, mu: np.ndarray, norm: str) -> None:
    """KKT conditions of ``min ||W|| s.t. (x_{i,a_i} - x_it)^T W z_i >= 1`` from scratch."""
    tol = TOL[norm]
    a = inst.token_choice()
    Z = inst.queries
    vals, G = [], np.zeros_like(W)
    for i in range(inst.n):
        for t in range(inst.T):
            if t == a[i]:
                assert mu[i, t] == 0
                continue
            g = np.outer(inst.X[i, a[i]] - inst.X[i, t], Z[i])
            vals.append(float(np.vdot(g, W)))
            G += mu[i, t] * g
    vals_a = np.array(vals)
    nrm = PRIMAL_NORM[norm](W)
    assert vals_a.min() >= 1 - tol  # primal feasibility
    assert mu.min() >= -tol * np.abs(mu).max()  # dual feasibility
    assert DUAL_NORM[norm](G) == pytest.approx(1.0, abs=tol * 10)  # stationarity
    assert float(np.vdot(G, W)) == pytest.approx(nrm, rel=tol * 10)
    assert float(mu.sum()) == pytest.approx(nrm, rel=tol * 10)  # zero duality gap (b = 1)
    mu_flat = np.array([mu[i, t] for i in range(inst.n) for t in range(inst.T) if t != a[i]])
    assert np.max(np.abs(mu_flat * (vals_a - 1))) <= tol * 10 * nrm  # complementarity


@pytest.mark.parametrize("norm", ["fro", "nuc", "lp"])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_every_solver_on_the_standard_problems(name, norm):
    inst = PROBLEMS[name]()
    sol = solve(inst, norm, p=3.0 if norm == "lp" else None)
    assert sol.status == "optimal"
    check_kkt(inst, sol.W, sol.dual_matrix(), norm)


@pytest.mark.parametrize("norm", ["fro", "nuc"])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_estimator_gives_the_same_answer(name, norm):
    inst = PROBLEMS[name]()
    est = AttSVM(norm=norm).fit(inst)
    ref = solve(inst, norm)
    assert est.status_ == "optimal"
    assert PRIMAL_NORM[norm](est.W_) == pytest.approx(ref.objective, rel=1e-8)
    if norm == "fro":  # strictly convex: the same W; the nuclear optimum need not be unique
        np.testing.assert_allclose(est.W_, ref.W, atol=1e-8 * np.abs(ref.W).max())
    check_kkt(inst, est.W_, est.dual_, norm)
    # learned attributes: the support is where the constraints are tight, margin_ = 1/||W||_F
    assert est.support_.shape[1] == 2 and len(est.support_) >= 1
    a = inst.token_choice()
    for i, t in est.support_:
        g = (inst.X[i, a[i]] - inst.X[i, t]) @ est.W_ @ inst.queries[i]
        assert g == pytest.approx(1.0, abs=1e-6)
    assert est.margin_ == pytest.approx(1.0 / np.linalg.norm(est.W_), rel=1e-6)
