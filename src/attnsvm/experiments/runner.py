"""Run figures into a report folder: sweep, summarise, plot, and record what was done.

Layout of the output folder ``out``::

    out/index.html             the report (self-contained: PNGs embedded as base64)
    out/summary.json           provenance and, per figure, headline numbers and seconds
    out/<name>.png             one image per figure
    out/<name>.csv             the data behind each figure
    out/data/<name>.json       the figure's record (kept so partial reruns keep other figures)
    out/data/<name>/<mode>-<config key>/cell-*.parquet   the resumable sweep
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from .._extras import extra_message
from .._io import atomic_write_bytes
from ..exceptions import InvalidParameterError, MissingDependencyError
from ..progress import format_seconds
from ..reporting import to_jsonable, write_json_atomic
from .config import FigureConfig
from .executors import BACKENDS, Executor, make_executor
from .registry import (
    Figure,
    Verdict,
    expected_seconds,
    figure_names,
    get_figure,
    missing_extra,
)
from .report import provenance, write_report
from .sweep import Sweep

__all__ = ["FigureResult", "run_figure", "reproduce", "figure_config", "resolve_backend",
           "DEFAULT_OUT"]

DEFAULT_OUT = "attnsvm-report"


@dataclass
class FigureResult:
    """Outcome of :func:`run_figure`.

    Attributes
    ----------
    name : str
    config : FigureConfig
    data : DataFrame
        The sweep table.
    headline : dict
        Headline numbers (also in ``record``).
    record : dict
        Everything the report shows for the figure (written to ``data/<name>.json``).
    seconds : float
        Wall time of this run of the figure (sweep, summary and plot).
    figure : matplotlib.figure.Figure or None
        The figure as drawn (what ``plot`` returned), for inspection.
    """

    name: str
    config: FigureConfig
    data: pd.DataFrame
    headline: dict[str, Any]
    record: dict[str, Any]
    seconds: float
    figure: Any = None


def figure_config(fig: Figure, quick: bool = False,
                  overrides: dict[str, Any] | None = None) -> FigureConfig:
    """The figure's configuration: papers' defaults, ``--quick`` overrides, then ``overrides``."""
    cfg = fig.config()
    if quick:
        cfg = cfg.quick_variant()
    if overrides:
        cfg = cfg.replace(**overrides)
    return cfg


def resolve_backend(backend: str | None, workers: int | None) -> str:
    """The executor backend to use: ``backend``, or when it is None ``"process"`` if
    ``workers`` is given and ``"batched"`` otherwise.

    Raises
    ------
    InvalidParameterError
        ``workers`` with the in-process ``"batched"`` backend (it would be ignored), a
        non-positive ``workers``, or an unknown backend.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise InvalidParameterError(
            f"The '--workers' option must be a positive integer. Got {workers!r} instead.")
    if backend is None:
        return "process" if workers is not None else "batched"
    if backend not in BACKENDS:
        raise InvalidParameterError(
            f"The '--backend' option must be one of {set(BACKENDS)}. Got {backend!r} instead.")
    if backend == "batched" and workers is not None:
        raise InvalidParameterError(
            "The '--workers' option needs a parallel backend: leave '--backend' out (workers "
            "imply '--backend process') or give '--backend process' or '--backend ray'.")
    return backend


def run_figure(name: str, out: str | Path = DEFAULT_OUT, quick: bool = False,
               executor: Executor | None = None, overrides: dict[str, Any] | None = None,
               progress: bool | None = None, stream: IO[str] | None = None) -> FigureResult:
    """Run one figure into ``out`` (resuming its sweep), write its PNG, CSV and record.

    Parameters
    ----------
    name : str
        A name of :func:`~.registry.figure_names`.
    out : path
        Report folder.
    quick : bool
        Reduced settings (``--quick``).
    executor : Executor, optional
        Default in-process batched.
    overrides : dict, optional
        Settings to change (e.g. ``{"seeds": 10}``).
    progress : bool, optional
        ``False`` silences the progress lines on ``stream`` (default stderr).

    Returns
    -------
    FigureResult
    """
    t0 = time.perf_counter()
    fig = get_figure(name)
    cfg = figure_config(fig, quick, overrides)
    out = Path(out)
    mode = "quick" if cfg.quick else "full"
    sweep = Sweep(name, cfg, fig.cells(cfg), fig.run_cell,
                  out / "data" / name / f"{mode}-{cfg.key()}")
    df = sweep.run(executor, progress=progress, stream=stream)
    headline = to_jsonable(fig.summarize(cfg, df))
    png = out / f"{name}.png"
    drawn = fig.plot(cfg, df, png)  # the matplotlib Figure; it also wrote the PNG
    table = fig.table(cfg, df) if fig.table is not None else df
    atomic_write_bytes(out / f"{name}.csv", table.to_csv(index=False).encode("utf-8"))
    notes = fig.notes(cfg, headline)
    verdict = fig.verdict(cfg, headline) if fig.verdict is not None else None
    seconds = time.perf_counter() - t0
    record = to_jsonable({
        "name": name, "title": fig.title, "source": fig.source, "claim": fig.claim,
        "mode": mode, "settings": cfg.to_dict(), "config_key": cfg.key(),
        "seeds": [cfg.seed0, cfg.seed0 + cfg.seeds - 1],
        "headline": headline, "seconds": round(seconds, 3), "cells": len(sweep.cells),
        "cells_resumed": sweep.cached, "png": png.name, "csv": f"{name}.csv",
        "comparison": notes.get("comparison", ""), "differences": notes.get("differences", ""),
        "takeaway": fig.takeaway,
        "verdict": None if verdict is None else {
            "measured": verdict.measured, "passed": verdict.passed,
            "criterion": verdict.criterion, "why": _why(verdict)},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "executor": executor.name if executor is not None else "batched",
    })
    write_json_atomic(out / "data" / f"{name}.json", record)
    return FigureResult(name, cfg, df, headline, record, seconds, drawn)


def _why(verdict: Verdict) -> str:
    """What the report says about a deviation: the figure's own diagnosis, or that it gives
    none (never silence); empty for a pass or a study without a criterion."""
    if verdict.passed is not False:
        return ""
    return verdict.why or ("The criterion fails on the numbers measured above; this figure "
                           "gives no further diagnosis.")


def reproduce(names: Sequence[str] | None = None, out: str | Path = DEFAULT_OUT,
              quick: bool = False, backend: str | None = None, workers: int | None = None,
              address: str | None = None, progress: bool | None = None,
              stream: IO[str] | None = None, argv: Sequence[str] | None = None
              ) -> dict[str, Any]:
    """Run figures and write the report; returns the summary (as in ``summary.json``).

    Parameters
    ----------
    names : sequence of str, optional
        Figures to run (default all).  Unknown names raise
        :class:`~attnsvm.exceptions.InvalidParameterError` before anything runs.
    out : path
    quick : bool
    backend : {"batched", "process", "ray"}, optional
        Default: ``"process"`` when ``workers`` is given, else ``"batched"`` (see
        :func:`resolve_backend`).
    workers : int, optional
        Processes of the pool / CPUs of a local Ray cluster.
    address : str, optional
        Address of an existing Ray cluster.
    progress : bool, optional
        ``False`` silences progress.  Otherwise each sweep reports its cells and each finished
        figure one line with the time left for the whole run on ``stream`` (default stderr),
        estimated from the measured times of the remaining figures
        (:data:`~.registry.TIMINGS`) scaled by this run's speed so far.
    argv : sequence of str, optional
        The command line, for the provenance.
    """
    import sys

    todo = list(names) if names else figure_names()
    for n in todo:
        get_figure(n)  # validate every name first
    skipped = {n: extra_message(f"the figure {n}", e)
               for n in todo if (e := missing_extra(n)) is not None}
    if names and skipped:  # a figure asked for by name is never skipped quietly
        raise MissingDependencyError(next(iter(skipped.values())))
    todo = [n for n in todo if n not in skipped]
    backend = resolve_backend(backend, workers)
    err = stream if stream is not None else sys.stderr
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    expected = [expected_seconds(n, quick) or 1.0 for n in todo]
    for n, why in skipped.items():
        if progress is not False:
            err.write(f"reproduce: skipping {n}: {why}\n")
    with make_executor(backend, workers, address) as ex:
        for k, n in enumerate(todo):
            res = run_figure(n, out, quick, ex, progress=progress, stream=stream)
            if progress is not False:
                _figure_line(err, k, todo, res.seconds, time.perf_counter() - t0, expected)
    prov = provenance(backend=backend, workers=workers, address=address, quick=quick,
                      argv=argv, started=started, seconds=time.perf_counter() - t0,
                      figures_run=todo)
    return write_report(out, prov, skipped=skipped)


def _figure_line(err: IO[str], k: int, todo: list[str], seconds: float, elapsed: float,
                 expected: list[float]) -> None:
    """``reproduce: 3/11 figures, rank done in 1.6 s; 6 s elapsed, about 9 s left``."""
    done_exp = sum(expected[:k + 1])
    speed = elapsed / done_exp if done_exp > 0 else 1.0  # this run's seconds per measured one
    left = speed * sum(expected[k + 1:])
    tail = f", about {format_seconds(left)} left" if k + 1 < len(todo) else ""
    try:
        err.write(f"reproduce: {k + 1}/{len(todo)} figures, {todo[k]} done in "
                  f"{seconds:.1f} s; {format_seconds(elapsed)} elapsed{tail}\n")
        err.flush()
    except (BrokenPipeError, ValueError):
        pass
