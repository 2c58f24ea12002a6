"""``attnsvm solve`` on rotary instances (SPEC.md "Rotary instances")."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnsvm import Instance, random_instance
from attnsvm.cli.main import main
from attnsvm.svm.rotary import lifted_scores


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def rotary_file(path, seed=1, **changes):
    b = random_instance(5, 6, 6, seed=seed)
    fields = dict(X=b.X, Z=b.Z, Y=b.Y, v=b.v, freqs=np.array([1.0, 0.3, 0.05]),
                  pos=np.tile(np.arange(6), (5, 1)), qpos=np.full(5, 6))
    fields.update(changes)
    np.savez(path, **{k: v for k, v in fields.items() if v is not None})
    return fields


@pytest.mark.parametrize("norm", ["fro", "nuc"])
def test_rotary_solve_json_and_out(tmp_path, capsys, norm):
    f = rotary_file(tmp_path / "r.npz")
    out_path = tmp_path / "o.npz"
    code, out, err = run(["solve", str(tmp_path / "r.npz"), "--norm", norm, "--json",
                          "--out", str(out_path)], capsys)
    assert code == 0, err
    res = json.loads(out)
    for key in ("status", "norm", "objective", "margin", "alpha", "support", "locally_optimal",
                "seconds"):
        assert key in res
    assert res["status"] == "optimal" and res["norm"] == norm and res["rotary"] is True
    with np.load(out_path) as r:
        M, dual, alpha = r["M"], r["dual"], r["alpha"]
    assert M.dtype == np.complex128 and M.shape == (3, 6, 6)
    assert alpha.tolist() == res["alpha"]
    if norm == "fro":
        assert res["objective"] == pytest.approx(np.sqrt(np.sum(np.abs(M) ** 2)), rel=1e-12)
    else:
        assert res["objective"] == pytest.approx(
            sum(np.sum(np.linalg.svd(Mf, compute_uv=False)) for Mf in M), rel=1e-12)
    # margin by the rotary score of SPEC.md
    S = lifted_scores(M, None, f["X"], f["Z"], f["pos"], f["qpos"], f["freqs"])
    D = S[np.arange(5), alpha][:, None] - S
    D[np.arange(5), alpha] = np.inf
    assert np.min(D) >= 1 - 1e-9 and res["margin"] == pytest.approx(np.min(D), abs=1e-12)
    # dual: 0 on the selected tokens, G_f the per-block sums, dual norm 1, sum = the bound
    assert np.all(dual[np.arange(5), alpha] == 0) and np.all(dual >= 0)
    c = np.exp(1j * (f["qpos"][:, None] - f["pos"])[..., None] * f["freqs"])  # (n, T, F)
    keys = np.conj(c)[..., None] * f["X"][:, :, None, :]                       # (n, T, F, d)
    diff = keys[np.arange(5), alpha][:, None] - keys
    G = np.einsum("nt,ntfi,nj->fij", dual, diff, f["Z"])
    if norm == "fro":
        assert np.sqrt(np.sum(np.abs(G) ** 2)) == pytest.approx(1.0, rel=1e-9)
    else:
        assert max(np.linalg.svd(Gf, compute_uv=False)[0] for Gf in G) <= 1 + 1e-12
    assert np.sum(dual) == pytest.approx(res["objective"], rel=1e-6)
    assert np.sum(dual) <= res["objective"] * (1 + 1e-12)


def test_rotary_infeasible_exit_3_with_certificate(tmp_path, capsys):
    b = random_instance(5, 6, 6, seed=2)
    X = b.X.copy()
    X[0, 1] = X[0, 0]
    rotary_file(tmp_path / "r.npz", X=X, Y=None, v=None, alpha=np.zeros(5, int),
                pos=np.zeros((5, 6), int))
    code, out, err = run(["solve", str(tmp_path / "r.npz"), "--json", "--out",
                          str(tmp_path / "o.npz")], capsys)
    assert code == 3, err
    assert json.loads(out)["status"] == "infeasible"
    with np.load(tmp_path / "o.npz") as r:
        cert = r["certificate"]
    assert cert.shape == (5, 6) and np.all(cert >= 0) and cert.sum() > 0


@pytest.mark.parametrize("changes, field", [
    ({"pos": np.zeros((5, 5), int)}, "'pos'"),
    ({"qpos": np.full(5, 1.5)}, "'qpos'"),
    ({"freqs": np.array([np.nan])}, "'freqs'"),
    ({"freqs": np.zeros((2, 2))}, "'freqs'"),
    ({"qpos": None}, "'qpos'"),
    ({"Z": None}, "'Z'"),
])
def test_rotary_bad_fields_exit_2(tmp_path, capsys, changes, field):
    rotary_file(tmp_path / "r.npz", **changes)
    code, out, err = run(["solve", str(tmp_path / "r.npz"), "--out", str(tmp_path / "o.npz")],
                         capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and field in lines[0]
    assert not (tmp_path / "o.npz").exists()


def test_rotary_instance_round_trip(tmp_path):
    rotary_file(tmp_path / "r.npz")
    inst = Instance.load(tmp_path / "r.npz")
    assert inst.is_rotary and inst.pos is not None and inst.pos.dtype == np.int64
    inst.save(tmp_path / "s.npz")
    again = Instance.load(tmp_path / "s.npz")
    assert again.is_rotary and np.array_equal(again.qpos, inst.qpos)
    assert not random_instance(2, 3, 4, seed=0).is_rotary


@pytest.mark.parametrize("name", ["attnsvm.svm.rotary", "attnsvm.rotary_instance"])
def test_rotary_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
