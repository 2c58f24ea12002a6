"""What each command line imports: the heavy stacks only where the command needs them.

``cli/main.py`` imports the one command module that runs and each command module imports at
its top, so the check is on the whole process: one subprocess per command line, then a look
at ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from attnsvm.ntp import random_ntp_dataset

HEAVY = ("torch", "transformers", "matplotlib", "cvxpy")

_SCRIPT = """
import contextlib, io, json, sys
from attnsvm.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(json.loads(sys.argv[1]))
    except SystemExit as exc:
        code = exc.code
print(json.dumps([code, sorted(m for m in {heavy} if m in sys.modules)]))
"""


def _imports(argv: list[str]) -> tuple[int, list[str]]:
    import json

    res = subprocess.run([sys.executable, "-c", _SCRIPT.format(heavy=HEAVY), json.dumps(argv)],
                         capture_output=True, text=True, check=True)
    code, heavy = json.loads(res.stdout)
    return int(code), heavy


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import numpy as np

    from attnsvm import random_instance

    d = tmp_path_factory.mktemp("imports")
    inst = d / "inst.npz"
    random_instance(6, 5, 8, seed=0).save(inst)
    ds = random_ntp_dataset(6, 3, 8, 5, cyclic=True, seed=0)
    data = d / "ntp.npz"
    np.savez(data, E=ds.E, tokens=ds.tokens, labels=ds.labels)
    return {"inst": str(inst), "ntp": str(data)}


@pytest.mark.parametrize(("argv", "code"), [
    (["solve", "{inst}", "--norm", "spec", "--json"], 0),
    (["solve", "{inst}", "--norm", "nuc", "--json"], 0),
    (["ntp", "{ntp}", "--json"], 0),
    (["train", "{inst}", "--steps", "-1"], 2),  # rejected before PyTorch is imported
    (["reproduce", "--list"], 0),
    (["--help"], 0),
])
def test_command_imports_no_heavy_stack(files: dict[str, str], argv: list[str],
                                        code: int) -> None:
    got, heavy = _imports([a.format(**files) for a in argv])
    assert got == code
    assert heavy == [], f"{' '.join(argv)} imported {heavy}"


def test_training_imports_torch(files: dict[str, str]) -> None:
    # the check above is not vacuous: a command that trains does import PyTorch
    got, heavy = _imports(["ntp", files["ntp"], "--steps", "5", "--json"])
    assert got == 0 and "torch" in heavy
