"""The figures: names, what each one claims, and where its code lives.

A :class:`Figure` bundles a configuration class with the functions that run and plot it.
Figure modules are imported on demand (:func:`get_figure`), so listing the figures imports
neither torch nor matplotlib.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..exceptions import InvalidParameterError
from .config import FigureConfig
from .sweep import Cell

__all__ = ["Figure", "FIGURES", "PAPER_FIGURES", "NEW_STUDIES", "figure_names", "get_figure",
           "describe_figures"]

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
}

FIGURES: dict[str, tuple[str, str]] = {**PAPER_FIGURES, **NEW_STUDIES}


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
    """

    name: str
    title: str
    source: str
    claim: str
    config: type[FigureConfig]
    cells: Callable[[Any], list[Cell]]
    run_cell: Callable[[Any, Cell], pd.DataFrame]
    summarize: Callable[[Any, pd.DataFrame], dict[str, Any]]
    plot: Callable[[Any, pd.DataFrame, Path], None]
    notes: Callable[[Any, dict[str, Any]], dict[str, str]]
    table: Callable[[Any, pd.DataFrame], pd.DataFrame] | None = None


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


def describe_figures() -> str:
    """One line per figure: name, then its summary (what ``reproduce --list`` prints)."""
    width = max(len(n) for n in FIGURES)
    return "\n".join(f"{n:<{width}}  {FIGURES[n][1]}" for n in FIGURES)
