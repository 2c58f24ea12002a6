"""The SciPy-free path of the spectral solver: NumPy linear algebra, Newton matrix, dual start.

``attnsvm solve --norm spec`` must not import SciPy (its import is most of a small solve's
process); the NumPy replacements must agree with SciPy's LAPACK calls to rounding, and the
default (SciPy) path of the Frobenius working set must stay SciPy's, bit for bit.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.linalg as sl

from attnsvm import random_instance
from attnsvm.svm import solve
from attnsvm.svm._cholesky import GrowingCholesky
from attnsvm.svm._linalg import (
    CholeskyFactor,
    cho_solve,
    cholesky,
    numpy_backend,
    solve_triangular,
)
from attnsvm.svm._spectral_ipm import _DenseNewton, _dual_start
from attnsvm.svm.frobenius import solve_fro_constraints
from test_geometry_svm import check_certificate, cvx_spec


def _spd(n: int, cond: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    M = (Q * np.logspace(0, np.log10(cond), n)) @ Q.T
    return (M + M.T) / 2


def test_spec_solve_process_imports_no_scipy(tmp_path):
    path = tmp_path / "i.npz"
    random_instance(6, 5, 4, seed=0).save(str(path))
    code = ("import sys\nfrom attnsvm.cli.main import main\n"
            f"rc = main(['solve', {str(path)!r}, '--norm', 'spec', '--json'])\n"
            "assert rc == 0, rc\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'scipy')\n"
            "assert not bad, bad[:5]\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert '"status": "optimal"' in p.stdout


@pytest.mark.parametrize("n", [1, 7, 64, 65, 200])
def test_numpy_backend_agrees_with_lapack(n):
    M = _spd(n, 1e6, n)
    L0 = sl.cholesky(M, lower=True)
    rng = np.random.default_rng(n)
    b, B = rng.standard_normal(n), rng.standard_normal((n, 3))
    with numpy_backend():
        L = cholesky(M, lower=True)
        R = cholesky(M, lower=False)
        np.testing.assert_allclose(L, L0, rtol=0, atol=1e-12 * np.abs(L0).max())
        np.testing.assert_allclose(R, L0.T, rtol=0, atol=1e-12 * np.abs(L0).max())
        for rhs in (b, B):
            for T, lower in ((L0, True), (L0.T, False)):
                for trans in (0, "T", 1):
                    x = solve_triangular(T, rhs, lower=lower, trans=trans)
                    y = sl.solve_triangular(T, rhs, lower=lower, trans=trans)
                    assert np.abs(x - y).max() <= 1e-12 * np.abs(y).max()
            y = sl.cho_solve((L0, True), rhs)
            for fac in ((L0, True), (L0.T, False)):
                assert np.abs(cho_solve(fac, rhs) - y).max() <= 1e-9 * np.abs(y).max()
            assert np.abs(CholeskyFactor(M).solve(rhs) - y).max() <= 1e-9 * np.abs(y).max()
            # the residual, independent of any reference: M x = rhs to rounding (cond 1e6)
            x = CholeskyFactor(M).solve(rhs)
            assert np.abs(M @ x - rhs).max() <= 1e-10 * np.abs(M).max() * np.abs(x).max()


def test_default_backend_is_scipy_bit_for_bit():
    M = _spd(90, 1e4, 3)
    b = np.random.default_rng(3).standard_normal(90)
    L = sl.cholesky(M, lower=True, check_finite=False)
    assert np.array_equal(cholesky(M, lower=True), L)
    assert np.array_equal(solve_triangular(L, b, lower=True),
                          sl.solve_triangular(L, b, lower=True, check_finite=False))
    assert np.array_equal(cho_solve((L, True), b), sl.cho_solve((L, True), b))
    g = GrowingCholesky.from_factor(L)  # the working set's call, on its buffer's view
    y = sl.solve_triangular(g.L, b, lower=True, check_finite=False)
    assert np.array_equal(g.solve(b), sl.solve_triangular(g.L, y, lower=True, trans="T",
                                                          check_finite=False))
    with numpy_backend():
        pass
    assert np.array_equal(cholesky(M, lower=True), L)   # the block restores SciPy


@pytest.mark.parametrize("shape,seed", [((10, 6, 8), 0), ((20, 8, 12), 1), ((40, 12, 24), 2)])
def test_frobenius_numpy_backend_agrees(shape, seed):
    c = random_instance(*shape, seed=seed).constraints()
    ref = solve_fro_constraints(c)
    with numpy_backend():
        sol = solve_fro_constraints(c)
    assert sol.status == ref.status == "optimal"
    assert np.linalg.norm(sol.W - ref.W) <= 1e-12 * np.linalg.norm(ref.W)
    assert np.abs(sol.dual - ref.dual).max() <= 1e-10 * np.abs(ref.dual).max()


@pytest.mark.parametrize("uneven", [False, True])
def test_dense_newton_matrix_against_its_definition(uneven):
    """M[(a,b),(c,e)] = <E_ab, L*(S^-1 L(E_ce) Z)> + sum_k D_k <a_k z_k^T, E_ab><..., E_ce>."""
    rng = np.random.default_rng(4)
    m, r1, r2, ng = 40, 4, 3, 5
    A, Zq = rng.standard_normal((m, r1)), rng.standard_normal((ng, r2))
    inv = np.repeat(np.arange(ng), m // ng)
    if uneven:  # one large group: the one-hot product instead of the padded one
        inv = np.concatenate([np.zeros(m - ng + 1, dtype=int), np.arange(1, ng)])
    p = r1 + r2
    X, Y = rng.standard_normal((p, p)), rng.standard_normal((p, p))
    Si, Z = X @ X.T, Y @ Y.T
    D = rng.random(m)

    def Lstar(S):
        return S[:r1, r1:] + S[r1:, :r1].T

    dn = _DenseNewton(A, inv, Zq)
    assert dn.padded is not uneven
    M = dn.matrix(Si, Z, Si @ Z, D, False, Lstar)
    N = r1 * r2
    ref = np.zeros((N, N))
    Zc = Zq[inv]
    for j in range(N):
        E = np.zeros(N)
        E[j] = 1.0
        dW = E.reshape(r1, r2)
        LdW = np.zeros((p, p))
        LdW[:r1, r1:], LdW[r1:, :r1] = dW, dW.T
        v = np.einsum("ki,ij,kj->k", A, dW, Zc)
        ref[:, j] = (Lstar(Si @ LdW @ Z) + A.T @ ((D * v)[:, None] * Zc)).ravel()
    np.testing.assert_allclose(M[1:, 1:], ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    assert M[0, 0] == pytest.approx(np.trace(Si @ Z))
    np.testing.assert_allclose(M[0, 1:], Lstar(Si @ Z).ravel())


def test_dual_start_meets_the_dual_equations():
    rng = np.random.default_rng(5)
    r1, r2, m = 4, 3, 9
    A, Zc = rng.standard_normal((m, r1)), rng.standard_normal((m, r2))
    lam0 = rng.random(m)
    G = A.T @ (lam0[:, None] * Zc)
    lam, Z = _dual_start(G, lam0, np.zeros(m), np.zeros((r1 + r2, r1 + r2)), r1, theta=0.0)
    nuc = np.linalg.svd(G, compute_uv=False).sum()
    np.testing.assert_allclose(lam, lam0 / nuc)
    assert np.trace(Z) == pytest.approx(1.0)
    assert np.linalg.eigvalsh(Z).min() >= -1e-12
    np.testing.assert_allclose(A.T @ (lam[:, None] * Zc) + 2 * Z[:r1, r1:], 0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(10, 6, 8), (20, 8, 12), (40, 12, 24)])
def test_spec_seeds_0_to_9_against_clarabel(shape):
    for seed in range(10):
        inst = random_instance(*shape, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sol = solve(inst, "spec")
        assert sol.status == "optimal" and sol.info["certified_gap"] <= 1e-8
        assert sol.objective == pytest.approx(cvx_spec(inst.constraints()), rel=1e-6)
        check_certificate(sol, 1e-8)
