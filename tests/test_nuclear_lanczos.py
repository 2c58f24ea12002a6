"""The nuclear interior point's Lanczos step lengths are repeatable (N > DENSE_MAX).

On the probe's MiniLM layer-0 head 5 one of 196 Lanczos estimates made ARPACK ask for a random
vector (its Krylov space broke down); SciPy then seeded a generator from the operating system,
and the solution changed in its last bits from run to run.  ``-L - I`` (``L`` the periodic
path Laplacian) has the start vector ``ones`` as an exact eigenvector, so the first Lanczos
step breaks down and ARPACK must draw: without a seeded generator two calls disagree in the
last bits (checked when the test was written: four calls gave four different values).
"""

from __future__ import annotations

import numpy as np
import pytest

from attnsvm.svm.nuclear import _newton

N = 300  # above DENSE_MAX: the Lanczos branch

draws_seeded = pytest.mark.skipif(
    not _newton._eigsh_takes_rng(),
    reason="SciPy < 1.15: Fortran ARPACK draws from its own per-process generator")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # two BLAS threads on a busy 2-core machine make these solves ~30x slower
    try:
        from threadpoolctl import threadpool_limits  # with scikit-learn (extra "test")
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


def _breakdown_matrix() -> np.ndarray:
    eye = np.eye(N)
    lap = 2 * eye - np.roll(eye, 1, axis=1) - np.roll(eye, -1, axis=1)
    return -lap - eye  # eigenvalues -1 - 2 + 2 cos(2 pi k / N): -5 (N even) ... -1 (ones)


@draws_seeded
def test_lanczos_breakdown_needs_a_random_vector():
    # the premise: ARPACK draws from the generator on this matrix
    from scipy.sparse.linalg import eigsh

    C = _breakdown_matrix()
    g = np.random.default_rng(_newton.ARPACK_SEED)
    before = str(g.bit_generator.state)
    eigsh(C, k=1, which="SA", tol=1e-6, maxiter=20 * N, v0=np.ones(N),
          return_eigenvectors=False, rng=g)
    assert str(g.bit_generator.state) != before


@draws_seeded
@pytest.mark.parametrize("matvec", [False, True])
def test_min_eig_is_repeatable_bit_for_bit_and_accurate(matvec):
    C = _breakdown_matrix()
    mv = (lambda v: C @ v) if matvec else None
    vals = [_newton._min_eig(lambda: C, N, mv) for _ in range(3)]
    assert len({v.hex() for v in vals}) == 1
    exact = float(np.linalg.eigvalsh(C)[0])
    assert exact == pytest.approx(-5.0, abs=1e-12)
    assert vals[0] == pytest.approx(exact, rel=1e-6)  # eigsh's tol


@draws_seeded
def test_max_step_is_repeatable_on_a_breakdown():
    # _max_step's operator L^-1 D L^-T with L = I: the same breakdown, the same step twice
    C = _breakdown_matrix()
    steps = [_newton._max_step(np.eye(N), C, 0.98) for _ in range(2)]
    assert steps[0] == steps[1]
    assert steps[0] == pytest.approx(0.98 / 5.0, rel=1e-6)  # 1 + alpha lam_min = 1 - tau



def test_large_path_pins_the_objective_of_254a212(monkeypatch):
    # N = r1 + r2 = 129 + 129 > DENSE_MAX: every step length from Lanczos.  The pinned
    # objective was computed with the tree of commit 254a212 (before the interior point was
    # split into _sdp/_newton/_ipm): solve_nuc(random_instance(129, 2, 129, seed=0)) with one
    # BLAS thread gave 42.70053322027926 and the same W bytes as this tree (sha256
    # 245578dd89f4...) on the 2-core sandbox; ARPACK drew no random vector on it.  Other BLAS
    # builds and thread counts differ in the last digits: the pin is the certified tolerance.
    from attnsvm import random_instance
    from attnsvm.svm import solve_nuc

    large = []
    orig = _newton._min_eig

    def counting(dense, n, matvec=None):
        large.append(n > _newton.DENSE_MAX)
        return orig(dense, n, matvec)

    monkeypatch.setattr(_newton, "_min_eig", counting)
    sol = solve_nuc(random_instance(129, 2, 129, seed=0))
    assert sol.status == "optimal" and sol.info["certified_gap"] <= 1e-9
    assert large and all(large)
    assert sol.objective == pytest.approx(42.70053322027926, rel=1e-9)
    assert sol.primal_residual() <= 1e-9
