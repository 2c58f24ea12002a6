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
