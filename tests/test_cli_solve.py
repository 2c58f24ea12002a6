"""``attnsvm solve`` as SPEC.md describes it: JSON keys, output files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from attnsvm import Instance, random_instance
from attnsvm.cli.main import main
from attnsvm.svm import solve_fro


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_solve_json_and_out(tmp_path, capsys, small_instance):
    p = tmp_path / "i.npz"
    small_instance.save(p)
    code, out, err = run([
        "solve", str(p), "--json", "--out", str(tmp_path / "r.npz")], capsys)
    assert code == 0, err
    res = json.loads(out)
    for key in ("status", "norm", "objective", "margin", "alpha", "support", "locally_optimal",
                "seconds"):
        assert key in res
    ref = solve_fro(small_instance)
    assert res["status"] == "optimal" and res["norm"] == "fro"
    assert res["objective"] == pytest.approx(ref.objective, rel=1e-9)
    assert res["margin"] == pytest.approx(1.0, abs=1e-9)
    assert res["locally_optimal"] is True
    with np.load(tmp_path / "r.npz") as f:
        np.testing.assert_allclose(f["W"], ref.W)
        assert f["alpha"].tolist() == res["alpha"]


def test_solve_nuc(tmp_path, capsys, small_instance):
    p = tmp_path / "i.npz"
    small_instance.save(p)
    code, out, err = run(["solve", str(p), "--norm", "nuc", "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["norm"] == "nuc"
    assert res["margin"] == pytest.approx(1.0, abs=1e-6)


def test_no_head_locally_optimal_null(tmp_path, capsys):
    inst = random_instance(3, 4, 6, seed=0)
    p = tmp_path / "i.npz"
    Instance(X=inst.X, Z=inst.Z, alpha=np.array([0, 1, 2])).save(p)
    code, out, _ = run(["solve", str(p), "--json"], capsys)
    assert code == 0 and json.loads(out)["locally_optimal"] is None


def test_infeasible_exit_3_with_certificate(tmp_path, capsys):
    inst = random_instance(3, 4, 6, seed=0)
    X = inst.X.copy()
    X[1, 2] = X[1, 0]
    p = tmp_path / "i.npz"
    Instance(X=X, Z=inst.Z, alpha=np.zeros(3, dtype=int)).save(p)
    code, out, _ = run(["solve", str(p), "--json", "--out", str(tmp_path / "r.npz")], capsys)
    assert code == 3
    assert json.loads(out)["status"] == "infeasible"
    with np.load(tmp_path / "r.npz") as f:
        cert = f["certificate"]
        assert "W" not in f.files
    assert cert.shape == (3, 4) and cert.min() >= 0 and cert.sum() == pytest.approx(1)


def _bad_files(tmp_path):
    good = random_instance(2, 3, 2, seed=0)
    cases = {}
    cases["missing"] = tmp_path / "missing.npz"
    p = tmp_path / "text.npz"
    p.write_text("not an archive")
    cases["not_npz"] = p
    p = tmp_path / "nan.npz"
    X = good.X.copy()
    X[0, 0, 0] = np.nan
    np.savez(p, X=X, Z=good.Z, alpha=[0, 0])
    cases["nan"] = p
    p = tmp_path / "shape.npz"
    np.savez(p, X=good.X, Z=np.ones((2, 5)), alpha=[0, 0])
    cases["shape"] = p
    p = tmp_path / "alpha_range.npz"
    np.savez(p, X=good.X, Z=good.Z, alpha=[0, 3])
    cases["alpha_range"] = p
    p = tmp_path / "alpha_float.npz"
    np.savez(p, X=good.X, Z=good.Z, alpha=[0.5, 1.0])
    cases["alpha_float"] = p
    p = tmp_path / "labels.npz"
    np.savez(p, X=good.X, Z=good.Z, Y=[2, 1], v=good.v)
    cases["labels"] = p
    p = tmp_path / "one_token.npz"
    np.savez(p, X=good.X[:, :1], Z=good.Z, alpha=[0, 0])
    cases["one_token"] = p
    p = tmp_path / "no_seq.npz"
    np.savez(p, X=good.X[:0], Z=good.Z[:0], alpha=np.zeros(0, int))
    cases["no_seq"] = p
    p = tmp_path / "object.npz"
    np.savez(p, X=np.array([good.X[0], good.X[1, :2]], dtype=object), alpha=[0, 0])
    cases["object"] = p
    p = tmp_path / "no_choice.npz"
    np.savez(p, X=good.X, Z=good.Z)
    cases["no_choice"] = p
    p = tmp_path / "no_X.npz"
    np.savez(p, Z=good.Z, alpha=[0, 0])
    cases["no_X"] = p
    p = tmp_path / "strings.npz"
    np.savez(p, X=np.array([["a", "b"]]), alpha=[0])
    cases["strings"] = p
    return cases


@pytest.mark.parametrize("case", ["missing", "not_npz", "nan", "shape", "alpha_range",
                                  "alpha_float", "labels", "one_token", "no_seq", "object",
                                  "no_choice", "no_X", "strings"])
def test_bad_input_exit_2_one_line(tmp_path, capsys, case):
    path = _bad_files(tmp_path)[case]
    out_file = tmp_path / "result.npz"
    code, out, err = run(["solve", str(path), "--json", "--out", str(out_file)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "Traceback" not in err
    assert not out_file.exists()


def test_bad_norm_is_usage_error(tmp_path, capsys, small_instance):
    p = tmp_path / "i.npz"
    small_instance.save(p)
    code, _, err = run(["solve", str(p), "--norm", "l7"], capsys)
    assert code == 2 and err.startswith("error:")


def test_console_script_does_not_import_torch(tmp_path, small_instance):
    p = tmp_path / "i.npz"
    small_instance.save(p)
    code = (
        "import sys; from attnsvm.cli.main import main; "
        f"rc = main(['solve', {str(p)!r}, '--json']); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "optimal"
