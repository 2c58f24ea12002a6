"""Next-token datasets: validation, the .npz format, the generator's guarantees."""

from __future__ import annotations

import numpy as np
import pytest

from attnsvm.exceptions import InstanceFileError, InvalidInputError, InvalidParameterError
from attnsvm.ntp import NTPDataset, priority_graphs, random_ntp_dataset


def test_roundtrip(tmp_path):
    ds = random_ntp_dataset(7, 5, 9, 4, seed=3)
    p = tmp_path / "d.npz"
    ds.save(p)
    back = NTPDataset.load(p)
    np.testing.assert_array_equal(back.E, ds.E)
    np.testing.assert_array_equal(back.tokens, ds.tokens)
    np.testing.assert_array_equal(back.labels, ds.labels)
    assert back.queries.tolist() == ds.tokens[:, -1].tolist()
    np.testing.assert_array_equal(back.X, ds.E[ds.tokens])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"E": np.full((3, 2), np.nan)}, "'E' array must be finite"),
    ({"E": np.ones(3)}, "'E' array must have 2 dimension"),
    ({"tokens": [[0, 3, 1]]}, "'tokens' values must be < 3"),
    ({"tokens": [[0, -1, 1]]}, "'tokens' values must be >= 0"),
    ({"tokens": [[0.5, 1, 2]]}, "'tokens' array must hold integers"),
    ({"labels": [2, 0]}, "'labels' array must have shape"),
    ({"labels": [1]}, "'labels' value of sequence 0 must occur"),
    ({"labels": [7]}, "'labels' values must be < 3"),
])
def test_validation_messages(kwargs, match):
    base = {"E": np.eye(3), "tokens": [[0, 2, 2]], "labels": [2]}
    base.update(kwargs)
    with pytest.raises(InvalidInputError, match=match):
        NTPDataset(**base)


def test_load_errors(tmp_path):
    with pytest.raises(InstanceFileError, match="does not exist"):
        NTPDataset.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InstanceFileError, match="not a .npz"):
        NTPDataset.load(bad)
    part = tmp_path / "part.npz"
    np.savez(part, E=np.eye(3), tokens=np.array([[0, 1]]))
    with pytest.raises(InstanceFileError, match="no 'labels' array"):
        NTPDataset.load(part)
    obj = tmp_path / "obj.npz"
    np.savez(obj, E=np.array([None, 1], dtype=object), tokens=np.array([[0]]),
             labels=np.array([0]))
    with pytest.raises(InvalidInputError, match="Python objects"):
        NTPDataset.load(obj)
    # a declared shape far beyond the data it holds is refused before any allocation
    import zipfile

    huge = tmp_path / "huge.npz"
    np.savez(huge, E=np.eye(3), tokens=np.array([[0, 1]]), labels=np.array([1]))
    with zipfile.ZipFile(huge) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["E.npy"] = members["E.npy"].replace(b"(3, 3), }", b"(3000000000, 3), }")
    with zipfile.ZipFile(huge, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(InvalidInputError, match="declares shape"):
        NTPDataset.load(huge)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cyclic", [True, False])
@pytest.mark.parametrize("tries", [0, 20])
def test_generator_guarantees(seed, cyclic, tries):
    ds = random_ntp_dataset(8, 4, 6, 5, cyclic=cyclic, seed=seed, tries=tries)
    assert all(len(set(row)) == ds.T for row in ds.tokens.tolist())  # distinct per sequence
    assert ds.label_mask.any(axis=1).all()
    np.testing.assert_allclose(np.linalg.norm(ds.E, axis=1), 1.0)
    assert any(g.cyclic for g in priority_graphs(ds).values()) == cyclic


def test_generator_is_seeded_and_checks_parameters():
    a, b = (random_ntp_dataset(5, 3, 4, 3, seed=11) for _ in range(2))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.E, b.E)
    with pytest.raises(InvalidParameterError, match="'T' parameter must be <= K"):
        random_ntp_dataset(3, 5, 4, 3)
    with pytest.raises(InvalidParameterError, match="cyclic dataset needs"):
        random_ntp_dataset(1, 3, 4, 3, cyclic=True)
