"""The papers' figures and new studies as declarative, resumable sweeps and one HTML report.

::

    from attnsvm.experiments import reproduce, run_figure, figure_names
    reproduce(["rank"], out="attnsvm-report", quick=True)   # index.html, rank.png, rank.csv, ...

* :mod:`.config` -- frozen dataclass configurations (papers' settings as defaults, ``QUICK``).
* :mod:`.sweep` -- :class:`Sweep` of :class:`Cell` s, one atomic Parquet file per finished cell.
* :mod:`.executors` -- in-process (default), process pool and Ray executors.
* :mod:`.registry` -- the figures by name; :mod:`.figures` one module per figure.
* :mod:`.runner` / :mod:`.report` -- run figures, write PNG/CSV/``summary.json``/``index.html``.
"""

from __future__ import annotations

from .config import FigureConfig
from .executors import BACKENDS, BatchedExecutor, ProcessExecutor, RayExecutor, make_executor
from .registry import FIGURES, NEW_STUDIES, PAPER_FIGURES, Figure, figure_names, get_figure
from .runner import DEFAULT_OUT, FigureResult, reproduce, run_figure
from .sweep import Cell, Progress, Sweep

__all__ = [
    "reproduce", "run_figure", "FigureResult", "DEFAULT_OUT", "figure_names", "get_figure",
    "Figure", "FIGURES", "PAPER_FIGURES", "NEW_STUDIES", "FigureConfig", "Sweep", "Cell",
    "Progress", "BACKENDS", "BatchedExecutor", "ProcessExecutor", "RayExecutor",
    "make_executor",
]
