"""The exact Frobenius Att-SVM: KKT, closed forms, invariances, agreement with cvxpy."""

from __future__ import annotations

import numpy as np
import pytest

from attnsvm import Instance, random_instance
from attnsvm.svm import local_optimality, solve, solve_fro, solve_fro_constraints
from references import cvxpy_fro, optimal_or_first


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.vdot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("method", ["active-set", "block"])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(6, 8, 10), (12, 6, 5), (30, 10, 16)])
def test_kkt_on_random_instances(shape, seed, method):
    inst = random_instance(*shape, seed=seed)
    c = inst.constraints()
    sol = solve_fro_constraints(c, method=method)
    assert sol.status == "optimal"
    v = sol.values
    mu = sol.dual
    assert v.min() >= 1 - 1e-9                         # primal feasibility
    assert mu.min() >= 0                               # dual feasibility
    assert np.abs(mu * (v - 1)).max() <= 1e-9 * sol.objective  # complementary slackness
    # stationarity: W / ||W|| = sum_k mu_k a_k z_k^T, and strong duality sum mu = ||W||
    M = c.A.T @ (mu[:, None] * c.Zc)
    np.testing.assert_allclose(M, sol.W / sol.objective, atol=1e-10)
    assert abs(mu.sum() - sol.objective) <= 1e-9 * sol.objective
    assert sol.is_optimal(1e-8)


def test_rank_bound(small_instance):
    sol = solve_fro(small_instance)
    assert np.linalg.matrix_rank(sol.W, tol=1e-8) <= small_instance.n


@pytest.mark.parametrize("seed", range(5))
def test_closed_form_one_constraint(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((1, 2, 4))
    z = rng.standard_normal((1, 4))
    sol = solve_fro(Instance(X=X, Z=z, alpha=np.array([0])))
    a = X[0, 0] - X[0, 1]
    expected = np.outer(a, z[0]) / (a @ a * (z[0] @ z[0]))
    np.testing.assert_allclose(sol.W, expected, rtol=1e-12, atol=1e-14)
    assert sol.support().tolist() == [[0, 1]]


@pytest.mark.parametrize("seed", range(8))
def test_agrees_with_independent_cvxpy(seed):
    inst = random_instance(5, 6, 6, seed=100 + seed)
    sol = solve_fro(inst)
    c = inst.constraints()
    status, W_ref = cvxpy_fro(c.A, c.Zc)
    assert status == "optimal" and sol.status == "optimal"
    assert corr(sol.W, W_ref) >= 1 - 1e-6
    assert abs(sol.objective - np.linalg.norm(W_ref)) <= 1e-5
    ref_support = set(map(tuple, c.index[c.values(W_ref) <= 1 + 1e-6]))
    assert set(map(tuple, sol.support())) == ref_support


def test_token_permutation_invariance(small_instance):
    inst = small_instance
    sol = solve_fro(inst)
    rng = np.random.default_rng(3)
    perms = np.stack([rng.permutation(inst.T) for _ in range(inst.n)])
    Xp = np.take_along_axis(inst.X, perms[:, :, None], axis=1)
    inv = np.argsort(perms, axis=1)
    alpha_p = inv[np.arange(inst.n), sol.alpha]
    solp = solve_fro(Instance(X=Xp, Z=inst.Z, Y=inst.Y, v=inst.v), alpha_p)
    np.testing.assert_allclose(solp.W, sol.W, atol=1e-10)
    assert solp.alpha.tolist() == alpha_p.tolist()


def test_orthogonal_change_of_basis(small_instance):
    inst = small_instance
    sol = solve_fro(inst)
    rng = np.random.default_rng(4)
    U, _ = np.linalg.qr(rng.standard_normal((inst.d, inst.d)))
    V, _ = np.linalg.qr(rng.standard_normal((inst.d, inst.d)))
    rot = Instance(X=inst.X @ U.T, Z=inst.Z @ V.T, alpha=sol.alpha)
    solr = solve_fro(rot)
    # x -> U x, z -> V z  ==>  W -> U W V^T
    np.testing.assert_allclose(solr.W, U @ sol.W @ V.T, atol=1e-10)


@pytest.mark.parametrize("cx,cz", [(2.0, 1.0), (1.0, 0.5), (3.0, 4.0)])
def test_scaling(small_instance, cx, cz):
    inst = small_instance
    sol = solve_fro(inst)
    sc = solve_fro(Instance(X=cx * inst.X, Z=cz * inst.Z, alpha=sol.alpha))
    np.testing.assert_allclose(sc.W, sol.W / (cx * cz), atol=1e-12)


def test_self_attention_feasible_and_kkt():
    inst = random_instance(4, 5, 8, seed=2, cross=False)
    sol = solve_fro(inst)
    assert sol.is_optimal(1e-8)
    np.testing.assert_allclose(inst.queries, inst.X[:, 0])


def test_duplicate_tokens_certificate():
    inst = random_instance(4, 5, 6, seed=1)
    X = inst.X.copy()
    X[2, 3] = X[2, 0]
    sol = solve_fro(Instance(X=X, Z=inst.Z, alpha=np.zeros(4, dtype=int)))
    assert sol.status == "infeasible" and sol.W is None
    assert sol.is_certified_infeasible()
    cert = sol.certificate_matrix()
    assert cert.min() >= 0 and abs(cert.sum() - 1) < 1e-12
    # the certificate sums the constraint normals to zero
    c = Instance(X=X, Z=inst.Z, alpha=np.zeros(4, dtype=int)).constraints()
    M = c.combine(sol.certificate)
    assert np.linalg.norm(M) <= 1e-12


@pytest.mark.parametrize("method", ["active-set", "block"])
@pytest.mark.parametrize("seed", range(10))
def test_infeasible_d1_certificates(seed, method):
    # d = 1: W is a scalar; sequences that disagree in sign make Att-SVM infeasible
    inst = random_instance(5, 5, 1, seed=seed)
    c = inst.constraints(np.zeros(5, dtype=int))
    sol = solve_fro_constraints(c, method=method)
    if sol.status == "infeasible":
        assert sol.is_certified_infeasible(1e-9)
        lam = sol.certificate
        assert lam.min() >= 0 and abs(lam.sum() - 1) < 1e-12
        assert abs(float(lam @ (c.A[:, 0] * c.Zc[:, 0]))) <= 1e-12
    else:
        assert sol.is_optimal(1e-8)


def test_margin_of_solution_is_one_over_norm(small_instance):
    sol = solve_fro(small_instance)
    m = small_instance.margin(sol.W, sol.alpha)
    assert m == pytest.approx(1 / sol.objective, rel=1e-9)


def test_local_optimality_of_global_choice(small_instance):
    res = local_optimality(small_instance)
    assert res.feasible and res.locally_optimal and not res.violations


def test_local_optimality_detects_bad_choice():
    inst = random_instance(6, 8, 10, seed=0)
    gamma = inst.token_scores()
    worst = np.argmin(gamma, axis=1)
    res = local_optimality(inst, worst)
    # the worst token of each sequence has no support neighbour of lower score
    assert not res.locally_optimal
    assert all(gamma[i, t] >= gamma[i, worst[i]] for i, t in res.violations)


def test_warm_start_gives_same_answer(small_instance):
    sol = solve_fro(small_instance)
    again = solve_fro(small_instance, warm_start=sol)
    np.testing.assert_allclose(again.W, sol.W, atol=1e-12)


def test_block_and_active_set_agree_on_random_mixture():
    rng = np.random.default_rng(0)
    for k in range(40):
        n, T, d = int(rng.integers(1, 25)), int(rng.integers(2, 10)), int(rng.integers(1, 10))
        inst = random_instance(n, T, d, seed=k, cross=bool(k % 2))
        c = inst.constraints(rng.integers(0, T, size=n))
        s1 = solve_fro_constraints(c, method="block")
        s2 = solve_fro_constraints(c, method="active-set")
        assert s1.status == s2.status
        if s1.status == "optimal":
            assert s1.is_optimal(1e-7) and s2.is_optimal(1e-7)
            assert s1.objective == pytest.approx(s2.objective, rel=1e-7)
        else:
            assert s1.is_certified_infeasible(1e-8) and s2.is_certified_infeasible(1e-8)


@pytest.mark.slow
def test_large_instance_kkt():
    inst = random_instance(500, 50, 64, seed=0)  # 24,500 constraints
    sol = solve_fro(inst)
    assert sol.is_optimal(1e-8)


@pytest.mark.parametrize("scale", [1e-100, 1e-8, 1e8, 1e100])
def test_extreme_scales_are_exact(small_instance, scale):
    inst = small_instance
    ref = solve_fro(inst)
    sol = solve_fro(Instance(X=scale * inst.X, Z=scale * inst.Z, Y=inst.Y, v=inst.v))
    assert sol.is_optimal(1e-10)
    assert sol.alpha.tolist() == ref.alpha.tolist()
    assert sol.objective == pytest.approx(ref.objective / scale**2, rel=1e-10)
    assert {tuple(x) for x in sol.support()} == {tuple(x) for x in ref.support()}


@pytest.mark.parametrize("method", ["active-set", "block"])
def test_repeated_sequences_give_the_same_solution(method):
    # every constraint three times: K is singular, the answer must not change
    inst = random_instance(20, 6, 12, seed=1)
    ref = solve_fro(inst)
    big = Instance(X=np.concatenate([inst.X] * 3), Z=np.concatenate([inst.Z] * 3),
                   Y=np.concatenate([inst.Y] * 3), v=inst.v)
    c = big.constraints()
    sol = solve_fro_constraints(c, method=method)
    assert sol.is_optimal(1e-8)
    np.testing.assert_allclose(sol.W, ref.W, atol=1e-10)


def test_solution_checks_are_computed_once_and_follow_w():
    """Norm, residuals and singular values are stored per (W, dual) pair: reading them again
    gives the same numbers, a new W gives the new ones, and callers cannot alter the store."""
    inst = random_instance(5, 6, 7, seed=3)
    for norm in ("fro", "nuc"):
        sol = solve(inst, norm)
        W = sol.W
        assert W is not None
        sv = np.linalg.svd(W, compute_uv=False)
        np.testing.assert_array_equal(sol.singular_values(), sv)
        expected = float(sv.sum()) if norm == "nuc" else float(np.linalg.norm(W))
        assert sol.objective == pytest.approx(expected, rel=1e-12)
        res = sol.kkt_residuals()
        res["primal_residual"] = 1e9  # the caller's copy only
        assert sol.kkt_residuals()["primal_residual"] < 1e-8
        assert sol.is_optimal(1e-8)
        sol.W = 2.0 * W  # twice the optimal W: feasible, not stationary, twice the norm
        assert sol.objective == pytest.approx(2.0 * expected, rel=1e-12)
        assert sol.primal_residual() == 0.0
        assert sol.duality_gap() == pytest.approx(0.5, rel=1e-6)
        assert not sol.is_optimal(1e-3)
        np.testing.assert_allclose(sol.singular_values(), 2.0 * sv, rtol=1e-12)


def test_nearly_infeasible_instance_refined_to_its_margins():
    """(10, 5, 3) seed 34 of the rank figure: multipliers near 1e9 (unit scale) for
    ``||W||_F = 4.7e5``; ``W = sum lam_k a_k z_k^T`` cancels to 1e-5 of the margins.  The
    active rows are refined on ``W`` itself: every KKT residual below 1e-10, rank 3 (the
    nuclear solution's)."""
    inst = random_instance(10, 5, 3, seed=34)
    alpha = optimal_or_first(inst)
    sol = solve_fro(inst, alpha)
    assert sol.status == "optimal"
    assert max(sol.kkt_residuals().values()) <= 1e-10
    assert sol.rank == 3


def test_active_rows_off_their_margins_are_inaccurate():
    """Sequences scaled by 1e9 and 1e-9: the active set's kernel has condition 1e34 and its
    rows stay off their margins; the answer is ``inaccurate`` with a warning, never
    ``optimal``."""
    from attnsvm.exceptions import ConvergenceWarning

    base = random_instance(40, 20, 32, seed=1)
    X = base.X.copy()
    X[0] *= 1e9
    X[1] *= 1e-9
    inst = Instance(X=X, Z=base.Z, Y=base.Y, v=base.v)
    with pytest.warns(ConvergenceWarning, match="off their margins"):
        sol = solve_fro(inst)
    assert sol.status == "inaccurate"
    assert sol.primal_residual() > 1e-6
