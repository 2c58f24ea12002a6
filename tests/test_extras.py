"""The core install works without the probe's model stack (SPEC.md, Install).

Each check runs the CLI in a fresh interpreter where transformers, safetensors, tokenizers and
the default model's package cannot be imported (``None`` in ``sys.modules``, as if never
installed): ``solve``, ``train``, ``ntp`` and ``reproduce`` work and import none of them;
``probe``, ``pretrain`` and ``track`` exit 2 with one line naming the extra ``probe``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnsvm._extras import DEFAULT_MODEL_PACKAGE, EXTRAS, check_extra, missing_modules
from attnsvm.exceptions import MissingDependencyError
from attnsvm.instance import random_instance
from attnsvm.ntp import random_ntp_dataset

HIDDEN = (*EXTRAS["probe"], DEFAULT_MODEL_PACKAGE)

# With the probe's stack hidden: imports the packages, runs the console script's main() on each
# command line of argv[1] (JSON), and prints as JSON per command its exit code, stdout and
# stderr, and the hidden modules (or huggingface_hub) that were imported all the same.
_WRAPPER = f"""
import contextlib, io, json, sys
HIDDEN = {HIDDEN!r}
for m in HIDDEN:
    sys.modules[m] = None
import attnsvm, attnsvm.probe, attnsvm.lm, attnsvm.experiments  # the packages import
import attnsvm.cli.probe_cmd, attnsvm.cli.pretrain_cmd, attnsvm.cli.track_cmd
from attnsvm.cli.main import main
results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
    results.append({{"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}})
leaked = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN + ("huggingface_hub",)
                and sys.modules[m] is not None)
sys.__stdout__.write(json.dumps({{"results": results, "leaked": leaked}}))
"""

CORE = [["solve", "inst.npz", "--json", "--out", "sol.npz"],
        ["train", "inst.npz", "--param", "W", "--steps", "20", "--json"],
        ["ntp", "ntp.npz", "--steps", "5", "--json"],
        ["reproduce", "joint-vp", "--quick", "--no-progress", "--out", "rep"]]
NEEDS_EXTRA = [["probe", "--json"], ["probe", "--model", "minilm"],
               ["pretrain", "--steps", "2", "--out", "run"], ["track", "run", "--json"],
               ["reproduce", "heads-over-training", "--quick", "--out", "rep-hot"]]
HELP = [["probe", "--help"]]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One interpreter without the extra runs every command line above."""
    d = tmp_path_factory.mktemp("core")
    random_instance(4, 4, 3, seed=0).save(d / "inst.npz")
    random_ntp_dataset(6, 4, 6, 8, cyclic=True, seed=2).save(d / "ntp.npz")
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, json.dumps(CORE + NEEDS_EXTRA + HELP)],
                          cwd=d, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d, json.loads(proc.stdout)


def test_core_commands_run_without_the_probe_extra(ran: tuple[Path, dict[str, Any]]) -> None:
    d, got = ran
    assert got["leaked"] == []  # nothing of the probe's stack was imported
    solve, train, ntp, rep = got["results"][:len(CORE)]
    for r in (solve, train, ntp, rep):
        assert r["code"] == 0, r["stderr"]
    res = json.loads(solve["stdout"])
    assert res["status"] == "optimal" and res["margin"] == pytest.approx(1.0, abs=1e-6)
    with np.load(d / "sol.npz") as f:  # the certificate: sum(lambda) = ||W||_F
        assert float(f["dual"].sum()) == pytest.approx(res["objective"], rel=1e-6)
    assert len(json.loads(train["stdout"])["selected"]) == 4
    assert json.loads(ntp["stdout"])["status"] == "optimal"
    assert "joint-vp" in json.loads((d / "rep" / "summary.json").read_text())["figures"]


@pytest.mark.parametrize("k", range(len(NEEDS_EXTRA)))
def test_probe_commands_name_the_extra(ran: tuple[Path, dict[str, Any]], k: int) -> None:
    d, got = ran
    args, r = NEEDS_EXTRA[k], got["results"][len(CORE) + k]
    assert r["code"] == 2 and r["stdout"] == ""
    lines = r["stderr"].splitlines()
    assert len(lines) == 1 and "needs the extra 'probe': pip install \"attnsvm[probe]\"" \
        in lines[0], lines
    if args[0] != "reproduce":
        assert lines[0].startswith(f"error: attnsvm {args[0]} needs the extra 'probe'")
    else:
        assert lines[0].startswith("error: the figure heads-over-training needs")
    assert not (d / "run").exists() and not (d / "rep-hot").exists()


def test_help_works_without_the_extra(ran: tuple[Path, dict[str, Any]]) -> None:
    r = ran[1]["results"][-1]
    assert r["code"] == 0 and "--model" in r["stdout"]


def test_check_extra_is_a_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    assert missing_modules(["json", "attnsvm_no_such_module"]) == ["attnsvm_no_such_module"]
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    assert missing_modules(["tokenizers"]) == ["tokenizers"]
    with pytest.raises(MissingDependencyError, match=r"^x needs the extra 'probe': pip install"):
        check_extra("x", "probe")


def test_reproduce_all_skips_a_figure_whose_extra_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from attnsvm.experiments import runner

    monkeypatch.setattr(runner, "figure_names", lambda: ["joint-vp", "heads-over-training"])
    monkeypatch.setattr(runner, "missing_extra",
                        lambda n: "probe" if n == "heads-over-training" else None)
    summary = runner.reproduce(None, tmp_path, quick=True, progress=False)
    assert list(summary["figures"]) == ["joint-vp"]
    why = summary["skipped"]["heads-over-training"]
    assert why == "the figure heads-over-training needs the extra 'probe': pip install " \
                  "\"attnsvm[probe]\""
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "Not run: heads-over-training" in page
    from attnsvm.experiments.report import summary_text

    assert summary_text(summary).splitlines()[-1] == f"skipped heads-over-training: {why}"
