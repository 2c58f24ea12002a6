"""Hostile inputs to the commands: exit 2, exactly one ``error:`` line, nothing written.

Each case comes from the hostile-user review (issue 10): files that lie about their size,
values that overflow, output paths that cannot be written.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from attnsvm import random_instance
from attnsvm.cli.main import main


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _lying_npz(path, shape, data):
    """X's header declares ``shape`` (float64) but the member holds only ``data``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", buf.getvalue() + data)
        zf.writestr("alpha.npy", _npy(np.zeros(shape[0] if shape else 1, dtype=np.int64)))
    return path


def _instance_file(tmp_path, **override):
    inst = random_instance(3, 4, 2, seed=0)
    fields = {"X": inst.X, "Z": inst.Z, "alpha": np.zeros(3, dtype=np.int64)}
    fields.update(override)
    p = tmp_path / "i.npz"
    np.savez(p, **fields)
    return p


CASES = {
    "alpha 1e30": (lambda tp: _instance_file(tp, alpha=np.full(3, 1e30)), "1e+30"),
    "alpha uint64": (lambda tp: _instance_file(tp, alpha=np.full(3, 2**64 - 1, np.uint64)),
                     "18446744073709551615"),
    "alpha negative": (lambda tp: _instance_file(tp, alpha=np.array([0, -1, 0])), "Got -1 "),
    "huge declared shape": (lambda tp: _lying_npz(tp / "h.npz", (10**6, 10**6, 10**3),
                                                  b"\0" * 64), "truncated or corrupt"),
    "truncated member": (lambda tp: _lying_npz(tp / "t.npz", (3, 4, 2), b"\0" * 40),
                         "truncated or corrupt"),
    "cut archive": (lambda tp: _cut(_instance_file(tp)), "truncated or corrupt"),
    "query_index vector": (lambda tp: _qi(tp), "scalar"),
}


def _cut(p):
    p.write_bytes(p.read_bytes()[:300])
    return p


def _qi(tp):
    p = tp / "q.npz"
    np.savez(p, X=np.ones((3, 4, 2)), query_index=np.array([0, 1]), alpha=np.zeros(3, int))
    return p


def _one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["solve", "train"])
def test_bad_instance_exit_2_one_line(tmp_path, capsys, case, command):
    make, shown = CASES[case]
    path = make(tmp_path)
    out_file = tmp_path / "result.npz"
    args = [command, str(path), "--json", "--out", str(out_file)]
    if command == "train":
        args += ["--param", "W", "--steps", "2"]
    code = main(args)
    cap = capsys.readouterr()
    assert code == 2, cap.err
    line = _one_error_line(cap.err).replace(str(tmp_path), "<tmp>")  # judge the message only
    assert shown in line
    assert "object" not in line  # nothing here is an object array
    assert cap.out == "" and not out_file.exists()


def test_cli_subprocess_shows_no_warning_or_source_line(tmp_path):
    """The console script: 1e30 gave a RuntimeWarning and its source line before 'error:'."""
    p = _instance_file(tmp_path, alpha=np.full(3, 1e30))
    res = subprocess.run([sys.executable, "-m", "attnsvm.cli.main", "solve", str(p)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stdout == ""
    _one_error_line(res.stderr)


@pytest.mark.parametrize("bad_out", ["folder", "long name", "file as folder"])
@pytest.mark.parametrize("command", ["solve", "train"])
def test_unwritable_out_is_bad_input(tmp_path, capsys, bad_out, command):
    p = _instance_file(tmp_path, Y=np.array([1.0, -1.0, 1.0]), v=np.array([1.0, 0.5]))
    out = {"folder": tmp_path, "long name": tmp_path / ("a" * 300 + ".npz"),
           "file as folder": p / "r.npz"}[bad_out]
    before = p.read_bytes()
    args = [command, str(p), "--out", str(out)]
    if command == "train":
        args += ["--param", "W", "--steps", "2"]
    code = main(args)
    cap = capsys.readouterr()
    assert code == 2
    line = _one_error_line(cap.err)
    assert "--out" in line or "Cannot write" in line
    assert p.read_bytes() == before
    assert [q.name for q in tmp_path.iterdir() if q.name.endswith(".tmp")] == []


def test_long_but_legal_out_name_is_written(tmp_path, capsys):
    """A 250-byte name is legal; the temporary file of the atomic write must be too."""
    p = _instance_file(tmp_path)
    out = tmp_path / ("b" * 246 + ".npz")
    assert main(["solve", str(p), "--out", str(out)]) == 0, capsys.readouterr().err
    with np.load(out) as f:
        assert set(f.files) == {"W", "alpha", "dual"}
    assert [q.name for q in tmp_path.iterdir() if q.name.endswith(".tmp")] == []


def test_reproduce_out_existing_file_is_refused_up_front(tmp_path, capsys):
    f = tmp_path / "report"
    f.write_text("keep me")
    code = main(["reproduce", "rank", "--quick", "--out", str(f)])
    cap = capsys.readouterr()
    assert code == 2 and cap.out == ""
    assert "--out" in _one_error_line(cap.err)
    assert f.read_text() == "keep me"


def test_no_command_is_one_error_line(capsys):
    assert main([]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "a command is required" in _one_error_line(cap.err)
