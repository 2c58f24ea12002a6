"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


def test_solver_example_runs(capsys):
    exec(BLOCKS[0], {})
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert out.startswith("optimal") and lines[-2] == "True"
    status, certified, rank = lines[-1].split()
    assert (status, certified) == ("optimal", "True") and 1 <= int(rank) <= 6  # rank <= n


@pytest.mark.slow
def test_trainer_example_runs():
    ns: dict = {}
    exec(BLOCKS[1], ns)
    assert ns["res"].W.shape == (1000, 10, 10)
