"""``attnsvm probe`` as a hostile or a new user meets it: bad input gets exit 2 and one line,
before any model is loaded; files are written last; the process environment and matplotlib's
backend are left alone; progress on stderr has an estimate; the default output speaks.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnsvm.cli.main import main
from attnsvm.exceptions import InvalidInputError
from attnsvm.probe import corpus as probe_corpus
from attnsvm.probe import run as probe_run
from attnsvm.probe import tasks as probe_tasks
from attnsvm.probe.models import load_model
from test_probe import build_tiny_bert

SMALL = ["--seq-len", "8", "--max-queries", "16", "--jobs", "1"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert_cli"))


def _one_error_line(err: str, after_stages: bool = False) -> str:
    """The one ``error:`` line; with ``after_stages`` it may follow progress stage lines."""
    lines = err.strip().splitlines()
    if after_stages:
        assert all(ln.startswith("probe: ") for ln in lines[:-1]), err
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every model load (none must happen for input the probe can refuse first)."""
    calls: list[object] = []

    def fake(name: object, *args: object) -> None:
        calls.append(name)
        raise RuntimeError("the model was loaded")

    monkeypatch.setattr(probe_run, "load_model", fake)
    return calls


def test_load_model_leaves_the_environment_alone(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    load_model(tiny_bert)
    assert "HF_HUB_OFFLINE" not in os.environ
    assert os.environ["TRANSFORMERS_OFFLINE"] == "0"


def test_garbage_weights_and_devices_are_bad_input(
    tmp_path: Path, tiny_bert: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "garbage"
    bad.mkdir()
    for f in ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_bert / f).exists():
            (bad / f).write_bytes((tiny_bert / f).read_bytes())
    rng = np.random.default_rng(0)
    (bad / "model.safetensors").write_bytes(rng.bytes(1000))
    (tmp_path / "fake.gguf").write_bytes(b"not gguf at all")
    out = tmp_path / "out"
    for model in (str(bad), "/dev/zero", str(tmp_path / "fake.gguf")):
        rc, stdout, err = _run(["probe", "--model", model, "--out", str(out), *SMALL], capsys)
        assert rc == 2 and stdout == "", (model, err)
        line = _one_error_line(err)
        assert "Error:" not in line.split(":", 2)[1]  # no raw exception name
    # a header that parses but promises data the file does not hold
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    (bad / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"x")
    rc, _, err = _run(["probe", "--model", str(bad), "--out", str(out), *SMALL], capsys)
    assert rc == 2 and "data offsets" in _one_error_line(err)
    assert not out.exists()


def test_seq_len_beyond_the_model_limit(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc, stdout, err = _run(["probe", "--model", str(tiny_bert), "--out", str(out), "--seq-len",
                            "100", "--max-queries", "16"], capsys)
    assert rc == 2 and stdout == ""
    assert "at most 64" in _one_error_line(err, after_stages=True)
    assert not out.exists()


def test_options_and_paths_are_checked_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_loading: list[object]
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    text = tmp_path / "binary.txt"
    text.write_bytes(b"some words\x00\x01\x02")
    for extra in (["--out", str(a_file)], ["--layers", "0,x"], ["--layers", "-1"],
                  ["--max-queries", "0"], ["--max-queries", "10000000"], ["--seq-len", "2"],
                  ["--confidence", "2"], ["--nuclear-rows", "0"], ["--jobs", "0"],
                  ["--text", str(text)], ["--text", str(tmp_path / "missing.txt")],
                  ["--out", str(a_file / "below")]):
        rc, stdout, err = _run(["probe", "--model", "minilm", *extra], capsys)
        assert rc == 2 and stdout == "", extra
        _one_error_line(err)
    assert no_loading == []


def test_text_is_read_with_a_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.txt"
    big.write_text("naïve words " * 50_000)  # 650 kB
    monkeypatch.setattr(probe_corpus, "MAX_TEXT_BYTES", 1000)
    text = probe_corpus.read_corpus(big)
    assert len(text.encode()) <= 1000 and text.split()[-1] in ("naïve", "words")
    with pytest.raises(InvalidInputError, match="NUL"):
        probe_corpus.read_corpus("/dev/zero")


def test_text_from_dev_zero_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    def limit() -> None:  # 3 GB of address space: reading /dev/zero unbounded would hit it
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    res = subprocess.run(
        [sys.executable, "-m", "attnsvm.cli.main", "probe", "--text", "/dev/zero", "--out",
         str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120, preexec_fn=limit,
    )
    assert res.returncode == 2 and res.stdout == ""
    assert "NUL bytes" in _one_error_line(res.stderr)


def test_files_are_written_last(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["probe", "--model", str(tiny_bert), "--out", str(out), "--layers", "0",
            "--no-nuclear", *SMALL]
    assert _run(argv, capsys)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len([p for p in before if p.parent.name == "heads" and "_H" in p.name]) == 4
    real = probe_tasks.analyze_head
    calls = []

    def interrupted(*args: object, **kw: object) -> object:
        calls.append(1)
        if len(calls) == 3:  # (a head that raises an error is only that head's record)
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(probe_tasks, "analyze_head", interrupted)
    rc, stdout, err = _run([*argv[:-len(SMALL)], "--seed", "5", *SMALL], capsys)
    assert rc == 130 and stdout == "" and "interrupted" in err
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # the earlier report is whole; no staging folder is left

    def no_report(*args: object, **kw: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(probe_tasks, "analyze_head", real)
    monkeypatch.setattr(probe_run, "write_report", no_report)
    rc, stdout, err = _run([*argv[:-len(SMALL)], "--seed", "6", *SMALL], capsys)
    assert rc == 1 and stdout == "" and "disk full" in err
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # the heads were staged, then discarded with the report


def test_no_global_side_effects_and_progress_with_estimate(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    import matplotlib

    switched: list[object] = []
    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: switched.append(a))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    rc, stdout, err = _run(["probe", "--model", str(tiny_bert), "--out", str(tmp_path / "o"),
                            "--layers", "1", *SMALL], capsys)
    assert rc == 0 and switched == [] and "HF_HUB_OFFLINE" not in os.environ
    lines = err.strip().splitlines()
    # stages once the model has loaded (nothing before a possible exit-2 error) and runs,
    # then one line per head with count and ETA
    assert lines[0].startswith("probe: loaded") and lines[1].startswith("probe: running")
    heads = [ln for ln in lines if "layer 1 head" in ln]
    assert len(heads) == 4 and all(f"{k}/4" in ln for k, ln in enumerate(heads, 1))
    assert all("left" in ln for ln in heads[:-1]) and "corr_nuc=" in heads[0]
    # the default output speaks: one line per target and where the report is
    assert "Frobenius Att-SVM" in stdout and "nuclear-norm Att-SVM" in stdout
    assert "index.html" in stdout and "corr_nuc > corr_fro in" in stdout
