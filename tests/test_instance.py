"""Instance validation, scores, ties and the .npz format."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from attnsvm import Instance, InvalidInputError, random_instance
from attnsvm.exceptions import InstanceFileError
from attnsvm.instance import TiedTokensError


def test_roundtrip(tmp_path, small_instance):
    p = tmp_path / "i.npz"
    small_instance.save(p)
    back = Instance.load(p)
    np.testing.assert_array_equal(back.X, small_instance.X)
    np.testing.assert_array_equal(back.Z, small_instance.Z)
    assert back.optimal_tokens().tolist() == small_instance.optimal_tokens().tolist()


def test_self_attention_roundtrip(tmp_path):
    inst = random_instance(3, 4, 5, seed=1, cross=False)
    p = tmp_path / "s.npz"
    Instance(X=inst.X, query_index=2, Y=inst.Y, v=inst.v).save(p)
    back = Instance.load(p)
    assert back.Z is None and back.query_index == 2
    np.testing.assert_array_equal(back.queries, inst.X[:, 2])


def test_scores_and_optimal_tokens(small_instance):
    g = small_instance.token_scores()
    expected = small_instance.Y[:, None] * np.einsum("ntd,d->nt", small_instance.X,
                                                     small_instance.v)
    np.testing.assert_allclose(g, expected)
    assert small_instance.optimal_tokens().tolist() == np.argmax(g, 1).tolist()


def test_ties_are_reported():
    X = np.array([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    inst = Instance(X=X, Z=np.ones((1, 2)), Y=np.array([1]), v=np.array([1.0, 0.0]))
    with pytest.raises(TiedTokensError) as err:
        inst.optimal_tokens()
    assert err.value.ties == {0: [0, 1]}


def test_choice_requires_alpha_or_head():
    with pytest.raises(InvalidInputError, match="alpha"):
        Instance(X=np.ones((1, 2, 2)), Z=np.ones((1, 2))).token_choice()


BAD = [
    (dict(X=np.ones((2, 3))), "'X'"),
    (dict(X=np.ones((2, 1, 3))), "at least 2 tokens"),
    (dict(X=np.ones((0, 3, 3))), "at least one sequence"),
    (dict(X=np.full((1, 2, 2), np.nan)), "finite"),
    (dict(X=np.ones((1, 2, 2)), Z=np.ones((1, 3))), "'Z'"),
    (dict(X=np.ones((1, 2, 2)), Y=np.array([0.5])), "'Y'"),
    (dict(X=np.ones((1, 2, 2)), alpha=np.array([2])), "'alpha'"),
    (dict(X=np.ones((1, 2, 2)), alpha=np.array([0.5])), "'alpha'"),
    (dict(X=np.ones((1, 2, 2)), alpha=np.array([-1])), "'alpha'"),
    (dict(X=np.array([[["a", "b"], ["c", "d"]]])), "'X'"),
    (dict(X=np.ones((1, 2, 2)), v=np.ones(3)), "'v'"),
    (dict(X=np.ones((1, 2, 2), dtype=complex)), "'X'"),
]


@pytest.mark.parametrize("kwargs,match", BAD)
def test_rejects_bad_fields(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        Instance(**kwargs)


def test_rejects_missing_and_non_npz(tmp_path):
    with pytest.raises(InstanceFileError):
        Instance.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("hello")
    with pytest.raises(InstanceFileError, match="not a .npz"):
        Instance.load(bad)


def test_rejects_object_arrays(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, X=np.array([[[1, 2]], [[3]]], dtype=object))
    with pytest.raises(InvalidInputError, match="object"):
        Instance.load(p)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4),
                  elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_validator_accepts_exactly_finite_3d_arrays(arr):
    ok = arr.ndim == 3 and arr.shape[0] >= 1 and arr.shape[1] >= 2 and arr.shape[2] >= 1 \
        and np.all(np.isfinite(arr))
    if ok:
        assert Instance(X=arr).X.shape == arr.shape
    else:
        with pytest.raises(InvalidInputError):
            Instance(X=arr)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 8), min_size=1, max_size=4))
def test_alpha_validator(values):
    n = len(values)
    alpha = np.array(values)
    if alpha.min() >= 0 and alpha.max() < 4:
        assert Instance(X=np.ones((n, 4, 2)), alpha=alpha).alpha.tolist() == values
    else:
        with pytest.raises(InvalidInputError, match="alpha"):
            Instance(X=np.ones((n, 4, 2)), alpha=alpha)


def test_ties_are_relative_to_the_scores_scale(small_instance):
    tiny = Instance(X=1e-100 * small_instance.X, Z=small_instance.Z, Y=small_instance.Y,
                    v=small_instance.v)
    assert tiny.optimal_tokens().tolist() == small_instance.optimal_tokens().tolist()


# ---------------------------------------------------------------- one alpha validation
@pytest.mark.parametrize("bad", [[-1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 8], [0.5, 0, 0, 0, 0, 0],
                                 [0, 0, 0]])
def test_every_alpha_entry_point_validates(small_instance, bad):
    """margins/margin/constraints/Instance all reject the same alphas (no silent wrap)."""
    W = np.eye(small_instance.d)
    for call in (lambda: small_instance.margins(W, np.array(bad)),
                 lambda: small_instance.margin(W, np.array(bad)),
                 lambda: small_instance.constraints(np.array(bad)),
                 lambda: small_instance.check_alpha(np.array(bad))):
        with pytest.raises(InvalidInputError, match="'alpha'"):
            call()


def test_margins_are_the_constraint_values(small_instance):
    """margins(W)[i, t] = (x_{i,a_i} - x_it)^T W z_i, computed independently."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((small_instance.d, small_instance.d))
    a = small_instance.optimal_tokens()
    m = small_instance.margins(W, a)
    X, Z = small_instance.X, small_instance.Z
    for i in range(small_instance.n):
        for t in range(small_instance.T):
            if t == a[i]:
                assert m[i, t] == np.inf
            else:
                assert m[i, t] == pytest.approx((X[i, a[i]] - X[i, t]) @ W @ Z[i], abs=1e-12)


@pytest.mark.parametrize("value,shown", [
    (np.full(2, 1e30), "1e+30"),
    (np.full(2, 2**64 - 1, dtype=np.uint64), "18446744073709551615"),
    (np.full(2, -(2**40), dtype=np.int64), str(-(2**40))),
])
def test_alpha_reported_with_its_real_value_and_no_warning(value, shown):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no cast warning on the way to the error
        with pytest.raises(InvalidInputError, match=shown.replace("+", r"\+")):
            Instance(X=np.ones((2, 3, 2)), alpha=value)


# ---------------------------------------------------------------- bounded, honest reading
def _npz_with_member(path, name, shape, dtype="<f8", data=b""):
    """A zip archive whose member's .npy header declares ``shape`` but holds ``data``."""
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
        "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}.npy", buf.getvalue() + data)
        zf.writestr("alpha.npy", _npy(np.zeros(2, dtype=np.int64)))
    return path


def _npy(arr):
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_huge_declared_shape_is_refused_before_allocating(tmp_path):
    p = _npz_with_member(tmp_path / "huge.npz", "X", (10**6, 10**6, 10**3), data=b"\0" * 64)
    with pytest.raises(InstanceFileError, match="truncated or corrupt"):
        Instance.load(p)


def test_truncated_member_is_blamed_as_truncated(tmp_path):
    good = random_instance(2, 3, 2, seed=0)
    p = _npz_with_member(tmp_path / "t.npz", "X", good.X.shape, data=good.X.tobytes()[:40])
    with pytest.raises(InstanceFileError, match="truncated or corrupt") as err:
        Instance.load(p)
    assert "object" not in str(err.value)


def test_corrupt_member_is_blamed_as_corrupt(tmp_path, small_instance):
    p = tmp_path / "c.npz"
    small_instance.save(p)
    data = bytearray(p.read_bytes())
    data[200:260] = b"\xff" * 60  # inside X's data: the CRC no longer matches
    p.write_bytes(bytes(data))
    with pytest.raises(InstanceFileError, match="truncated or corrupt") as err:
        Instance.load(p)
    assert "object" not in str(err.value)


def test_cut_archive_is_not_blamed_on_object_arrays(tmp_path, small_instance):
    p = tmp_path / "cut.npz"
    small_instance.save(p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(InstanceFileError, match="truncated or corrupt") as err:
        Instance.load(p)
    assert "object" not in str(err.value)


def test_size_bound_and_exact_arrays(tmp_path):
    from attnsvm._io import read_npz

    p = tmp_path / "a.npz"
    a = np.arange(12, dtype=">i4").reshape(3, 4)
    np.savez_compressed(p, a=a, f=np.asfortranarray(a.astype(np.float32)), s=np.float64(2.5))
    back = read_npz(p)
    np.testing.assert_array_equal(back["a"], a)
    np.testing.assert_array_equal(back["f"], a)
    assert back["s"].shape == () and back["s"] == 2.5
    with pytest.raises(InstanceFileError, match="limit"):
        read_npz(p, max_bytes=40)


def test_query_index_must_be_a_scalar(tmp_path):
    p = tmp_path / "q.npz"
    np.savez(p, X=np.ones((2, 3, 2)), query_index=np.array([0, 1]), alpha=[0, 1])
    with pytest.raises(InvalidInputError, match="scalar"):
        Instance.load(p)
