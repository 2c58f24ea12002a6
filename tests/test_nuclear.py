"""The dedicated nuclear-norm solver: certificates, agreement with cvxpy, invariances, rank.

An independent reference is written here directly in cvxpy (not through attnsvm's conic
module): ``min ||W||_* s.t. a_k^T W z_k >= b_k`` (``= b_k`` on equality rows), Clarabel at
tight tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnsvm import Instance, random_instance
from attnsvm.svm import certified_rank, solve, solve_fro, solve_nuc, solve_nuc_constraints
from attnsvm.svm.nuclear._ipm import nuclear_ipm
from references import (
    check_nuclear_certificate,
    cvxpy_nuc,
    optimal_or_first,
    reduced_problem,
    with_equality_rows,
)


def _rank_deficient(n, T, d, r, seed):
    """Tokens and queries in an r-dimensional subspace of R^d."""
    rng = np.random.default_rng(seed)
    B = np.linalg.qr(rng.standard_normal((d, r)))[0]
    X = rng.standard_normal((n, T, r)) @ B.T
    Z = rng.standard_normal((n, r)) @ B.T
    X /= np.linalg.norm(X, axis=2, keepdims=True)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    return Instance(X=X, Z=Z, alpha=np.zeros(n, dtype=np.int64))


def _repeated(seed):
    inst = random_instance(5, 6, 8, seed=seed)
    X = np.concatenate([inst.X, inst.X[:2]])
    Z = np.concatenate([inst.Z, inst.Z[:2]])
    alpha = np.concatenate([inst.token_choice(), inst.token_choice()[:2]])
    return Instance(X=X, Z=Z, alpha=alpha)


STANDARD = {
    "paper-6x8x10": lambda: random_instance(6, 8, 10, seed=0),
    "paper-10x5x6": lambda: random_instance(10, 5, 6, seed=1),
    "paper-15x5x20": lambda: random_instance(15, 5, 20, seed=2),
    "self-attention": lambda: random_instance(6, 6, 8, seed=3, cross=False),
    "rank-deficient": lambda: _rank_deficient(8, 5, 10, 4, seed=4),
    "repeated-sequences": lambda: _repeated(5),
}


@pytest.mark.parametrize("name", sorted(STANDARD))
def test_standard_problems_match_cvxpy_and_certify(name):
    inst = STANDARD[name]()
    sol = solve_nuc(inst)
    check_nuclear_certificate(sol)
    ref = cvxpy_nuc(inst.constraints())
    assert sol.objective == pytest.approx(ref, rel=1e-6)
    # the nuclear solution is optimal in its norm: no worse than the Frobenius one's norm
    fro = solve_fro(inst)
    assert sol.objective <= np.linalg.svd(fro.W, compute_uv=False).sum() * (1 + 1e-9)
    assert fro.objective <= np.linalg.norm(sol.W) * (1 + 1e-9)


def test_equality_rows_match_cvxpy():
    cs = with_equality_rows(random_instance(6, 6, 8, seed=7))
    sol = solve_nuc_constraints(cs)
    check_nuclear_certificate(sol)
    assert sol.info["equality_residual"] <= 1e-9
    assert sol.objective == pytest.approx(cvxpy_nuc(cs), rel=1e-6)


def test_one_constraint_closed_form():
    X = np.array([[[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]]])
    z = np.array([[0.0, 3.0, 4.0]])
    sol = solve_nuc(Instance(X=X, Z=z, alpha=np.array([0])))
    a = X[0, 0] - X[0, 1]
    np.testing.assert_allclose(sol.W, np.outer(a, z[0]) / (a @ a * 25.0), atol=1e-12)
    assert sol.info["rank"] == 1 and sol.info["rank_certified"]


def test_infeasible_gets_the_farkas_certificate():
    inst = random_instance(4, 5, 6, seed=0)
    X = inst.X.copy()
    a = inst.token_choice()
    X[0, (a[0] + 1) % 5] = X[0, a[0]]  # a token equal to the selected one
    sol = solve_nuc(Instance(X=X, Z=inst.Z, alpha=a))
    assert sol.status == "infeasible" and sol.is_certified_infeasible()


def test_rotation_and_scale_invariance():
    inst = random_instance(8, 6, 7, seed=11)
    base = solve_nuc(inst)
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((7, 7)))[0]
    rot = solve_nuc(Instance(X=inst.X @ Q.T, Z=inst.Z @ Q.T, alpha=inst.token_choice()))
    assert rot.objective == pytest.approx(base.objective, rel=1e-8)
    np.testing.assert_allclose(rot.W, Q @ base.W @ Q.T, atol=1e-6 * np.abs(base.W).max())
    for s in (1e-80, 1e80):
        sc = solve_nuc(Instance(X=inst.X * s, Z=inst.Z, alpha=inst.token_choice()))
        check_nuclear_certificate(sc)
        assert sc.objective * s == pytest.approx(base.objective, rel=1e-8)


def test_token_permutation_invariance():
    inst = random_instance(6, 7, 8, seed=5)
    a = inst.token_choice()
    rng = np.random.default_rng(1)
    perm = np.stack([rng.permutation(7) for _ in range(6)])
    Xp = np.take_along_axis(inst.X, perm[:, :, None], axis=1)
    ap = np.array([int(np.flatnonzero(perm[i] == a[i])[0]) for i in range(6)])
    sol = solve_nuc(Instance(X=Xp, Z=inst.Z, alpha=ap))
    assert sol.objective == pytest.approx(solve_nuc(inst).objective, rel=1e-8)


def test_certified_rank_reads_the_spectra():
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    V = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    W = U[:, :2] @ np.diag([3.0, 1.0]) @ V[:, :2].T
    G = U[:, :5] @ np.diag([1.0, 1.0, 0.4, 0.2, 0.1]) @ V.T
    r = certified_rank(W, G)
    assert r["rank"] == 2 and r["rank_certified"]
    assert r["spectral_gap"] == pytest.approx(0.6)


def test_warm_start_and_registry_agree():
    inst = random_instance(12, 8, 10, seed=3)
    cold = solve(inst, "nuc")
    warm = solve_nuc(inst, warm_start=cold)
    assert warm.objective == pytest.approx(cold.objective, rel=1e-9)
    check_nuclear_certificate(warm)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(40, 12, 24), (60, 16, 32)])
def test_larger_shapes_match_cvxpy(shape):
    inst = random_instance(*shape, seed=0)
    sol = solve_nuc(inst)
    check_nuclear_certificate(sol)
    assert sol.objective == pytest.approx(cvxpy_nuc(inst.constraints()), rel=1e-6)


def _dense_constraint_matrices(red):
    """``F_k = [[0, a_k z_k^T], [z_k a_k^T, 0]]`` (N x N) of every row of ``red``, densely."""
    r1, N = red.A.shape[1], red.A.shape[1] + red.Zq.shape[1]
    F = []
    for k in range(red.A.shape[0]):
        Fk = np.zeros((N, N))
        Fk[:r1, r1:] = np.outer(red.A[k], red.Zq[red.loc[k]])
        F.append(Fk + Fk.T)
    return F


def test_nt_schur_complement_is_its_definition():
    """M_kl = <F_k, S F_l S> with F_k = [[0, a z^T], [z a^T, 0]], computed densely."""
    from attnsvm.svm.nuclear._sdp import Operators

    red = reduced_problem(random_instance(4, 4, 3, seed=1).constraints())
    ops = Operators(red.A, red.Zq, red.loc)
    rng = np.random.default_rng(0)
    B = rng.standard_normal((ops.N, ops.N))
    S = B @ B.T + np.eye(ops.N)
    F = _dense_constraint_matrices(red)
    dense = np.array([[np.sum(Fk * (S @ Fl @ S)) for Fl in F] for Fk in F])
    assert np.allclose(ops.schur(S), dense, rtol=1e-12, atol=1e-12 * np.abs(dense).max())


def test_structured_products_are_their_definitions():
    """The shortcuts of the interior point against dense algebra: the HKM Schur complement
    <F_k, X F_l Z^-1> (symmetric for symmetric X, Z), <F_k, A B> from two blocks of the
    product, and a product with a dual step [[0, G], [G^T, 0]]."""
    from attnsvm.svm.nuclear._sdp import Operators, times_antidiag

    red = reduced_problem(random_instance(5, 4, 3, seed=2).constraints())
    ops = Operators(red.A, red.Zq, red.loc)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((ops.N, ops.N))
    X = X @ X.T + np.eye(ops.N)
    Si = rng.standard_normal((ops.N, ops.N))
    Si = Si @ Si.T + np.eye(ops.N)
    F = _dense_constraint_matrices(red)
    dense = np.array([[np.sum(Fk * (X @ Fl @ Si)) for Fl in F] for Fk in F])
    assert np.allclose(ops.schur_hkm(X, Si), dense, rtol=1e-12,
                       atol=1e-12 * np.abs(dense).max())
    P, Q = rng.standard_normal((2, ops.N, ops.N))
    assert np.allclose(ops.apply_product(P, Q), [np.sum(Fk * (P @ Q)) for Fk in F],
                       rtol=1e-12, atol=1e-12)
    y = rng.standard_normal(ops.s)
    G = ops.adjoint_block(y)
    assert np.allclose(ops.adjoint(y), sum(yk * Fk for yk, Fk in zip(y, F, strict=True)))
    assert np.allclose(times_antidiag(P, G, ops.r1), P @ ops.adjoint(y), rtol=1e-12,
                       atol=1e-12)
    assert np.allclose(ops.adjoint(y, block=G, sign=-1.0), -ops.adjoint(y))


@pytest.mark.parametrize("seed", [0, 1])
def test_search_directions_reach_the_same_optimum(seed):
    """HKM, NT, the automatic switch and a centring floor are four paths to one optimum of
    the SDP."""

    red = reduced_problem(random_instance(10, 6, 8, seed=seed).constraints())
    objs = []
    for direction, centring in (("hkm", 0.0), ("nt", 0.0), ("auto", 0.0), ("auto", 0.2)):
        res = nuclear_ipm(red.A, red.Zq, red.loc, red.b, gap_tol=1e-10, direction=direction,
                          centring=centring)
        assert abs(res.primal_objective - res.dual_objective) <= 1e-8 * res.primal_objective
        objs.append(res.dual_objective)
    assert max(objs) - min(objs) <= 1e-8 * objs[0]


def test_resume_on_fewer_rows_reaches_the_direct_optimum():
    """A coarse run, restricted to its near-active rows and resumed, ends where a direct
    high-accuracy run on all rows ends (the dropped rows stay satisfied)."""

    red = reduced_problem(random_instance(12, 8, 8, seed=4).constraints())
    direct = nuclear_ipm(red.A, red.Zq, red.loc, red.b, gap_tol=1e-11)
    coarse = nuclear_ipm(red.A, red.Zq, red.loc, red.b, gap_tol=1e-4)
    vals = np.einsum("kd,kd->k", red.A, (red.Zq @ coarse.W.T)[red.loc])
    keep = np.flatnonzero(vals - red.b < 1e-2 * red.b)
    assert 0 < keep.size < red.b.size
    sub = red.restrict(keep)
    res = nuclear_ipm(sub.A, sub.Zq, sub.loc, sub.b, gap_tol=1e-11,
                      start=coarse.state.restrict(keep))
    assert res.dual_objective == pytest.approx(direct.dual_objective, rel=1e-8)
    vals = np.einsum("kd,kd->k", red.A, (red.Zq @ res.W.T)[red.loc])
    assert np.all(vals >= red.b * (1 - 1e-8))


def test_stopped_run_returns_a_bracketing_pair():
    """A run stopped early returns its best primal and its best dual iterate: the dual is
    feasible (||sum_k y_k a_k z_k^T||_op <= 1, y >= 0) and the two bracket the optimum."""

    red = reduced_problem(random_instance(10, 6, 6, seed=5).constraints())
    opt = nuclear_ipm(red.A, red.Zq, red.loc, red.b, gap_tol=1e-11).dual_objective
    early = nuclear_ipm(red.A, red.Zq, red.loc, red.b, gap_tol=1e-11, max_iter=9)
    assert not early.converged
    G = (red.A * early.y[:, None]).T @ red.Zq[red.loc]
    assert np.all(early.y >= 0) and np.linalg.norm(G, 2) <= 1 + 1e-12
    vals = np.einsum("kd,kd->k", red.A, (red.Zq @ early.W.T)[red.loc])
    upper = np.linalg.svd(early.W, compute_uv=False).sum() * max(1.0, np.max(red.b / vals))
    assert red.b @ early.y <= opt * (1 + 1e-10) and opt <= upper * (1 + 1e-10)
    assert upper - red.b @ early.y < 1e-2 * opt


def test_carried_iterate_reaches_the_direct_optimum():
    """A coarse run on part of the rows (some queries missing, so the bases grow), carried to
    a set with rows dropped and added, reaches the optimum of a direct run on that set."""
    from attnsvm.svm.nuclear._presolve import carry_state

    c = random_instance(14, 6, 20, seed=3).constraints()
    ginv = c.groups[1]
    whole = reduced_problem(c)
    ref = nuclear_ipm(whole.A, whole.Zq, whole.loc, whole.b, gap_tol=1e-11)
    active = whole.idx[ref.y > 1e-6 * ref.y.max()]
    early = active[ginv[active] < 10][:2]  # active rows of the first 10 queries, left out
    late = active[ginv[active] >= 10][:3]  # active rows of the other queries, added later
    old_set = np.setdiff1d(np.flatnonzero(ginv < 10), early)
    new_set = np.union1d(old_set[2:], np.concatenate([early, late]))
    old = reduced_problem(c, old_set)
    new = reduced_problem(c, new_set)
    assert new.V.shape[1] > old.V.shape[1]
    coarse = nuclear_ipm(old.A, old.Zq, old.loc, old.b, gap_tol=1e-3)
    state = carry_state(old, coarse.state, new)
    assert state is not None
    assert np.linalg.eigvalsh(state.Z)[0] > 0 and np.linalg.eigvalsh(state.X)[0] > 0
    assert np.all(state.x > 0) and np.all(state.y > 0)
    direct = nuclear_ipm(new.A, new.Zq, new.loc, new.b, gap_tol=1e-11)
    carried = nuclear_ipm(new.A, new.Zq, new.loc, new.b, gap_tol=1e-11, start=state)
    assert carried.converged
    assert carried.dual_objective == pytest.approx(direct.dual_objective, rel=1e-9)
    vals = np.einsum("kd,kd->k", new.A, (new.Zq @ carried.W.T)[new.loc])
    assert np.all(vals >= new.b * (1 - 1e-9))


def test_working_set_rounds_on_more_than_300_rows():
    """m > 300: scouting rounds (the third and later go on from the previous round's
    iterate, carried to the new set), dropped rows and the resumed final run; same optimum as
    the interior point on every row at once, certified."""

    inst = random_instance(60, 18, 16, seed=2)
    sol = solve_nuc(inst)
    check_nuclear_certificate(sol)
    assert sol.info["rounds"] >= 2 and sol.info["working_set"] < inst.constraints().m
    red = reduced_problem(inst.constraints())
    whole = nuclear_ipm(red.A, red.Zq, red.loc, red.b, gap_tol=1e-11)
    # the reduced problem is at unit scale: compare through the scale-free ratio
    c = inst.constraints()
    from attnsvm.svm.norms import row_scale

    assert sol.objective * row_scale(c.A) * row_scale(c.Zc) == pytest.approx(
        whole.dual_objective, rel=1e-8)


def test_ill_conditioned_rank_figure_instance_certified_and_ranks_agree():
    """(n, T, d) = (5, 15, 4), seed 69 of the rank figure: sigma_4 / sigma_1 = 1e-5, the
    Frobenius and nuclear solutions are the same rank-4 matrix to 1e-7; the nuclear answer is
    certified (the retry with a centring floor) and both read rank 4."""
    inst = random_instance(5, 15, 4, seed=69)
    alpha = inst.optimal_tokens()
    fro, nuc = solve_fro(inst, alpha), solve_nuc(inst, alpha)
    check_nuclear_certificate(nuc)
    assert np.linalg.norm(fro.W - nuc.W) <= 1e-7 * np.linalg.norm(fro.W)
    assert nuc.rank == fro.rank == 4


def test_nearly_infeasible_rank_figure_instance_certified_by_a_polish():
    """(n, T, d) = (10, 5, 3), seed 34 of the rank figure: ``||W||_* = 2.7e5`` for margins of
    1, the interior point stalls at a certified gap of 1e-7; its active rows pin the optimum
    and a polish certifies it (the tangent step, which comes first; before it, the face
    polish)."""
    inst = random_instance(10, 5, 3, seed=34)
    alpha = optimal_or_first(inst)
    c = inst.constraints(alpha)
    sol = solve_nuc_constraints(c)
    check_nuclear_certificate(sol)
    assert sol.info.get("tangent_polished") or sol.info.get("face_polished")
    assert sol.objective == pytest.approx(cvxpy_nuc(c), rel=1e-6)


def test_face_candidates_recover_a_perturbed_optimum():
    from attnsvm.svm.nuclear import certify_nuclear
    from attnsvm.svm.nuclear._polish import face_candidates

    # a full-rank optimum (3 x 3) pinned by its active rows
    inst = random_instance(8, 4, 3, seed=1)
    c = inst.constraints(inst.optimal_tokens())
    sol = solve_nuc_constraints(c)
    check_nuclear_certificate(sol)
    assert sol.rank == 3
    rng = np.random.default_rng(0)
    W = sol.W * (1 + 1e-7 * rng.standard_normal(sol.W.shape))  # off the face by 1e-7
    gaps = [certify_nuclear(c, Wp, y, tol=1e-9, warn=False).info["certified_gap"]
            for Wp, y in face_candidates(c, W)]
    assert min(gaps) <= 1e-10


@pytest.mark.parametrize("equalities", [False, True])
def test_tangent_polish_restores_a_certificate_lost_to_active_row_errors(equalities):
    """An optimum whose singular vectors are off by 1e-8 (rank kept, as an interior point
    leaves it) certifies only ~1e-8 once rescaled; the tangent step puts its active rows back
    on their bounds and, with the same multipliers, the gap drops to rounding."""
    from attnsvm.svm.nuclear import certify_nuclear
    from attnsvm.svm.nuclear._polish import tangent_polish

    inst = random_instance(12, 6, 10, seed=3)
    c = with_equality_rows(inst) if equalities else inst.constraints()
    sol = solve_nuc_constraints(c)
    check_nuclear_certificate(sol)
    r = sol.rank
    assert 1 <= r < 10
    U, s, Vt = np.linalg.svd(sol.W)
    rng = np.random.default_rng(1)
    Up = U[:, :r] + 1e-8 * rng.standard_normal((10, r))
    Vp = Vt[:r].T + 1e-8 * rng.standard_normal((10, r))
    W = Up @ np.diag(s[:r]) @ Vp.T
    before = certify_nuclear(c, W, sol.dual, tol=1e-9, warn=False)
    assert before.status == "inaccurate" and before.info["certified_gap"] > 1e-9
    Wp = tangent_polish(c, W, sol.dual, r)
    held = (sol.dual > 1e-6 * sol.dual.max()) | (np.arange(c.m) < c.n_eq)
    assert np.abs(c.values(Wp)[held] - c.rhs[held]).max() <= 1e-12
    after = certify_nuclear(c, Wp, sol.dual, tol=1e-9, warn=False)
    check_nuclear_certificate(after)
    # back to the accuracy of the multipliers themselves (the solver's own certificate)
    assert after.info["certified_gap"] <= 2 * sol.info["certified_gap"] + 1e-12
    assert np.linalg.norm(Wp - sol.W) <= 1e-6 * np.linalg.norm(sol.W)


@pytest.mark.parametrize("polish_gap", [0.25, 1e3])
def test_final_run_stopped_for_the_polish_certifies(monkeypatch, polish_gap):
    """The final run stops at ``polish_gap * tol`` in relative gap and leaves its primal
    residual to the tangent polish; where that falls short (a stop at a gap of 1e-6) the same
    run goes on to full accuracy.  Either way the answer is certified and is the optimum."""
    import attnsvm.svm.nuclear._policy as policy
    import attnsvm.svm.nuclear._rounds as rounds_mod
    import attnsvm.svm.nuclear.solver as nuc_mod

    c = random_instance(60, 16, 32, seed=2).constraints()
    ref = solve_nuc_constraints(c)
    check_nuclear_certificate(ref)
    stops = []
    real = nuc_mod.nuclear_ipm

    def spy(*a, **k):
        res = real(*a, **k)
        stops.append(res.stopped_for_polish)
        return res

    monkeypatch.setattr(policy, "POLISH_SHARE", polish_gap)
    monkeypatch.setattr(rounds_mod, "nuclear_ipm", spy)
    monkeypatch.setattr(nuc_mod, "nuclear_ipm", spy)
    sol = solve_nuc_constraints(c)
    check_nuclear_certificate(sol)
    assert any(stops)
    if polish_gap > 1:
        assert not stops[-1]  # the polish fell short: the run went on, not stopping again
    assert sol.objective == pytest.approx(ref.objective, rel=2e-9)
