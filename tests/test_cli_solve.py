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


# ------------------------------------------------------------- verified answers only
def _check_dual_file(res_path, inst, norm, objective, tol=1e-6):
    """SPEC.md's promises on --out, checked from the file alone."""
    with np.load(res_path) as f:
        W, alpha, lam = f["W"], f["alpha"], f["dual"]
    n, T = inst.n, inst.T
    assert lam.shape == (n, T) and lam.min() >= -tol * max(lam.max(), 1)
    assert np.all(lam[np.arange(n), alpha] == 0)
    X, Z = inst.X, inst.queries
    diff = X[np.arange(n), alpha][:, None, :] - X  # (n, T, d)
    G = np.einsum("it,itd,ie->de", lam, diff, Z)
    dual_norm = np.linalg.norm(G) if norm == "fro" else np.linalg.norm(G, 2)
    assert dual_norm <= 1 + tol
    assert lam.sum() == pytest.approx(objective, rel=tol)
    # W is feasible with margin 1, and ||W|| equals the dual bound sum(lambda)
    margins = np.einsum("itd,de,ie->it", diff, W, Z)
    margins[np.arange(n), alpha] = np.inf
    assert margins.min() >= 1 - tol
    w_norm = np.linalg.norm(W) if norm == "fro" else np.linalg.svd(W, compute_uv=False).sum()
    assert w_norm == pytest.approx(lam.sum(), rel=tol)


@pytest.mark.parametrize("norm", ["fro", "nuc"])
def test_out_holds_a_verifiable_dual(tmp_path, capsys, norm):
    inst = random_instance(4, 5, 6, seed=2)
    p, r = tmp_path / "i.npz", tmp_path / "r.npz"
    inst.save(p)
    code, out, err = run(["solve", str(p), "--norm", norm, "--json", "--out", str(r)], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["status"] == "optimal" and res["verified"] is True
    _check_dual_file(r, inst, norm, res["objective"])


def _scaled_instances(tmp_path):
    """The issue's examples: per-sequence scales 1e9/1e-9, and X, Z scaled by 1e+-200."""
    base = random_instance(40, 20, 32, seed=1)
    X = base.X.copy()
    X[0] *= 1e9
    X[1] *= 1e-9
    out = {"per-sequence": Instance(X=X, Z=base.Z, Y=base.Y, v=base.v)}
    for s in (1e200, 1e-200):
        out[f"{s:g}"] = Instance(X=base.X * s, Z=base.Z * s, Y=base.Y, v=base.v)
    return out


@pytest.mark.parametrize("case", ["per-sequence", "1e+200", "1e-200"])
def test_never_reports_an_unverified_answer(tmp_path, capsys, case):
    """Exit 0 only with an answer that checks out from the files; otherwise 'inaccurate',
    exit 1, one complete JSON object and no result file."""
    inst = _scaled_instances(tmp_path)[case]
    p, r = tmp_path / "i.npz", tmp_path / "r.npz"
    inst.save(p)
    code, out, err = run(["solve", str(p), "--json", "--out", str(r)], capsys)
    res = json.loads(out)  # stdout is one complete JSON object either way
    if code == 0:
        assert res["status"] == "optimal"
        # recomputed here in another order: allow float64 rounding at extreme scales
        _check_dual_file(r, inst, "fro", res["objective"], tol=1e-5)
    else:
        assert code == 1 and res["status"] == "inaccurate" and res["verified"] is False
        assert not r.exists()
        assert err.strip().splitlines()[-1].startswith("error:")


def test_failed_check_is_inaccurate_and_keeps_existing_file(tmp_path, capsys, monkeypatch,
                                                           small_instance):
    """A solver answer off by a factor of 2 (margin 1/2) is caught by the KKT check."""
    import attnsvm.report_solve as rs

    real = rs.solve

    def halved(*a, **k):
        sol = real(*a, **k)
        sol.W = sol.W / 2
        return sol

    monkeypatch.setattr(rs, "solve", halved)
    p, r = tmp_path / "i.npz", tmp_path / "r.npz"
    small_instance.save(p)
    r.write_bytes(b"previous result")
    code, out, err = run(["solve", str(p), "--json", "--out", str(r)], capsys)
    assert code == 1
    res = json.loads(out)
    assert res["status"] == "inaccurate" and res["solver_status"] == "optimal"
    assert "exceeds the tolerance" in res["reason"]
    assert r.read_bytes() == b"previous result"
    code, out, err = run(["solve", str(p)], capsys)  # human summary says so too
    assert code == 1 and out.startswith("inaccurate:") and "optimal:" not in out


def test_solve_report_matches_the_solution(small_instance):
    from attnsvm.report_solve import solve_report

    rep = solve_report(small_instance, "fro")
    d = rep.to_dict()
    assert d["status"] == "optimal" and d["alpha_source"] == "optimal"
    assert d["alpha"] == small_instance.optimal_tokens().tolist()
    assert d["objective"] == pytest.approx(solve_fro(small_instance).objective, rel=1e-12)
    assert set(rep.arrays()) == {"W", "alpha", "dual"}


# ---------------------------------------------------------------- human output
def test_default_summary_names_the_chosen_tokens(tmp_path, capsys, small_instance):
    p = tmp_path / "i.npz"
    small_instance.save(p)
    code, out, _ = run(["solve", str(p)], capsys)
    assert code == 0
    tokens = " ".join(str(a) for a in small_instance.optimal_tokens())
    assert out.startswith("optimal:")
    assert f"alpha (the optimal tokens from Y and v): {tokens}" in out
    given = np.roll(small_instance.optimal_tokens(), 1)
    Instance(X=small_instance.X, Z=small_instance.Z, alpha=given).save(p)
    code, out, _ = run(["solve", str(p)], capsys)
    assert code == 0 and "alpha (given in the file): " + " ".join(map(str, given)) in out
    assert "locally optimal: not tested" in out


# ------------------------------------------------------------------ stdout hygiene
def test_closed_pipe_is_not_an_error(tmp_path, small_instance):
    """``attnsvm solve --json | head -c 10``: the reader is gone before we write."""
    p = tmp_path / "i.npz"
    small_instance.save(p)
    proc = subprocess.Popen([sys.executable, "-m", "attnsvm.cli.main", "solve", str(p),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "error" not in err and "Traceback" not in err, err


def test_shell_pipe_to_head(tmp_path, small_instance):
    p = tmp_path / "i.npz"
    small_instance.save(p)
    res = subprocess.run(f"'{sys.executable}' -m attnsvm.cli.main solve '{p}' --json "
                         f"| head -c 10", shell=True, capture_output=True, text=True)
    assert res.stdout == '{"status":' and res.stderr == ""


def test_native_writes_to_stdout_go_to_stderr():
    """C/Fortran diagnostics (LAPACK's ``** On entry to ...``) write to descriptor 1."""
    code = (
        "import os, sys\n"
        "from attnsvm.cli._output import native_stdout_to_stderr, emit_json\n"
        "with native_stdout_to_stderr():\n"
        "    os.write(1, b' ** On entry to DLASCL parameter number  4\\n')\n"
        "    emit_json({'status': 'optimal'})\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0
    assert json.loads(res.stdout) == {"status": "optimal"}
    assert "DLASCL" in res.stderr


def test_tiny_scale_stdout_is_pure_json(tmp_path):
    """X, Z scaled by 1e-200 made LAPACK print on stdout before the JSON object."""
    p = tmp_path / "i.npz"
    _scaled_instances(tmp_path)["1e-200"].save(p)
    res = subprocess.run([sys.executable, "-m", "attnsvm.cli.main", "solve", str(p), "--json"],
                         capture_output=True, text=True)
    assert res.returncode in (0, 1)
    json.loads(res.stdout)
    assert res.stdout.count("\n") == 1


def test_report_module_examples_run():
    import doctest

    import attnsvm.report_solve as rs

    result = doctest.testmod(rs, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
