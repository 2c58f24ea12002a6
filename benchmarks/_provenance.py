"""The provenance line every ``benchmarks/results/*.md`` starts with: machine and commit."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

__all__ = ["provenance"]


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, text=True, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" with uncommitted changes" if dirty.strip() else "")


def provenance() -> str:
    """``Machine: ..., commit ...`` for the header of a results file."""
    cpu = platform.processor() or platform.machine()
    return (f"Machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()}, Python "
            f"{platform.python_version()}. Commit: {_commit()}.")
