"""Sweeps, executors, report and the ``reproduce`` command (fast: tiny configurations)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from attnsvm.cli.main import main
from attnsvm.exceptions import InvalidParameterError
from attnsvm.experiments.config import FigureConfig
from attnsvm.experiments.executors import BatchedExecutor, ProcessExecutor, make_executor
from attnsvm.experiments.registry import (
    FIGURES,
    TIMINGS,
    describe_figures,
    figure_names,
    get_figure,
)
from attnsvm.experiments.runner import figure_config, run_figure
from attnsvm.experiments.sweep import Cell, Progress, Sweep

TINY_RANK = {"ns": (4,), "Ts": (4,), "n_fixed": 4, "T_fixed": 4, "ds": (1, 3, 6), "seeds": 4,
             "chunk": 2}
PAPER_NAMES = ["local-convergence", "rank", "multi-token", "paths-2d", "prompt-paths",
               "joint-vp", "losses"]


def _tiny_rank_sweep(path: Path) -> Sweep:
    fig = get_figure("rank")
    cfg = figure_config(fig, True, TINY_RANK)
    return Sweep("rank", cfg, fig.cells(cfg), fig.run_cell, path)


def test_list_names_papers_first_with_measured_times(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    assert main(["reproduce", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["figure", "quick", "full"]
    first = [line.split()[0] for line in lines[1:1 + len(FIGURES)]]
    assert first[:7] == PAPER_NAMES
    assert first == figure_names() == list(FIGURES)
    assert describe_figures().splitlines()[1].startswith("local-convergence")
    # Every figure has a measured quick and full time, and the listing says where.
    for name in figure_names():  # a new figure comes with its measured times
        quick, full = TIMINGS[name]
        assert 0 < quick < full
    assert "2-core CPU" in lines[-1] and "measured" in lines[-1]
    rank = next(line for line in lines if line.startswith("rank "))
    assert "29 s" in rank  # the batched nuclear solver at the papers' sizes


def test_list_reads_the_last_run_in_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    """``--list`` shows the times of the last run recorded in ``--out`` (marked ``*``)."""
    (tmp_path / "summary.json").write_text(json.dumps(
        {"figures": {"rank": {"mode": "quick", "seconds": 123.0}}}))
    assert main(["reproduce", "--list", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rank = next(line for line in out.splitlines() if line.startswith("rank "))
    assert "2 min 03 s*" in rank and "29 s" in rank  # quick from the run, full shipped
    assert "summary.json" in out.splitlines()[-2]
    (tmp_path / "summary.json").write_text("not json")  # unreadable: the shipped times
    assert main(["reproduce", "--list", "--out", str(tmp_path)]) == 0
    assert "s* " not in capsys.readouterr().out


def test_unknown_name_names_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidParameterError, match="local-convergence.*rank"):
        get_figure("no-such-figure")
    assert main(["reproduce", "rank", "no-such-figure", "--out", "/nonexistent/x"]) == 2
    assert "Valid figures" in capsys.readouterr().err


def test_every_figure_imports_with_quick_variant() -> None:
    for name in figure_names():
        fig = get_figure(name)
        cfg = fig.config().quick_variant()
        assert cfg.quick and fig.cells(cfg)
        assert fig.config().key() != cfg.key()
        assert fig.claim and fig.source


def test_config_replace_rejects_unknown() -> None:
    with pytest.raises(InvalidParameterError, match="Unknown settings"):
        FigureConfig().replace(nope=1)
    with pytest.raises(InvalidParameterError):
        FigureConfig(seeds=0)


def test_cell_keys_stable_and_distinct() -> None:
    a, b = Cell({"n": 1}, (0, 1)), Cell({"n": 1}, (0, 2))
    assert a.key == Cell({"n": 1}, (0, 1)).key != b.key


def test_sweep_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    full = _tiny_rank_sweep(tmp_path / "a").run()
    sw = _tiny_rank_sweep(tmp_path / "b")
    sw.run()
    files = sorted((tmp_path / "b").glob("cell-*.parquet"))
    assert len(files) == len(sw.cells) == 6
    for p in files[::2]:
        p.unlink()
    (tmp_path / "b" / ".cell-x.parquet.abc.tmp").write_bytes(b"half")  # a killed write
    again = _tiny_rank_sweep(tmp_path / "b")
    df = again.run()
    assert again.cached == 3
    pd.testing.assert_frame_equal(df, full)
    assert not list((tmp_path / "b").glob(".cell-*.tmp"))
    assert len(df) == 3 * 4 and not df.duplicated(["d", "seed"]).any()


def test_process_executor_matches_batched(tmp_path: Path) -> None:
    a = _tiny_rank_sweep(tmp_path / "a").run(BatchedExecutor())
    with ProcessExecutor(2) as ex:
        b = _tiny_rank_sweep(tmp_path / "b").run(ex)
    pd.testing.assert_frame_equal(a, b)


def test_make_executor_rejects_unknown() -> None:
    with pytest.raises(InvalidParameterError):
        make_executor("threads")
    with pytest.raises(InvalidParameterError):
        ProcessExecutor(0)


def test_progress_lines_when_not_a_terminal() -> None:
    buf = io.StringIO()  # not a tty: whole lines, never a carriage return
    bar = Progress(4, "rank", buf, unit="cells", min_interval=0.0)
    bar.advance()
    bar.advance()
    bar.close()
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue()
    assert lines[0].startswith("rank: 1/4 cells (25%)") and "left" in lines[0]
    assert lines[-1].startswith("rank: 2/4 cells (50%)")
    quiet = io.StringIO()
    Progress(4, "rank", quiet, enabled=False).advance()
    assert quiet.getvalue() == ""


def test_reproduce_reports_progress_with_eta(tmp_path: Path) -> None:
    err = io.StringIO()
    from attnsvm.experiments.runner import reproduce

    reproduce(["joint-vp", "losses"], tmp_path / "r", quick=True, stream=err)
    text = err.getvalue()
    assert "reproduce: 1/2 figures, joint-vp done in" in text and "left" in text
    assert "reproduce: 2/2 figures, losses done in" in text
    assert "losses: 2/2 cells (100%)" in text


def test_report_files_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    res = run_figure("rank", out, quick=True, overrides=TINY_RANK)
    from attnsvm.experiments.report import provenance, write_report

    summary = write_report(out, provenance(test=True))
    assert {"index.html", "summary.json", "rank.png", "rank.csv"} <= {
        p.name for p in out.iterdir()}
    s = json.loads((out / "summary.json").read_text())
    assert s == json.loads(json.dumps(summary))
    entry = s["figures"]["rank"]
    assert entry["seconds"] > 0 and entry["infeasible_at_d1"] == 4
    assert s["provenance"]["version"] and "commit" in s["provenance"]
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 1
    assert "Claim tested" in html and "differ from the official" in html
    csv = pd.read_csv(out / "rank.csv")
    assert set(csv["d"]) == {1, 3, 6}
    assert res.record["cells_resumed"] == 0
    # A rerun resumes every cell and gives the same headline numbers.
    res2 = run_figure("rank", out, quick=True, overrides=TINY_RANK)
    assert res2.record["cells_resumed"] == res2.record["cells"]
    assert res2.headline == res.headline


_KILL_SCRIPT = textwrap.dedent("""
    import sys
    import time
    from attnsvm.experiments.figures import rank
    from attnsvm.experiments.runner import run_figure

    # each cell takes a few ms: slowed to 50 ms so that the parent's kill lands mid-sweep
    # whatever the machine's load (it once landed after all 21 cells)
    fast = rank.FIGURE.run_cell
    def run_cell(cfg, cell):
        time.sleep(0.05)
        return fast(cfg, cell)
    object.__setattr__(rank.FIGURE, "run_cell", run_cell)
    run_figure("rank", sys.argv[1], quick=True,
               overrides=dict(ns=(5,), Ts=(5,), ds=(2, 3, 4, 5, 6, 8, 10), seeds=6, chunk=2))
""")


def _sweep_dir(out: Path) -> Path:
    return next((out / "data" / "rank").glob("quick-*"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupt_then_rerun_completes_identically(tmp_path: Path, sig: int) -> None:
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        d = out / "data" / "rank"
        if d.exists() and any(d.glob("quick-*/cell-*.parquet")):
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait()
    done = len(list(_sweep_dir(out).glob("cell-*.parquet")))
    assert 1 <= done < 21, "the kill should land mid-sweep"
    subprocess.run([sys.executable, str(script), str(out)], env=env, check=True)
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, str(script), str(ref)], env=env, check=True)
    a = pd.read_csv(out / "rank.csv")
    b = pd.read_csv(ref / "rank.csv")
    pd.testing.assert_frame_equal(a, b)
    rec = json.loads((out / "data" / "rank.json").read_text())
    assert rec["cells_resumed"] == done and rec["cells"] == 21
    files_a = sorted(p.name for p in _sweep_dir(out).glob("cell-*.parquet"))
    files_b = sorted(p.name for p in _sweep_dir(ref).glob("cell-*.parquet"))
    assert files_a == files_b
    for name in files_a:
        pd.testing.assert_frame_equal(pd.read_parquet(_sweep_dir(out) / name),
                                      pd.read_parquet(_sweep_dir(ref) / name))


def test_cli_reproduce_writes_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["reproduce", "rank", "--quick", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    s = json.loads((out / "summary.json").read_text())
    assert list(s["figures"]) == ["rank"]
    # The default output: per figure mode, seconds and verdict; the counts; the report.
    mark = {True: "pass", False: "deviation", None: "measured"}[
        s["figures"]["rank"]["verdict"]["passed"]]
    assert lines[0].split() == ["rank", "quick", f"{s['figures']['rank']['seconds']:.1f}", "s",
                                mark]
    assert lines[1].startswith("verdicts: 1 ")
    assert lines[2] == f"report: {out}/index.html"
    assert main(["reproduce", "rank", "--address", "x:1", "--out", str(out)]) == 2


def test_workers_imply_the_process_backend_or_fail_clearly() -> None:
    from attnsvm.experiments.runner import resolve_backend

    assert resolve_backend(None, None) == "batched"
    assert resolve_backend(None, 2) == "process"
    assert resolve_backend("ray", 2) == "ray"
    with pytest.raises(InvalidParameterError, match="'--workers' option needs a parallel"):
        resolve_backend("batched", 2)
    with pytest.raises(InvalidParameterError, match="positive integer"):
        resolve_backend(None, 0)


def test_cli_workers_use_a_process_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import attnsvm.experiments.runner as runner

    made = []

    def spy(backend: str, workers: int | None = None, address: str | None = None) -> object:
        made.append((backend, workers))
        return BatchedExecutor()  # same numbers (see test_process_executor_matches_batched)

    monkeypatch.setattr(runner, "make_executor", spy)
    out = tmp_path / "w"
    assert main(["reproduce", "joint-vp", "--quick", "--workers", "2", "--out", str(out)]) == 0
    assert made == [("process", 2)]
    s = json.loads((out / "summary.json").read_text())
    assert s["provenance"]["backend"] == "process" and s["provenance"]["workers"] == 2
    code = main(["reproduce", "joint-vp", "--quick", "--backend", "batched", "--workers", "2",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "--workers" in err[-1]
    assert made == [("process", 2)]  # refused before anything ran


@pytest.mark.ray
def test_ray_backend_local_cluster(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from attnsvm.experiments.executors import RayExecutor

    a = _tiny_rank_sweep(tmp_path / "a").run(BatchedExecutor())
    with RayExecutor(workers=2) as ex:
        b = _tiny_rank_sweep(tmp_path / "b").run(ex)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_quick_writes_every_figure_in_time(tmp_path: Path) -> None:
    out = tmp_path / "quick"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "attnsvm.cli.main", "reproduce", "--quick",
                           "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - t0 < 120
    s = json.loads((out / "summary.json").read_text())
    assert list(s["figures"]) == figure_names()
    for name in figure_names():
        assert (out / f"{name}.png").stat().st_size > 1000
        assert len(pd.read_csv(out / f"{name}.csv")) > 0
        assert s["figures"][name]["seconds"] > 0


@pytest.mark.slow
def test_full_local_convergence_aligns(tmp_path: Path) -> None:
    res = run_figure("local-convergence", tmp_path)
    assert res.headline["corr_fro_W_mean"] >= 0.99
    assert res.headline["runs_per_variant"] == 100
