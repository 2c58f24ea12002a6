"""The figures: names, what each one claims, and where its code lives.

A :class:`Figure` bundles a configuration class with the functions that run and plot it.
Figure modules are imported on demand (:func:`get_figure`), so listing the figures imports
neither torch nor matplotlib.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .._extras import has_extra
from ..exceptions import InvalidParameterError
from ..progress import format_seconds
from .config import FigureConfig
from .sweep import Cell

__all__ = ["Figure", "Verdict", "FIGURES", "PAPER_FIGURES", "NEW_STUDIES", "TIMINGS",
           "TIMINGS_MACHINE", "figure_names", "get_figure", "describe_figures", "expected_seconds",
           "measured_seconds", "REQUIRES", "missing_extra"]

#: Figures of the papers' official code, in report order: name -> (module, one-line summary).
PAPER_FIGURES: dict[str, tuple[str, str]] = {
    "local-convergence": ("local_convergence",
                          "TF-SVM: GD on W and (K,Q) aligns with W^mm and W_*^mm (n=6,T=8,d=10)"),
    "rank": ("rank", "TF-SVM: rank of W^mm vs W_*^mm over n, T, d (solvers only)"),
    "multi-token": ("multi_token",
                    "TF-SVM: several selected tokens, GD vs W^svmeq, W^dir, W^mm (ReLU head)"),
    "paths-2d": ("paths_2d", "TF-SVM: GD paths of W(k) z_i in 2-D against W^mm z_i"),
    "prompt-paths": ("prompt_paths", "MMTS: prompt p paths vs p^mm, global and local"),
    "joint-vp": ("joint_vp", "MMTS: joint (v, p) training vs (v^mm, p^mm) / relaxed p-SVM"),
    "losses": ("losses", "MMTS: correlation loss vs logistic loss on the prompt"),
    "ntp-acyclic": ("ntp_acyclic", "NTP: GD on W vs the Graph-SVM, acyclic graphs (n=4,T=6,K=8)"),
    "ntp-cyclic": ("ntp_cyclic", "NTP: GD on W vs R W^svm + W^fin, cyclic graphs (n=6,T=4,K=6)"),
    "ntp-local": ("ntp_local", "NTP: squared loss, GD vs the global and the local Graph-SVM"),
}

#: Studies none of the papers ran.
NEW_STUDIES: dict[str, tuple[str, str]] = {
    "convergence-types": ("convergence_types",
                          "new: share of GD runs ending at global / locally optimal / other "
                          "token choices, and Att-SVM feasibility, over (n, T, d)"),
    "optimizer-rates": ("optimizer_rates",
                        "new: 1 - corr vs steps for GD, NGD, Polyak, mirror descent; W and (K,Q)"),
    "numerics": ("numerics", "new: plain autograd vs exact gradient, distance to W^mm"),
    "regularization-path": ("regularization_path", "new: W_R / R vs W^mm as R grows, beside GD"),
    "rope": ("rope", "new: rotary attention, GD on lifted M / factors vs the lifted Att-SVMs"),
    "optimizer-geometry": ("optimizer_geometry", "new: sign, spectral, Muon, Adam: which Att-SVM"),
    "minibatch-geometry": ("minibatch_geometry", "new: one sequence per step Signum and Adam"),
    "heads-over-training": ("heads_over_training", "new: decoder heads vs Att-SVMs over training"),
}

FIGURES: dict[str, tuple[str, str]] = {**PAPER_FIGURES, **NEW_STUDIES}

#: Figures that need an optional extra (``pip install "attnsvm[probe]"``): name -> extra.
#: Without it ``reproduce`` skips them (and says so); naming one is refused with exit 2.
REQUIRES: dict[str, str] = {"heads-over-training": "probe"}

#: Measured wall seconds per figure, ``(quick, full)``: ``attnsvm reproduce --quick`` and
#: ``attnsvm reproduce`` (papers' sizes), the ``seconds`` of each figure in ``summary.json``.
TIMINGS: dict[str, tuple[float, float]] = {
    # quick: one whole `attnsvm reproduce --quick` run on a quiet machine (its summary.json);
    # rank (full): the batched nuclear solver, a whole `attnsvm reproduce rank` process
    "local-convergence": (1.8, 15.2), "rank": (1.9, 29.0), "multi-token": (2.1, 17.8),
    "paths-2d": (1.5, 2.2), "prompt-paths": (3.0, 7.2), "joint-vp": (0.7, 1.3),
    "losses": (0.5, 1.4), "ntp-acyclic": (1.4, 6.8), "ntp-cyclic": (1.5, 6.0),
    "ntp-local": (1.1, 5.1), "convergence-types": (0.6, 23.3), "optimizer-rates": (1.7, 10.6),
    "numerics": (1.2, 11.4), "regularization-path": (1.1, 3.5),
    # the full times of the next four were measured while the machine was busy (2-5x slower)
    "rope": (1.5, 111.1),
    "optimizer-geometry": (3.9, 356.9),
    "minibatch-geometry": (2.2, 106.4),  # full: 2 workers
    "heads-over-training": (7.8, 814.2),  # full: before the hierarchy panel
}

#: Where :data:`TIMINGS` were measured.
TIMINGS_MACHINE = ("measured on this project's 2-core CPU machine (no GPU) while it was quiet; "
                   "a busy machine takes 2-5x longer; the whole command adds about 5 s of start-up")


@dataclass(frozen=True)
class Verdict:
    """A figure's claim against its measured numbers (the report's first table).

    Attributes
    ----------
    measured : str
        The headline numbers that decide, formatted for reading.
    passed : bool or None
        ``True`` when the numbers meet ``criterion``, ``False`` for a deviation, ``None`` for
        a study that measures without a pass/fail criterion.
    criterion : str
        What counts as agreeing with the claim.
    why : str
        For a deviation, why the numbers fall short of ``criterion``, read from what this run
        measured (too few steps or seeds, a part of the claim that fails and where); empty
        when the claim holds.
    """

    measured: str
    passed: bool | None
    criterion: str
    why: str = ""


@dataclass(frozen=True)
class Figure:
    """A figure: configuration plus the functions that run, summarise and plot it.

    Attributes
    ----------
    name, title : str
    source : str
        The paper and figure it reproduces, or ``"new study"``.
    claim : str
        The statement the figure tests.
    config : type of FigureConfig
        Defaults are the papers' settings; ``config().quick_variant()`` is ``--quick``.
    cells : callable ``(config) -> list of Cell``
    run_cell : callable ``(config, Cell) -> DataFrame``
        Module-level (pickled by name for process pools and Ray); deterministic.
    summarize : callable ``(config, DataFrame) -> dict``
        Headline numbers (JSON-able).
    plot : callable ``(config, DataFrame, Path) -> None``
        Writes the PNG.
    notes : callable ``(config, dict) -> dict``
        ``{"comparison": how the result compares with the published figure,
        "differences": how the numbers differ from the official code's, and why}``.
    table : callable ``(config, DataFrame) -> DataFrame``, optional
        The data written as CSV (default: the sweep table itself).
    takeaway : str
        One sentence: what the reader should see in the figure (caption and report).
    verdict : callable ``(config, dict) -> Verdict``, optional
        The claim checked against the headline numbers.

    The ``plot`` function returns the :class:`matplotlib.figure.Figure` it drew (and writes
    the PNG when given a path; ``None`` only draws), so tests can inspect its axes.
    """

    name: str
    title: str
    source: str
    claim: str
    config: type[FigureConfig]
    cells: Callable[[Any], list[Cell]]
    run_cell: Callable[[Any, Cell], pd.DataFrame]
    summarize: Callable[[Any, pd.DataFrame], dict[str, Any]]
    plot: Callable[[Any, pd.DataFrame, Path | None], Any]
    notes: Callable[[Any, dict[str, Any]], dict[str, str]]
    table: Callable[[Any, pd.DataFrame], pd.DataFrame] | None = None
    takeaway: str = ""
    verdict: Callable[[Any, dict[str, Any]], Verdict] | None = None


def figure_names() -> list[str]:
    """All figure names in report order (papers' figures, then new studies)."""
    return list(FIGURES)


def get_figure(name: str) -> Figure:
    """The :class:`Figure` called ``name``.

    Raises
    ------
    InvalidParameterError
        For an unknown name; the message lists the valid ones.
    """
    if name not in FIGURES:
        raise InvalidParameterError(
            f"Unknown figure '{name}'. Valid figures: {', '.join(FIGURES)}.")
    module = importlib.import_module(f"attnsvm.experiments.figures.{FIGURES[name][0]}")
    fig = module.FIGURE
    assert isinstance(fig, Figure) and fig.name == name
    return fig


def missing_extra(name: str) -> str | None:
    """The extra that figure ``name`` needs and that is not installed, else None."""
    extra = REQUIRES.get(name)
    return extra if extra is not None and not has_extra(extra) else None


def expected_seconds(name: str, quick: bool) -> float | None:
    """Measured seconds of a figure (:data:`TIMINGS`), or None when never measured."""
    t = TIMINGS.get(name)
    return None if t is None else t[0 if quick else 1]


def measured_seconds(out: str | Path) -> dict[tuple[str, bool], float]:
    """Seconds per ``(figure, quick)`` from the ``summary.json`` of a report folder (the last
    run there); empty when there is none or it cannot be read."""
    path = Path(out) / "summary.json"
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))["figures"]
        return {(name, f["mode"] == "quick"): float(f["seconds"])
                for name, f in figures.items() if name in FIGURES}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def describe_figures(out: str | Path | None = None) -> str:
    """What ``reproduce --list`` prints: per figure its name, measured times (quick and full)
    and summary, then the totals and where the times were measured.

    Times come from the last run recorded in ``out/summary.json`` when there is one (marked
    ``*``), else from :data:`TIMINGS`.
    """
    width = max(len(n) for n in FIGURES)
    last = measured_seconds(out) if out is not None else {}

    def seconds(name: str, quick: bool) -> float | None:
        return last.get((name, quick), expected_seconds(name, quick))

    def cell(name: str, quick: bool) -> str:
        t = seconds(name, quick)
        mark = "*" if (name, quick) in last else ""
        return "?" if t is None else (format_seconds(t) if t >= 1 else f"{t:.1f} s") + mark

    tq = sum(seconds(n, True) or 0.0 for n in FIGURES)
    tf = sum(seconds(n, False) or 0.0 for n in FIGURES)
    wq = max(7, len(format_seconds(tq)), *(len(cell(n, True)) for n in FIGURES))
    wf = max(10, len(format_seconds(tf)), *(len(cell(n, False)) for n in FIGURES))
    lines = [f"{'figure':<{width}}  {'quick':>{wq}}  {'full':>{wf}}  what it shows"]
    for n in FIGURES:
        needs = missing_extra(n)
        tail = f" (needs the extra '{needs}')" if needs else ""
        lines.append(f"{n:<{width}}  {cell(n, True):>{wq}}  {cell(n, False):>{wf}}  "
                     f"{FIGURES[n][1]}{tail}")
    lines.append(f"{'all':<{width}}  {format_seconds(tq):>{wq}}  {format_seconds(tf):>{wf}}")
    if last:
        lines.append(f"* measured by the last run in {Path(out) / 'summary.json'} "  # type: ignore[arg-type]
                     f"on this machine.")
    lines.append(f"Times {TIMINGS_MACHINE}.")
    return "\n".join(lines)
