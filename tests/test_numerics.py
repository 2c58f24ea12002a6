"""Shared numerics: the SVD that falls back to LAPACK's QR-iteration driver."""

from __future__ import annotations

import numpy as np
import pytest

from attnsvm import _numerics
from attnsvm._numerics import row_space_basis, svd


def test_svd_falls_back_to_gesvd_where_gesdd_fails(monkeypatch):
    rng = np.random.default_rng(0)
    M = rng.standard_normal((30, 8)) @ rng.standard_normal((8, 12))  # rank 8
    ref = row_space_basis(M)

    def failing(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(_numerics.np.linalg, "svd", failing)
    U, s, Vt = svd(M)
    np.testing.assert_allclose((U * s) @ Vt, M, atol=1e-12 * np.abs(M).max())
    B = row_space_basis(M)
    assert B.shape == ref.shape == (12, 8)
    # the same subspace: the projectors agree
    np.testing.assert_allclose(B @ B.T, ref @ ref.T, atol=1e-12)
    # non-finite input is not retried: the error stands
    M[0, 0] = np.nan
    with pytest.raises(np.linalg.LinAlgError):
        svd(M)
