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

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from .._io import atomic_write_bytes, atomic_write_text
from .config import FigureConfig, jsonable
from .executors import Executor, make_executor
from .registry import Figure, figure_names, get_figure
from .sweep import Sweep

__all__ = ["FigureResult", "run_figure", "reproduce", "figure_config", "DEFAULT_OUT"]

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
    """

    name: str
    config: FigureConfig
    data: pd.DataFrame
    headline: dict[str, Any]
    record: dict[str, Any]
    seconds: float


def figure_config(fig: Figure, quick: bool = False,
                  overrides: dict[str, Any] | None = None) -> FigureConfig:
    """The figure's configuration: papers' defaults, ``--quick`` overrides, then ``overrides``."""
    cfg = fig.config()
    if quick:
        cfg = cfg.quick_variant()
    if overrides:
        cfg = cfg.replace(**overrides)
    return cfg


def _clean(value: Any) -> Any:
    """JSON-able with NaN/inf turned into None (strict JSON)."""
    value = jsonable(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


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
        Progress bar on/off (default: on a tty).

    Returns
    -------
    FigureResult
    """
    import matplotlib

    matplotlib.use("Agg")
    t0 = time.perf_counter()
    fig = get_figure(name)
    cfg = figure_config(fig, quick, overrides)
    out = Path(out)
    mode = "quick" if cfg.quick else "full"
    sweep = Sweep(name, cfg, fig.cells(cfg), fig.run_cell,
                  out / "data" / name / f"{mode}-{cfg.key()}")
    df = sweep.run(executor, progress=progress, stream=stream)
    headline = _clean(fig.summarize(cfg, df))
    png = out / f"{name}.png"
    fig.plot(cfg, df, png)
    table = fig.table(cfg, df) if fig.table is not None else df
    atomic_write_bytes(out / f"{name}.csv", table.to_csv(index=False).encode("utf-8"))
    notes = fig.notes(cfg, headline)
    seconds = time.perf_counter() - t0
    record = _clean({
        "name": name, "title": fig.title, "source": fig.source, "claim": fig.claim,
        "mode": mode, "settings": cfg.to_dict(), "config_key": cfg.key(),
        "seeds": [cfg.seed0, cfg.seed0 + cfg.seeds - 1],
        "headline": headline, "seconds": round(seconds, 3), "cells": len(sweep.cells),
        "cells_resumed": sweep.cached, "png": png.name, "csv": f"{name}.csv",
        "comparison": notes.get("comparison", ""), "differences": notes.get("differences", ""),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "executor": executor.name if executor is not None else "batched",
    })
    atomic_write_text(out / "data" / f"{name}.json", json.dumps(record, indent=1))
    return FigureResult(name, cfg, df, headline, record, seconds)


def reproduce(names: Sequence[str] | None = None, out: str | Path = DEFAULT_OUT,
              quick: bool = False, backend: str = "batched", workers: int | None = None,
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
    backend : {"batched", "process", "ray"}
    workers : int, optional
        Processes of the pool / CPUs of a local Ray cluster.
    address : str, optional
        Address of an existing Ray cluster.
    progress : bool, optional
    argv : sequence of str, optional
        The command line, for the provenance.
    """
    from .report import provenance, write_report

    todo = list(names) if names else figure_names()
    for n in todo:
        get_figure(n)  # validate every name first
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    with make_executor(backend, workers, address) as ex:
        for n in todo:
            run_figure(n, out, quick, ex, progress=progress, stream=stream)
    prov = provenance(backend=backend, workers=workers, address=address, quick=quick,
                      argv=argv, started=started, seconds=time.perf_counter() - t0,
                      figures_run=todo)
    return write_report(out, prov)
