"""Many nuclear-norm SVMs by one stacked interior point (solve_nuc_many) against the single
solver: same optima, same certified ranks, same statuses, every answer certified."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from attnsvm import Instance, random_instance
from attnsvm.svm import solve_fro_constraints, solve_nuc_constraints
from attnsvm.svm.nuclear import solve_nuc_many
from attnsvm.svm.nuclear._ipm import nuclear_ipm
from attnsvm.svm.nuclear._ipm_batch import nuclear_ipm_batch
from attnsvm.svm.nuclear._stack import Stack
from references import optimal_or_first, reduced_problem, with_equality_rows


def _cset(n, T, d, seed):
    """A random instance's constraints for its optimal tokens (the first on ties, as the
    rank figure: at d = 1 tokens are +-1 and ties are the rule)."""
    inst = random_instance(n, T, d, seed=seed)
    return inst.constraints(optimal_or_first(inst))


def _single(cs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [solve_nuc_constraints(c) for c in cs]


def _check(sol, tol=1e-9):
    """An optimal answer and its certificate: ||G||_op <= 1 and the gap closes to tol."""
    assert sol.info["certified_gap"] <= tol
    mu = sol.dual
    assert mu[sol.n_eq:].min() >= 0
    assert np.linalg.norm(sol.constraints.combine(mu), 2) <= 1 + 1e-12
    assert sol.margin >= 1 - tol
    lower = float(mu @ sol.b)
    assert sol.objective - lower <= tol * sol.objective


def _compare(cs, many, single):
    for c, b, a in zip(cs, many, single, strict=True):
        assert b.status == a.status or (b.status == "optimal" and a.status == "inaccurate")
        if b.status == "optimal":
            _check(b)
            assert b.constraints.m == c.m and b.W.shape == (c.A.shape[1], c.Zc.shape[1])
        if a.status == "optimal":
            assert b.objective == pytest.approx(a.objective, rel=1e-9)
            if a.info["rank_certified"]:
                assert b.info["rank"] == a.info["rank"]


@pytest.mark.parametrize("shape", [(5, 5, 1), (5, 5, 2), (6, 5, 4), (5, 8, 10), (10, 5, 6)])
def test_same_optima_and_ranks_as_the_single_solver(shape):
    cs = [_cset(*shape, s) for s in range(8)]
    many, single = solve_nuc_many(cs), _single(cs)
    _compare(cs, many, single)
    assert sum(s.info["batched"] for s in many) >= 1 or shape[2] == 1


def test_mixed_shapes_and_an_infeasible_instance_in_one_call():
    cs = [random_instance(n, T, d, seed=s).constraints()
          for s, (n, T, d) in enumerate([(5, 5, 4), (6, 4, 7), (5, 5, 4), (4, 6, 3), (6, 4, 7)])]
    inst = random_instance(4, 5, 6, seed=0)
    X, a = inst.X.copy(), inst.token_choice()
    X[0, (a[0] + 1) % 5] = X[0, a[0]]  # a token equal to the selected one: infeasible
    cs.insert(2, Instance(X=X, Z=inst.Z, alpha=a).constraints())
    many, single = solve_nuc_many(cs), _single(cs)
    _compare(cs, many, single)
    assert many[2].status == "infeasible" and many[2].is_certified_infeasible()
    np.testing.assert_array_equal(many[2].certificate, single[2].certificate)
    assert all(s.status == "optimal" for i, s in enumerate(many) if i != 2)


def test_reuses_given_frobenius_solutions_and_equality_rows():
    inst = random_instance(6, 6, 8, seed=7)
    cs = [with_equality_rows(inst), inst.constraints()]
    fro = [solve_fro_constraints(x) for x in cs]
    many = solve_nuc_many(cs, frobenius=fro)
    assert many[0].info["frobenius_solution"] is fro[0]
    assert many[0].info["equality_residual"] <= 1e-9
    _compare(cs, many, _single(cs))


def test_fallback_to_the_single_solver_when_the_batch_does_not_finish():
    cs = [random_instance(6, 5, 4, seed=s).constraints() for s in range(3)]
    many = solve_nuc_many(cs, max_iter=3)  # three iterations cannot certify anything
    assert not any(s.info["batched"] for s in many)
    _compare(cs, many, _single(cs))
    for s in many:
        _check(s)


def test_batched_interior_point_follows_the_single_one():
    """B = 1 and B = 3 stacks take the single solver's first iterations (to rounding) and
    end at its optimum; permuting the constraints (gathered, not broadcast, query products)
    changes nothing."""
    reds = []
    for s in range(3):
        reds.append(reduced_problem(random_instance(5, 5, 6, seed=s).constraints()))
    assert len({r.A.shape + r.Zq.shape for r in reds}) == 1
    A, Zq, loc, b = (np.stack([getattr(r, f) for r in reds]) for f in ("A", "Zq", "loc", "b"))
    for k in (1, 2, 5):
        one = nuclear_ipm(A[0], Zq[0], loc[0], b[0], max_iter=k, direction="hkm")
        bat = nuclear_ipm_batch(A, Zq, loc, b, max_iter=k)[0]
        assert bat is not None
        np.testing.assert_allclose(bat.state.X, one.state.X, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(bat.state.y, one.state.y, rtol=1e-8, atol=1e-10)
    full = nuclear_ipm_batch(A, Zq, loc, b, gap_tol=1e-12)
    perm = np.random.default_rng(0).permutation(A.shape[1])
    shuffled = nuclear_ipm_batch(A[:, perm], Zq, loc[:, perm], b[:, perm], gap_tol=1e-12)
    assert Stack(A, Zq, loc, b).c and not Stack(A[:, perm], Zq, loc[:, perm], b[:, perm]).c
    for i, (r, q) in enumerate(zip(full, shuffled, strict=True)):
        assert r is not None and q is not None
        one = nuclear_ipm(A[i], Zq[i], loc[i], b[i], gap_tol=1e-12)
        for res in (r, q):
            assert res.primal_objective == pytest.approx(one.primal_objective, rel=1e-8)
            assert res.dual_objective == pytest.approx(one.dual_objective, rel=1e-8)


def test_schur_complement_is_its_definition():
    """M_kl = <F_k, X F_l S> with F_k = [[0, a_k z_k^T], [z_k a_k^T, 0]], both gather paths."""
    rng = np.random.default_rng(3)
    B, g, c, r1, r2 = 2, 3, 4, 3, 2
    s, N = g * c, r1 + r2
    A = rng.standard_normal((B, s, r1))
    Zq = rng.standard_normal((B, g, r2))
    grp = np.tile(np.repeat(np.arange(g), c), (B, 1))
    X = rng.standard_normal((B, N, N))
    X = X @ np.swapaxes(X, 1, 2)
    S = rng.standard_normal((B, N, N))
    S = S @ np.swapaxes(S, 1, 2)
    perm = rng.permutation(s)
    for a, gr in ((A, grp), (A[:, perm], grp[:, perm])):
        st = Stack(a, Zq, gr, np.ones((B, s)))
        for i in range(B):
            F = np.zeros((s, N, N))
            for k in range(s):
                F[k, :r1, r1:] = np.outer(a[i, k], Zq[i, gr[i, k]])
                F[k, r1:, :r1] = F[k, :r1, r1:].T
            M = np.einsum("kab,bc,lcd,da->kl", F, X[i], F, S[i])
            np.testing.assert_allclose(st.schur_hkm(X, S)[i], M, rtol=1e-10, atol=1e-10)
            Mnt = np.einsum("kab,bc,lcd,da->kl", F, S[i], F, S[i])
            np.testing.assert_allclose(st.schur_nt(S)[i], Mnt, rtol=1e-10, atol=1e-10)
