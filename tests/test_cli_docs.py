"""The README's command-line section: its example runs, its table lists every command."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np

from attnsvm import Instance
from attnsvm.cli.main import COMMANDS, main

README = Path(__file__).resolve().parents[1] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## Command line\n")
    return text[start:text.index("\n## ", start + 1)]


def test_your_own_data_example_runs(tmp_path, monkeypatch, capsys):
    block = re.search(r"\n((?:    # your own data.*\n)(?:    .*\n)+)", _section())
    assert block is not None
    monkeypatch.chdir(tmp_path)
    exec(textwrap.dedent(block.group(1)), {})
    inst = Instance.load("mine.npz")
    assert main(["solve", "mine.npz"]) == 0
    out = capsys.readouterr().out
    tokens = " ".join(map(str, inst.optimal_tokens()))
    assert out.startswith("optimal:")
    assert f"alpha (the optimal tokens from Y and v): {tokens}" in out
    # the chosen tokens are the highest-scoring ones, as the README says
    scores = inst.Y[:, None] * (inst.X @ inst.v)
    assert np.array_equal(inst.optimal_tokens(), np.argmax(scores, 1))


def test_table_names_real_commands():
    rows = re.findall(r"^\| `attnsvm (\w+)", _section(), re.M)
    assert rows and set(rows) == set(COMMANDS)


def test_every_help_has_examples_that_parse(capsys):
    """``attnsvm COMMAND --help`` ends with examples, and each example is a valid command."""
    from attnsvm.cli._examples import EXAMPLES
    from attnsvm.cli.main import build_parser

    assert set(EXAMPLES) == set(COMMANDS)
    for name in COMMANDS:
        assert main([name, "--help"]) == 0
        out = capsys.readouterr().out
        assert "examples:\n  attnsvm " + name in out
        cmds = re.findall(r"^  attnsvm (.+?)(?:\s+#.*|\s+>.*)?$", EXAMPLES[name], re.M)
        assert len(cmds) >= 2
        for cmd in cmds:
            args = build_parser(name).parse_args(cmd.split())
            assert args.command == name
