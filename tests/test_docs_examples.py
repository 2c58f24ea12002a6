"""Every Python block of the documentation runs as written, and the site builds."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_pages_have_examples():
    assert len(PAGES) >= 10
    assert sum(len(FENCE.findall(p.read_text(encoding="utf-8"))) for p in PAGES) >= 12


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT / "docs")))
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """The blocks of one page run in order in one namespace, in an empty folder."""
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__docs__"}
    for block in FENCE.findall(page.read_text(encoding="utf-8")):
        exec(compile(block, str(page), "exec"), ns)
    out = capsys.readouterr().out
    assert "False" not in out.split(), out  # every printed check holds


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="the docs extra is not installed")
def test_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict``: warnings (broken links, docstring problems) are errors."""
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "api" / "svm" / "index.html").exists()
