"""Lifted rows as tables: the phase kernel is the Gram matrix of the explicit stacked real
normals, the table forms of values and combine are those of the (m, F, d) factors, and the
table solver's answer is the factor solver's (both exact)."""

from __future__ import annotations

import numpy as np
import pytest

from attnsvm.svm import _rotary_tables
from attnsvm.svm._rotary_tables import PhaseKernel
from attnsvm.svm.rotary import RotaryConstraintSet, rotary_rows, solve_lifted


def table_rows(m=30, d=5, F=3, integer=True, free=False, seed=0, nk=8, nq=4):
    rng = np.random.default_rng(seed)
    keys = rng.standard_normal((nk, d))
    ks = rng.integers(0, nk, m)
    ko = (ks + rng.integers(1, nk, m)) % nk      # two different keys per row
    qs = rng.standard_normal((nq, d))
    Z = qs[rng.integers(0, nq, m)]
    ds = rng.integers(-6, 7, m).astype(float)
    do = rng.integers(-6, 7, m).astype(float)
    if not integer:
        ds, do = ds + rng.uniform(0, 1, m), do + rng.uniform(0, 1, m)
    freqs = np.sort(rng.uniform(0.01, 2.0, F))
    fr = None
    if free:
        k0 = rng.standard_normal((nk, 3))
        fr = (k0[ks], k0[ko], rng.standard_normal((m, 3)))
    return rotary_rows(keys[ks], keys[ko], Z, ds, do, freqs, free=fr)


def explicit_gram(P):
    m = P.m
    L = np.concatenate([P.A.real.reshape(m, -1), P.A.imag.reshape(m, -1)], axis=1)
    K = (L @ L.T) * (P.Zc @ P.Zc.T)
    if P.A0 is not None:
        K += (P.A0 @ P.A0.T) * (P.Z0 @ P.Z0.T)
    return K


@pytest.mark.parametrize("integer,free", [(True, False), (False, False), (True, True)])
def test_phase_kernel_is_the_explicit_gram(integer, free, monkeypatch):
    P = table_rows(integer=integer, free=free, seed=1)
    assert P.tables is not None
    K = explicit_gram(P)
    kern = PhaseKernel(P.tables, P.A0, P.Z0, sA=1.7, sZ=0.6)
    Ks = K / (1.7 * 0.6) ** 2
    rows, cols = np.array([3, 0, 7, 7]), np.arange(0, P.m, 2)
    assert np.max(np.abs(kern.block(rows, cols) - Ks[np.ix_(rows, cols)])) <= 1e-12
    assert np.max(np.abs(kern.diag() - np.diag(Ks))) <= 1e-12
    c = kern.primal(np.array([1, 4, 4, 9]), np.array([0.5, 1.0, -0.25, 2.0]))
    assert np.max(np.abs(kern.values(c) - Ks @ c)) <= 1e-12
    # with the column cache too small to hold anything: the same numbers
    monkeypatch.setattr(_rotary_tables, "_CACHE_ENTRIES", 1)
    kern2 = PhaseKernel(P.tables, P.A0, P.Z0, sA=1.7, sZ=0.6)
    assert np.max(np.abs(kern2.values(c) - Ks @ c)) <= 1e-12
    assert np.max(np.abs(kern2.block(cols, rows) - Ks[np.ix_(cols, rows)])) <= 1e-12


def test_table_values_and_combine_are_the_factor_forms():
    P = table_rows(free=True, seed=2)
    Q = RotaryConstraintSet(A=P.A, Zc=P.Zc, freqs=P.freqs, A0=P.A0, Z0=P.Z0)
    rng = np.random.default_rng(2)
    M = rng.standard_normal((P.F, P.d, P.d)) + 1j * rng.standard_normal((P.F, P.d, P.d))
    W0 = rng.standard_normal((3, 3))
    assert np.max(np.abs(P.values(M, W0) - Q.values(M, W0))) <= 1e-12
    w = rng.standard_normal(P.m) * (rng.uniform(size=P.m) < 0.5)
    G, G0 = P.combine(w)
    H, H0 = Q.combine(w)
    assert np.max(np.abs(G - H)) <= 1e-12 and np.max(np.abs(G0 - H0)) <= 1e-12
    sub = P.subset(np.arange(P.m) % 3 == 0)
    assert np.max(np.abs(sub.values(M, W0) - Q.values(M, W0)[::3])) <= 1e-12


@pytest.mark.parametrize("nk,nq", [(8, 4), (3, 12), (40, 40)])
def test_table_combine_either_side_first_is_the_factor_form(nk, nq):
    """combine contracts the cell matrix with the keys first (fewer keys than queries) or with
    the queries first: both are the sum of the rows' factors, also on a sparse weight."""
    P = table_rows(m=50, d=4, F=3, free=True, seed=5, nk=nk, nq=nq)
    Q = RotaryConstraintSet(A=P.A, Zc=P.Zc, freqs=P.freqs, A0=P.A0, Z0=P.Z0)
    rng = np.random.default_rng(5)
    for w in (rng.standard_normal(P.m), rng.standard_normal(P.m) * (np.arange(P.m) % 7 == 0),
              np.zeros(P.m)):
        G, G0 = P.combine(w)
        H, H0 = Q.combine(w)
        assert G.shape == H.shape and G.dtype == np.complex128
        assert np.max(np.abs(G - H), initial=0.0) <= 1e-12 * max(1.0, np.max(np.abs(H)))
        assert np.max(np.abs(G0 - H0), initial=0.0) <= 1e-12 * max(1.0, np.max(np.abs(H0)))


@pytest.mark.parametrize("free", [False, True])
def test_table_certificate_holds_on_the_explicit_blocks(free, monkeypatch):
    """The table solver certifies from the Gram columns; its answer checked by explicit
    products alone: every margin of the formed M, the dual's sum is the unit direction of M
    (Frobenius stationarity), weak duality gives the objective; and the path that certifies
    from M's own values (taken when the norms disagree) gives the same answer."""
    from attnsvm.svm import _rotary_fro

    P = table_rows(m=60, d=5, F=4, free=free, seed=7, nk=10, nq=6)
    sol = solve_lifted(P)
    assert sol.status == "optimal" and "values" not in sol.info
    vals = P.values(sol.M, sol.W0)                       # explicit products with M
    assert np.min(vals) >= 1 - 1e-9
    G, G0 = P.combine(sol.dual)
    nG = np.sqrt(np.sum(np.abs(G) ** 2) + (0.0 if G0 is None else np.sum(G0**2)))
    assert nG == pytest.approx(1.0, rel=1e-10)
    assert np.max(np.abs(G - sol.M / sol.objective)) <= 1e-9 / sol.objective
    assert float(sol.dual @ np.ones(P.m)) == pytest.approx(sol.objective, rel=1e-9)
    assert np.max(np.abs(sol.dual * (vals - 1))) <= 1e-9 * sol.objective
    monkeypatch.setattr(_rotary_fro, "_NORM_RTOL", -1.0)
    ex = solve_lifted(P)
    assert ex.status == "optimal" and ex.info["values"] == "explicit"
    assert np.max(np.abs(ex.M - sol.M)) <= 1e-12 * np.max(np.abs(sol.M))
    assert ex.info["certified_gap"] <= 1e-9
    assert ex.info["kkt"]["stationarity"] <= 1e-9


@pytest.mark.parametrize("free", [False, True])
def test_table_solver_equals_factor_solver(free):
    P = table_rows(m=40, d=6, F=3, free=free, seed=3)
    Q = RotaryConstraintSet(A=P.A, Zc=P.Zc, freqs=P.freqs, A0=P.A0, Z0=P.Z0)
    a, b = solve_lifted(P), solve_lifted(Q)
    assert a.status == b.status == "optimal"
    assert "phase kernel" in a.info["solver"] and "stacked" in b.info["solver"]
    assert np.max(np.abs(a.M - b.M)) <= 1e-9 * np.max(np.abs(b.M))
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    assert a.info["certified_gap"] <= 1e-9 and np.min(P.values(a.M, a.W0)) >= 1 - 1e-9
    assert np.max(np.abs(a.dual - b.dual)) <= 1e-8 * np.max(b.dual)


def test_newton_jacobian_is_the_derivative_of_its_system():
    """The analytic Jacobian of the face system equals central differences (exact for a
    system of degree two), complex blocks and a real free block."""
    from attnsvm.svm import _rotary_newton as nt

    rng = np.random.default_rng(4)
    s, d1, d2 = 6, 4, 3
    blocks = [(rng.standard_normal((s, d1)) + 1j * rng.standard_normal((s, d1)),
               rng.standard_normal((s, d2)), None, False),
              (rng.standard_normal((s, 2)), rng.standard_normal((s, 3)), None, True)]
    shapes = [(d1, d2, 2, False), (2, 3, 1, True)]
    n_x = 2 * 2 * (d1 + d2) + 1 * (2 + 3) + s
    x = rng.standard_normal(n_x)

    def res(x):
        return nt.residual(blocks, shapes, x, s, np.zeros(s))

    J = nt._jacobian(blocks, shapes, x, s)
    E = np.eye(n_x)
    Jd = np.stack([(res(x + E[j]) - res(x - E[j])) / 2 for j in range(n_x)], axis=1)
    assert J.shape == Jd.shape and np.max(np.abs(J - Jd)) <= 1e-12
