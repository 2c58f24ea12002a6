"""``attnsvm ntp`` as SPEC.md describes it: JSON keys, output files, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnsvm.cli.main import main
from attnsvm.ntp import NTPDataset, random_ntp_dataset, solve_graph_svm, solve_w_fin
from attnsvm.ntp.analysis import cosine


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cyclic_file(tmp_path):
    ds = random_ntp_dataset(6, 4, 6, 8, cyclic=True, seed=2)
    p = tmp_path / "d.npz"
    ds.save(p)
    return ds, p


def test_json_out_and_reported_correlations(tmp_path, capsys, cyclic_file):
    ds, p = cyclic_file
    out = tmp_path / "r.npz"
    code, stdout, err = run(["ntp", str(p), "--steps", "300", "--lr", "0.05", "--json",
                             "--out", str(out)], capsys)
    assert code == 0, err
    res = json.loads(stdout)
    for key in ("status", "objective", "cyclic", "sccs", "n_eq", "n_ineq", "seconds",
                "corr_svm", "corr_svm_fin", "top_scc_attention"):
        assert key in res
    g = solve_graph_svm(ds)
    fin = solve_w_fin(ds, g.graphs)
    assert res["status"] == "optimal" and res["cyclic"] is True
    assert res["objective"] == pytest.approx(np.linalg.norm(g.W), rel=1e-9)
    assert res["sccs"] == {str(k): v for k, v in g.sccs().items()}
    assert (res["n_eq"], res["n_ineq"]) == (g.n_eq, g.n_ineq)
    with np.load(out) as f:
        np.testing.assert_allclose(f["W_svm"], g.W, atol=1e-12)
        np.testing.assert_allclose(f["W_fin"], fin.W_fin, atol=1e-12)
        W = f["W"]
    # the reported numbers are those of the returned W
    R = np.vdot(W - fin.W_fin, g.W) / np.vdot(g.W, g.W)
    assert res["corr_svm"] == pytest.approx(cosine(W, g.W), abs=1e-12)
    assert res["corr_svm_fin"] == pytest.approx(cosine(W, R * g.W + fin.W_fin), abs=1e-12)
    X, q = ds.X, ds.X[:, -1]
    a = np.einsum("ntd,de,ne->nt", X, W, q)
    s = np.exp(a - a.max(1, keepdims=True))
    s /= s.sum(1, keepdims=True)
    top = np.array([[g.graphs[int(ds.queries[i])].component[x]
                     == g.graphs[int(ds.queries[i])].component[ds.labels[i]]
                     for x in ds.tokens[i]] for i in range(ds.n)])
    assert res["top_scc_attention"] == pytest.approx((s * top).sum(1).mean(), abs=1e-12)


def test_no_training_and_human_summary(tmp_path, capsys, cyclic_file):
    _, p = cyclic_file
    code, stdout, _ = run(["ntp", str(p), "--json", "--out", str(tmp_path / "r.npz")], capsys)
    res = json.loads(stdout)
    assert code == 0 and "corr_svm" not in res
    with np.load(tmp_path / "r.npz") as f:
        assert sorted(f.files) == ["W_fin", "W_svm"]
    code, stdout, _ = run(["ntp", str(p)], capsys)
    assert code == 0 and "cyclic" in stdout and "||W_svm||_F" in stdout


def test_infeasible_exit_3(tmp_path, capsys):
    E = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.3, -1.0]])
    p = tmp_path / "inf.npz"
    NTPDataset(E, [[0, 2, 3], [1, 2, 3]], [0, 1]).save(p)
    code, stdout, _ = run(["ntp", str(p), "--json", "--out", str(tmp_path / "r.npz")], capsys)
    assert code == 3
    res = json.loads(stdout)
    assert res["status"] == "infeasible" and res["objective"] is None
    with np.load(tmp_path / "r.npz") as f:
        assert f["certificate"].shape == (f["edges"].shape[0],)


def malformed(tmp_path):
    cases = {}
    p = tmp_path / "text.npz"
    p.write_text("hello")
    cases["not-npz"] = p
    cases["missing"] = tmp_path / "nope.npz"
    for name, arrays in {
        "label-not-in-row": {"E": np.eye(3), "tokens": np.array([[0, 1]]),
                             "labels": np.array([2])},
        "id-out-of-range": {"E": np.eye(3), "tokens": np.array([[0, 5]]),
                            "labels": np.array([0])},
        "nan-embedding": {"E": np.full((3, 2), np.nan), "tokens": np.array([[0, 1]]),
                          "labels": np.array([0])},
        "no-labels": {"E": np.eye(3), "tokens": np.array([[0, 1]])},
        "float-ids": {"E": np.eye(3), "tokens": np.array([[0.5, 1.0]]),
                      "labels": np.array([1])},
        "object": {"E": np.array([None, 1.0], dtype=object), "tokens": np.array([[0]]),
                   "labels": np.array([0])},
    }.items():
        q = tmp_path / f"{name}.npz"
        np.savez(q, **arrays)
        cases[name] = q
    return cases


@pytest.mark.parametrize("case", ["not-npz", "missing", "label-not-in-row", "id-out-of-range",
                                  "nan-embedding", "no-labels", "float-ids", "object"])
def test_malformed_files_exit_2(tmp_path, capsys, case):
    path = malformed(tmp_path)[case]
    out = tmp_path / "res.npz"
    code, stdout, err = run(["ntp", str(path), "--json", "--steps", "5", "--out", str(out)],
                            capsys)
    assert code == 2
    assert stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert not out.exists()


@pytest.mark.parametrize("args", [["--lr", "-1"], ["--steps", "-3"], ["--seed", "-1"],
                                  ["--lr", "nan"]])
def test_bad_parameters_exit_2(tmp_path, capsys, cyclic_file, args):
    _, p = cyclic_file
    out = tmp_path / "res.npz"
    code, stdout, err = run(["ntp", str(p), "--out", str(out), *args], capsys)
    assert code == 2 and stdout == "" and err.startswith("error:") and not out.exists()
