"""examples/tutorial.py runs, and what it tells the reader is true (checked, not just printed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "examples" / "tutorial.py"


@pytest.fixture(scope="module")
def tutorial() -> ModuleType:
    spec = importlib.util.spec_from_file_location("attnsvm_tutorial", TUTORIAL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def story(tutorial: ModuleType) -> dict:
    return tutorial.main([])


def test_instance_and_its_att_svm(story: dict) -> None:
    inst = story["instance"]["instance"]
    opt = story["instance"]["opt"]
    assert np.array_equal(opt, np.argmax(story["instance"]["scores"], axis=1))
    fro, nuc = story["svm"]["fro"], story["svm"]["nuc"]
    assert fro.is_optimal(1e-8) and nuc.is_optimal(1e-6)
    # Hard margin 1, attained: the smallest constraint value of W^mm is exactly 1.
    assert story["svm"]["min_constraint"] == pytest.approx(1.0, abs=1e-8)
    assert nuc.rank <= fro.rank <= inst.n
    # The nuclear solution has the smaller nuclear norm, the Frobenius one the smaller F-norm.
    assert np.linalg.norm(nuc.W, "nuc") <= np.linalg.norm(fro.W, "nuc") + 1e-6
    assert np.linalg.norm(fro.W) <= np.linalg.norm(nuc.W) + 1e-9


def test_training_aligns_with_the_svm_of_the_selected_tokens(story: dict) -> None:
    tr = story["training"]
    curve = tr["curve"]
    gap = 1 - curve["corr_svm"].to_numpy()
    assert tr["final_corr"] > 0.998
    assert np.all(np.diff(gap[-4:]) < 0)  # still falling over the last recorded steps
    assert np.all(np.diff(curve["norm"].to_numpy()) > 0)  # ||W(k)|| grows
    assert tr["solution"].is_optimal(1e-8)


def test_local_optima(story: dict) -> None:
    loc = story["local"]
    # Seed 0's GD run ends at a choice other than the optimal tokens that passes the test.
    assert loc["locally_optimal"] and not loc["global"]
    assert loc["n_local_optima"] >= 2
    sel5, _ = loc["starts"][5.0]
    sel20, corr20 = loc["starts"][20.0]
    assert np.array_equal(sel20, loc["beta"]) and corr20 > 0.99
    assert not np.array_equal(sel5, loc["beta"])  # too small a start escapes


def test_tutorial_runs_as_a_script(tutorial: ModuleType, capsys: pytest.CaptureFixture[str]
                                   ) -> None:
    assert tutorial.__doc__ and "Att-SVM" in tutorial.__doc__
    tutorial.an_instance()
    assert "optimal token per sequence" in capsys.readouterr().out


def test_a_real_head(tutorial: ModuleType) -> None:
    """Layer 0 of MiniLM (probe, 64 query rows): 10 to 18 s on the 2-core machine."""
    res = tutorial.a_real_head()
    heads = res["heads"]
    assert len(heads) == 12 and all(h["feasible"] for h in heads)
    assert res["above_control"] >= 9


def test_readme_your_own_data_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import re

    readme = (TUTORIAL.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Your own data"):]
    section = section[:section.index("\n## ", 1)]
    block = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    monkeypatch.chdir(tmp_path)
    exec(block, {})
    lines = capsys.readouterr().out.splitlines()
    # What the README says it prints.
    assert lines[0] == "optimal [0 3 3 0 0 1] True"
    assert lines[1] == "[0 3 3 0 0 0] True"
    assert round(float(lines[2]), 5) == 0.99914 and "0.99914" in section
    assert (tmp_path / "mine.npz").exists()
    from attnsvm import Instance

    assert Instance.load(tmp_path / "mine.npz").query_index == 4  # -1: the last of 5 tokens
