"""Max-norm (LP) and spectral (SDP) Att-SVMs against independent references.

References: HiGHS on the dense LP with the box as 2 d^2 rows (written here, not the solver's
formulation), cvxpy + Clarabel on the SDP ``min sigma_max(W)``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from attnsvm import Instance, random_instance
from attnsvm.cli.main import main
from attnsvm.constraints import ConstraintSet
from attnsvm.svm import (
    margin_ratio,
    margin_ratios,
    solve,
)


def dense_lp(cons: ConstraintSet) -> float:
    """min t s.t. C w >= b (= for n_eq), -t <= w_ij <= t as 2 d^2 rows (HiGHS)."""
    from scipy.optimize import linprog

    m = cons.m
    C = np.einsum("ki,kj->kij", cons.A, cons.Zc).reshape(m, -1)
    N = C.shape[1]
    b, ne = cons.rhs, cons.n_eq
    ones = np.ones((N, 1))
    A_ub = np.vstack([np.hstack([-C[ne:], np.zeros((m - ne, 1))]),
                      np.hstack([np.eye(N), -ones]), np.hstack([-np.eye(N), -ones])])
    b_ub = np.concatenate([-b[ne:], np.zeros(2 * N)])
    kw = {}
    if ne:
        kw = {"A_eq": np.hstack([C[:ne], np.zeros((ne, 1))]), "b_eq": b[:ne]}
    cost = np.zeros(N + 1)
    cost[-1] = 1
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=(None, None), method="highs", **kw)
    assert res.status == 0
    return float(res.fun)


def cvx_spec(cons: ConstraintSet) -> float:
    import cvxpy as cp

    W = cp.Variable((cons.A.shape[1], cons.Zc.shape[1]))
    vals = cp.sum(cp.multiply(cons.A @ W, cons.Zc), axis=1)
    ne = cons.n_eq
    cs = [vals[ne:] >= cons.rhs[ne:]] + ([vals[:ne] == cons.rhs[:ne]] if ne else [])
    prob = cp.Problem(cp.Minimize(cp.sigma_max(W)), cs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return float(prob.value)


def check_certificate(sol, gap_tol: float) -> None:
    """mu >= 0, ||G||_dual <= 1 + 1e-9, lower bound mu . b, margins met to 1e-9."""
    cons = sol.constraints
    mu = sol.dual
    assert mu[cons.n_eq:].min() >= 0
    G = cons.combine(mu)
    dual = np.abs(G).sum() if sol.norm == "linf" else np.linalg.svd(G, compute_uv=False).sum()
    assert dual <= 1 + 1e-9
    lower = float(mu @ cons.rhs) / max(dual, 1.0)
    assert (sol.objective - lower) / sol.objective <= gap_tol
    v = cons.values(sol.W)
    assert v[cons.n_eq:].min() >= cons.rhs[cons.n_eq:].min() * (1 - 1e-9) - 1e-12
    if cons.n_eq:
        np.testing.assert_allclose(v[:cons.n_eq], cons.rhs[:cons.n_eq], atol=1e-9)
    assert sol.is_optimal(1e-8)


@pytest.mark.parametrize("shape,seed", [((6, 8, 10), 0), ((6, 8, 10), 1), ((12, 6, 8), 2),
                                        ((5, 4, 3), 3)])
def test_linf_matches_dense_highs(shape, seed):
    inst = random_instance(*shape, seed=seed)
    sol = solve(inst, "linf")
    assert sol.status == "optimal" and sol.norm == "linf"
    assert sol.objective == pytest.approx(dense_lp(inst.constraints()), rel=1e-7)
    check_certificate(sol, 1e-9)
    assert sol.info["certified_gap"] <= 1e-9


@pytest.mark.parametrize("shape,seed", [((6, 8, 10), 0), ((6, 8, 10), 1), ((10, 5, 6), 2),
                                        ((5, 4, 3), 3)])
def test_spec_matches_cvxpy(shape, seed):
    inst = random_instance(*shape, seed=seed)
    sol = solve(inst, "spec")
    assert sol.status == "optimal" and sol.norm == "spec"
    assert sol.objective == pytest.approx(cvx_spec(inst.constraints()), rel=1e-6)
    check_certificate(sol, 1e-8)
    assert sol.info["certified_gap"] <= 1e-8


def test_least_frobenius_linf_against_qp():
    """The LP's optimal face: the least-Frobenius point of {rows, |W_ij| <= t*} (Clarabel)."""
    import cvxpy as cp

    inst = random_instance(3, 4, 5, seed=0)   # few rows, a face of optima
    cons = inst.constraints()
    sol = solve(inst, "linf")
    assert sol.info["least_frobenius"] is True
    vertex = solve(inst, "linf", least_frobenius=False)
    W = cp.Variable((5, 5))
    vals = cp.sum(cp.multiply(cons.A @ W, cons.Zc), axis=1)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(W)),
                      [vals >= 1, cp.abs(W) <= sol.objective * (1 + 1e-9)])
    prob.solve(solver="CLARABEL")
    assert np.linalg.norm(sol.W) == pytest.approx(np.linalg.norm(W.value), rel=1e-5)
    assert np.linalg.norm(sol.W) <= np.linalg.norm(vertex.W) + 1e-9


def test_least_frobenius_spec_on_its_face():
    inst = random_instance(6, 8, 10, seed=1)
    sol = solve(inst, "spec")
    plain = solve(inst, "spec", least_frobenius=False)
    assert sol.info["least_frobenius"] is True and "least Frobenius" in sol.info[
        "least_frobenius_note"]
    assert sol.objective == pytest.approx(plain.objective, rel=1e-8)
    assert np.linalg.norm(sol.W) <= np.linalg.norm(plain.W) * (1 + 1e-9)


@pytest.mark.parametrize("norm", ["linf", "spec"])
def test_infeasible_gives_farkas_certificate(norm):
    inst = random_instance(3, 4, 5, seed=0)
    X = inst.X.copy()
    X[0, 1] = X[0, 0]   # a duplicate of the selected token: no W separates them
    bad = Instance(X=X, Z=inst.Z, Y=inst.Y, v=inst.v, alpha=np.zeros(3, dtype=np.int64))
    sol = solve(bad, norm)
    assert sol.status == "infeasible" and sol.is_certified_infeasible(1e-8)


@pytest.mark.parametrize("norm,ref", [("linf", dense_lp), ("spec", cvx_spec)])
def test_constraint_sets_with_equalities_and_other_alpha(norm, ref):
    inst = random_instance(5, 5, 6, seed=4)
    alpha = (inst.optimal_tokens() + 1) % 5
    c = inst.constraints(alpha)
    # two rows as equalities with right-hand side 1, the rest as inequalities with b = 2
    b = np.full(c.m, 2.0)
    b[:2] = 1.0
    cons = ConstraintSet(A=c.A, Zc=c.Zc, index=c.index, b=b, n_eq=2)
    sol = solve(cons, norm)
    assert sol.status == "optimal"
    assert sol.objective == pytest.approx(ref(cons), rel=1e-6)
    check_certificate(sol, 1e-8)


@pytest.mark.parametrize("norm", ["linf", "spec"])
def test_warm_start_and_scale_covariance(norm):
    inst = random_instance(6, 8, 10, seed=2)
    sol = solve(inst, norm)
    again = solve(inst, norm, warm_start=sol)
    assert again.objective == pytest.approx(sol.objective, rel=1e-8)
    scaled = Instance(X=inst.X * 1e3, Z=inst.Z * 1e-2, Y=inst.Y, v=inst.v)
    s2 = solve(scaled, norm)
    assert s2.objective * 10.0 == pytest.approx(sol.objective, rel=1e-7)


def test_margin_ratio():
    inst = random_instance(6, 8, 10, seed=0)
    sols = {nm: solve(inst, nm) for nm in ("fro", "nuc", "linf", "spec")}
    for nm, s in sols.items():
        assert margin_ratio(s.W, inst, nm, solution=s) == pytest.approx(1.0, abs=1e-8)
        for s2 in sols.values():   # no other W beats the max margin of a geometry
            assert margin_ratio(s2.W, inst, nm, solution=s) <= 1 + 1e-8
    rng = np.random.default_rng(0)
    r = margin_ratios(rng.standard_normal((10, 10)), inst)
    assert set(r) == {"fro", "nuc", "linf", "spec"} and all(v < 1 for v in r.values())


@pytest.mark.parametrize("norm", ["linf", "spec"])
def test_cli_solve_norm(tmp_path, capsys, norm):
    inst = random_instance(6, 8, 10, seed=0)
    p = tmp_path / "i.npz"
    inst.save(p)
    code = main(["solve", str(p), "--norm", norm, "--json", "--out", str(tmp_path / "r.npz")])
    out = capsys.readouterr()
    assert code == 0, out.err
    res = json.loads(out.out)
    assert res["status"] == "optimal" and res["norm"] == norm
    with np.load(tmp_path / "r.npz") as f:
        W, dual, alpha = f["W"], f["dual"], f["alpha"]
    c = inst.constraints(alpha)
    lam = dual[c.index[:, 0], c.index[:, 1]]
    G = c.combine(lam)
    dn = np.abs(G).sum() if norm == "linf" else np.linalg.svd(G, compute_uv=False).sum()
    assert dn <= 1 + 1e-9 and dual.min() >= 0
    assert lam.sum() == pytest.approx(res["objective"], rel=1e-8)
    assert c.values(W).min() >= 1 - 1e-9


def test_cli_bad_norm(tmp_path, capsys):
    p = tmp_path / "i.npz"
    random_instance(3, 4, 5, seed=0).save(p)
    assert main(["solve", str(p), "--norm", "l1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_paper_scale_40_12_24(seed):
    inst = random_instance(40, 12, 24, seed=seed)
    c = inst.constraints()
    lin = solve(inst, "linf")
    assert lin.objective == pytest.approx(dense_lp(c), rel=1e-7)
    check_certificate(lin, 1e-9)
    spec = solve(inst, "spec")
    assert spec.objective == pytest.approx(cvx_spec(c), rel=1e-6)
    check_certificate(spec, 1e-8)
