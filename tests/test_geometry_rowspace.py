"""The row-space Newton solves of the max-norm and spectral interior points.

Their kernels against the explicit ``m x N`` row matrix, their Newton solves against the dense
systems they replace, and the solvers that use them against the dense method, HiGHS and
cvxpy + Clarabel, at sizes where the dense method is the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnsvm import random_instance
from attnsvm.svm import solve
from attnsvm.svm._linf_ipm import _dense_newton, _rows_newton
from attnsvm.svm._rowspace import RowGram
from attnsvm.svm._spectral_rows import _pair_newton
from test_geometry_svm import check_certificate, cvx_spec, dense_lp


def _rows(rng, m=23, d1=4, d2=5, ng=6):
    A = rng.standard_normal((m, d1))
    Zq = rng.standard_normal((ng, d2))
    inv = rng.integers(0, ng, m)
    return A, Zq, inv


def test_row_gram_and_cross_against_the_row_matrix():
    rng = np.random.default_rng(0)
    A, Zq, inv = _rows(rng)
    C = np.einsum("ki,kj->kij", A, Zq[inv]).reshape(A.shape[0], -1)
    R = rng.random((4, 5))
    T = rng.standard_normal((4, 4))
    T = T + T.T
    Z = Zq[inv]
    for dense in (True, False):
        rg = RowGram(A, Zq, inv)
        if not dense:
            rg.C = None   # the grouped way
        np.testing.assert_allclose(rg.gram(R), (C * R.ravel()) @ C.T, atol=1e-12)
        K2 = np.einsum("ki,kj,ij,lj,li->kl", A[:, :4], Z[:, :4], T, A[:, :4], Z[:, :4])
        np.testing.assert_allclose(rg.cross(T), K2, atol=1e-12)


@pytest.mark.parametrize("n_eq", [0, 2])
def test_linf_row_space_newton_equals_the_dense_system(n_eq):
    rng = np.random.default_rng(1)
    A, Zq, inv = _rows(rng, m=15)
    m, d1, d2 = A.shape[0], 4, 5
    N = d1 * d2
    Zc = Zq[inv]
    # a late iterate: most entries near a bound (large weight), a few free (tiny weight)
    Du = np.where(rng.random(N) < 0.5, 1e6, 1e-3) * rng.random(N)
    Dl = rng.random(N) * 1e-3
    Dl[:4] = 1e-9
    Du[:4] = 1e-9
    D = rng.random(m - n_eq) * 1e4
    onehot = np.zeros((Zq.shape[0], m))
    onehot[inv, np.arange(m)] = 1.0
    AA = (A[:, :, None] * A[:, None, :]).reshape(m, -1)
    zz = (Zq[:, :, None] * Zq[:, None, :]).reshape(Zq.shape[0], -1)
    E = np.zeros((n_eq, N + 1))
    E[:, 1:] = np.einsum("ki,kj->kij", A[:n_eq], Zc[:n_eq]).reshape(n_eq, N)

    def values(w):
        return np.einsum("kd,kd->k", A, (Zq @ w.reshape(d1, d2).T)[inv])

    def combine(x):
        return (A.T @ (x[:, None] * Zc)).ravel()

    dense = _dense_newton(E, AA, zz, onehot, Du, Dl, D, n_eq, d1, d2)
    rows = _rows_newton(RowGram(A, Zq, inv), Du, Dl, D, n_eq, values, combine)
    rt, rw, re = 0.3, rng.standard_normal(N), rng.standard_normal(n_eq)
    for a, b in zip(dense(rt, rw, re), rows(rt, rw, re), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def _barrier(t, sig, mu, r1, r2):
    """The pieces of mu x the Hessian of -log det(t I + L(X)) at X = diag(sig), and the
    dense matrix in (t, vec X)."""
    rc, p, N = sig.size, r1 + r2, r1 * r2
    den = t * t - sig ** 2
    al, be = t / den, -sig / den
    ci = np.arange(rc)
    P = np.full(r1, 1 / t)
    P[:rc] = al
    Rr = np.full(r2, 1 / t)
    Rr[:rc] = al
    Hd = 2 * mu * np.outer(P, Rr)
    Hd[ci, ci] += 2 * mu * be ** 2
    Hx = 2 * mu * np.outer(be, be)
    Hx[ci, ci] = 0
    ed = 4 * mu * al * be
    H = np.zeros((N + 1, N + 1))
    H[np.arange(1, N + 1), np.arange(1, N + 1)] = Hd.ravel()
    for i in range(rc):
        H[0, 1 + i * r2 + i] = H[1 + i * r2 + i, 0] = ed[i]
        for j in range(rc):
            if i != j:
                H[1 + i * r2 + j, 1 + j * r2 + i] = Hx[i, j]
    S = t * np.eye(p)
    S[ci, r1 + ci] = S[r1 + ci, ci] = sig
    Si = np.linalg.inv(S)
    H[0, 0] = mu * np.trace(Si @ Si)
    return Hd, Hx, ed, H, S


def test_spectral_barrier_hessian_in_the_singular_basis():
    r1, r2, t, mu = 4, 5, 3.0, 0.7
    p, N = r1 + r2, r1 * r2
    sig = np.array([2.5, 1.7, 0.9, 0.2])
    *_, H, S = _barrier(t, sig, mu, r1, r2)

    def phi(y):
        X = y[1:].reshape(r1, r2)
        M = y[0] * np.eye(p)
        M[:r1, r1:] += X
        M[r1:, :r1] += X.T
        return -np.linalg.slogdet(M)[1]

    y0 = np.concatenate([[t], S[:r1, r1:].ravel()])
    h = 1e-4
    for i in range(N + 1):
        for j in range(i, N + 1):
            ei, ej = np.eye(N + 1)[i] * h, np.eye(N + 1)[j] * h
            fd = (phi(y0 + ei + ej) - phi(y0 + ei - ej) - phi(y0 - ei + ej)
                  + phi(y0 - ei - ej)) / (4 * h * h)
            assert mu * fd == pytest.approx(H[i, j], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("free", [1e3, 1e-12])
def test_spectral_pair_newton_equals_the_dense_system(free, monkeypatch):
    """The row-space solve of ``mu H + C^T D C`` (with equality rows) against the dense KKT
    system, with and without pairs kept in the Schur complement, near the top singular
    value (Hessian entries of very different sizes)."""
    import attnsvm.svm._spectral_rows as sr

    rng = np.random.default_rng(2)
    r1, r2, rc, n_eq = 4, 5, 4, 2
    A, Zq, inv = _rows(rng, m=12, d1=r1, d2=r2, ng=4)
    m, p = A.shape[0], r1 + r2
    t, mu = 3.0, 1e-4
    sig = np.array([2.99999, 2.5, 1.0, 0.3])
    Hd, Hx, ed, H, _ = _barrier(t, sig, mu, r1, r2)
    D = rng.random(m - n_eq) * 10
    C = np.hstack([np.zeros((m, 1)), np.einsum("ki,kj->kij", A, Zq[inv]).reshape(m, -1)])
    M = H + C[n_eq:].T @ (D[:, None] * C[n_eq:])
    KKT = np.block([[M, C[:n_eq].T], [C[:n_eq], np.zeros((n_eq, n_eq))]])
    rt, rX, re = 0.3, rng.standard_normal((r1, r2)), rng.standard_normal(n_eq)
    rhs = np.concatenate([[rt], rX.ravel(), re])
    ref = np.linalg.solve(KKT, rhs)
    monkeypatch.setattr(sr, "_FREE", free)
    dt, dX, dnu = _pair_newton(RowGram(A, Zq, inv), Hd, Hx, ed, mu, t, sig, p, rc, D,
                               n_eq)(rt, rX, re)
    x = np.concatenate([[dt], dX.ravel(), -dnu])

    def backward_error(y):
        return np.linalg.norm(KKT @ y - rhs) / (np.linalg.norm(KKT, 2) * np.linalg.norm(y)
                                                + np.linalg.norm(rhs))

    # the system is ill conditioned (as near an optimum): compare backward errors
    assert backward_error(x) <= max(1e-12, 10 * backward_error(ref))
    np.testing.assert_allclose(x[0], ref[0], rtol=1e-3)


@pytest.mark.parametrize("shape,seed", [((6, 8, 10), 0), ((12, 6, 8), 2), ((8, 10, 12), 5)])
def test_linf_rows_against_dense_and_highs(shape, seed):
    inst = random_instance(*shape, seed=seed)
    rows = solve(inst, "linf", newton="rows")
    dense = solve(inst, "linf", newton="dense")
    assert rows.info["newton"] == "rows" and dense.info["newton"] == "dense"
    assert rows.status == "optimal"
    assert rows.objective == pytest.approx(dense.objective, rel=1e-9)
    assert rows.objective == pytest.approx(dense_lp(inst.constraints()), rel=1e-7)
    check_certificate(rows, 1e-9)
    assert rows.info["least_frobenius"] is True
    assert np.linalg.norm(rows.W) == pytest.approx(np.linalg.norm(dense.W), rel=1e-6)


@pytest.mark.parametrize("shape,seed", [((6, 8, 10), 0), ((10, 5, 6), 2)])
def test_spec_rows_against_dense_and_clarabel(shape, seed):
    inst = random_instance(*shape, seed=seed)
    rows = solve(inst, "spec", newton="rows")
    dense = solve(inst, "spec", newton="dense")
    assert rows.info["newton"] == "rows" and dense.info["newton"] == "dense"
    assert rows.status == "optimal"
    assert rows.objective == pytest.approx(dense.objective, rel=1e-8)
    assert rows.objective == pytest.approx(cvx_spec(inst.constraints()), rel=1e-6)
    check_certificate(rows, 1e-8)
    assert rows.info["least_frobenius"] is True


def test_bad_newton_option():
    from attnsvm.exceptions import AttnSVMError

    inst = random_instance(3, 4, 5, seed=0)
    for norm in ("linf", "spec"):
        with pytest.raises(AttnSVMError, match="newton"):
            solve(inst, norm, newton="lu")
