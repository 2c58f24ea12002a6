"""The structured block interior point of the group nuclear lifted Att-SVM
(``svm/_rotary_ipm.py``): its rank-two maps against dense matrices, and its answers against
an independent conic formulation (cvxpy + Clarabel on complex ``M_f`` written from SPEC.md's
score), with margins, dual feasibility and certified gaps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from attnsvm.svm._rotary_ipm import BlockData, block_ipm
from attnsvm.svm._rotary_nuc import reduce_problem
from attnsvm.svm.rotary import rotary_constraints, solve_lifted
from test_rotary import cvxpy_lifted, margins, rotary_instance

IPM = "block interior point"


def _dense_rows(A, Z):
    """``B_k = u_k v_k^H + v_k u_k^H``, ``u = [a; 0]``, ``v = [0; z]``, formed densely."""
    r1, r2 = A.shape[1], Z.shape[1]
    out = []
    for a, z in zip(A, Z, strict=True):
        u = np.concatenate([a, np.zeros(r2)])
        v = np.concatenate([np.zeros(r1), z]).astype(complex)
        out.append(np.outer(u, v.conj()) + np.outer(v, u.conj()))
    return out


def _psd(rng, n):
    R = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    return R @ R.conj().T


def test_rank_two_maps_match_dense_matrices():
    rng = np.random.default_rng(3)
    m, r1, r2 = 7, 3, 4
    A = rng.standard_normal((m, r1)) + 1j * rng.standard_normal((m, r1))
    Z = rng.standard_normal((m, r2))
    bl = BlockData(A, Z)
    Bs = _dense_rows(A, Z)
    X, Si = _psd(rng, r1 + r2), _psd(rng, r1 + r2)
    H = np.array([[np.trace(Bk @ X @ Bl @ Si).real for Bl in Bs] for Bk in Bs])
    assert np.max(np.abs(bl.schur(X, Si) - H)) <= 1e-10 * np.max(np.abs(H))
    # the Schur complement of two PSD matrices is symmetric positive semidefinite
    assert np.allclose(H, H.T) and np.min(np.linalg.eigvalsh(bl.schur(X, Si))) >= -1e-9
    R = rng.standard_normal((r1 + r2, r1 + r2)) + 1j * rng.standard_normal((r1 + r2, r1 + r2))
    assert np.allclose(bl.apply(R), [np.trace(Bk @ R).real for Bk in Bs], atol=1e-12)
    y = rng.standard_normal(m)
    assert np.allclose(bl.adjoint(y), sum(yk * Bk for yk, Bk in zip(y, Bs, strict=True)),
                       atol=1e-12)


def test_ipm_primal_dual_pair_on_reduced_rows():
    """``pobj = dobj`` to 1e-10, the rows hold, ``||G_f||_2 <= 1`` (the dual cone) and
    ``M_f = 2 X_12`` reaches the primal objective (``tr X_f = ||M_f||_*`` at the optimum)."""
    P = rotary_constraints(*rotary_instance(n=6, T=5, d=5, F=3, seed=4))
    red, _ = reduce_problem(P)
    blocks = [BlockData(red.A[:, f], red.Zc) for f in range(red.F)]
    out = block_ipm(blocks, red.rhs, red.n_eq)
    assert max(out.rel_gap, out.primal_res, out.dual_res) <= 1e-10
    r1 = blocks[0].r1
    M = np.stack([2 * X[:r1, r1:] for X in out.X])
    assert np.min(red.values(M)) >= 1 - 1e-9
    nuc = sum(np.sum(np.linalg.svd(Mf, compute_uv=False)) for Mf in M)
    assert nuc == pytest.approx(out.pobj, rel=1e-9)
    G, _ = red.combine(out.y)
    assert max(np.linalg.svd(Gf, compute_uv=False)[0] for Gf in G) <= 1 + 1e-10
    assert np.all(out.y >= 0) or np.min(out.y) >= -1e-12
    assert float(red.rhs @ out.y) == pytest.approx(nuc, rel=1e-9)


def _check_against_reference(inst, tol=1e-6):
    P = rotary_constraints(*inst)
    sol = solve_lifted(P, "nuc")
    assert sol.status == "optimal"
    assert sol.info["solver"].startswith(IPM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st, Mref = cvxpy_lifted(*inst, norm="nuc")
    assert st.startswith("optimal")
    ref = sum(np.sum(np.linalg.svd(Mf, compute_uv=False)) for Mf in Mref)
    assert sol.objective == pytest.approx(ref, rel=tol)
    assert sol.info["lower_bound"] <= ref * (1 + 1e-9)
    assert np.min(margins(sol, *inst)) >= 1 - 1e-9
    assert sol.info["certified_gap"] <= 1e-9
    G, _ = P.combine(sol.dual)
    assert max(np.linalg.svd(Gf, compute_uv=False)[0] for Gf in G) <= 1 + 1e-12
    assert np.all(sol.dual >= 0)
    return sol


@pytest.mark.parametrize("shape,seed", [((5, 5, 4, 2), 11), ((6, 4, 5, 3), 12),
                                        ((4, 6, 3, 4), 13)])
def test_block_ipm_equals_conic_reference(shape, seed):
    n, T, d, F = shape
    _check_against_reference(rotary_instance(n=n, T=T, d=d, F=F, seed=seed))


def test_free_block_and_equalities_against_reference():
    """W0 (real, position-free) beside the rotary blocks: the lifted target equals cvxpy's
    ``min sum ||M_f||_* + ||W0||_*`` written from the scores."""
    import cvxpy as cp

    X, Z, pos, qpos, freqs, alpha = rotary_instance(n=4, T=4, d=3, F=2, seed=21)
    rng = np.random.default_rng(21)
    X0, Z0 = rng.standard_normal(X.shape[:2] + (3,)), rng.standard_normal((4, 3))
    P = rotary_constraints(X, Z, pos, qpos, freqs, alpha, free_dims=(X0, Z0))
    sol = solve_lifted(P, "nuc")
    assert sol.status == "optimal" and sol.info["solver"].startswith(IPM)
    Ms = [cp.Variable((3, 3), complex=True) for _ in freqs]
    W0 = cp.Variable((3, 3))

    def score(i, t):
        return sum(cp.real(np.exp(1j * w * (qpos[i] - pos[i, t])) * (X[i, t] @ Mf @ Z[i]))
                   for w, Mf in zip(freqs, Ms, strict=True)) + X0[i, t] @ W0 @ Z0[i]

    cons = [score(i, alpha[i]) - score(i, t) >= 1 for i in range(4) for t in range(4)
            if t != alpha[i]]
    prob = cp.Problem(cp.Minimize(sum(cp.normNuc(Mf) for Mf in Ms) + cp.normNuc(W0)), cons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert sol.objective == pytest.approx(prob.value, rel=1e-6)
    assert sol.info["certified_gap"] <= 1e-9
    assert np.min(P.values(sol.M, sol.W0)) >= 1 - 1e-9


def test_infeasible_selection_is_certified():
    """A competitor with the selected token's key at the selected token's position scores
    the same under every Theta: infeasible, with a Farkas certificate."""
    X, Z, pos, qpos, freqs, alpha = rotary_instance(n=4, T=4, d=3, F=2, seed=5)
    t = (alpha[0] + 1) % 4
    X[0, t], pos[0, t] = X[0, alpha[0]], pos[0, alpha[0]]
    P = rotary_constraints(X, Z, pos, qpos, freqs, alpha)
    sol = solve_lifted(P, "nuc")
    assert sol.status == "infeasible" and sol.certificate is not None
    c = sol.certificate
    assert np.all(c >= 0) and np.sum(c) > 0
    G, _ = P.combine(c)
    assert np.max(np.abs(G)) <= 1e-9 * np.max(np.abs(c))


@pytest.mark.slow
@pytest.mark.parametrize("shape,seed", [((16, 10, 12, 8), 0), ((12, 8, 8, 6), 1),
                                        ((20, 6, 10, 12), 2)])
def test_block_ipm_equals_conic_reference_larger(shape, seed):
    n, T, d, F = shape
    _check_against_reference(rotary_instance(n=n, T=T, d=d, F=F, seed=seed))
