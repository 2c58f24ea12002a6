"""The README's Python examples run as written and print what the README says."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 4
    # every fenced block is Python (run below) or shell-free prose; the set-up commands are
    # the indented lines that tests/test_cli_docs.py and CI check
    assert set(re.findall(r"```(\w*)\n", TEXT)) <= {"python", ""}


def test_solver_example_runs(capsys):
    exec(BLOCKS[0], {})
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert out.startswith("optimal") and lines[-2] == "True"
    status, certified, rank = lines[-1].split()
    assert (status, certified) == ("optimal", "True") and 1 <= int(rank) <= 6  # rank <= n


def test_trainer_example_runs(capsys):
    ns: dict = {}
    exec(BLOCKS[1], ns)
    assert ns["res"].W.shape == (100, 10, 10)
    assert capsys.readouterr().out.strip() == "(100, 10, 10) (100, 6)"


def test_ntp_example_runs(capsys):
    block = next(b for b in BLOCKS if "attnsvm.ntp" in b)
    exec(block, {})
    assert capsys.readouterr().out.split() == ["optimal", "True", "True", "True"]


def test_links_stay_inside_the_repository():
    for target in re.findall(r"\]\(([^)#]+)", TEXT):
        assert not target.startswith(("http:", "https:")), target
        assert (README.parent / target).exists(), target
    for name in ("THEORY.md", "SPEC.md", "STYLE.md"):  # not in the repository
        assert name not in TEXT


def test_the_two_set_up_commands():
    assert ("    pip install torch==2.13.0 && pip install -e . && attnsvm reproduce --quick\n"
            in TEXT)
    test = ('    pip install torch==2.13.0 && pip install -e ".[probe,test,ray]" '
            '&& python -m pytest\n')
    assert test in TEXT
    # CI installs at least the extras of the README's test command
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    installed = re.search(r'pip install -e "\.\[([\w,]+)\]"', ci)
    assert installed and {"probe", "test", "ray"} <= set(installed.group(1).split(","))


def test_readme_is_short_and_has_no_history():
    assert len(TEXT.splitlines()) <= 200
    hashes = re.findall(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b", TEXT)
    assert not hashes, hashes
    assert not re.search(r"\d\d:\d\d UTC|20\d\d-\d\d-\d\d", TEXT), "timestamp"
