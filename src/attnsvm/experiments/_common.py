"""Helpers shared by the figure modules: instances, SVM targets, correlations, plotting.

Figures are drawn with matplotlib's object API (:func:`attnsvm.reporting.new_figure`): the
process-wide backend is never switched."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._numerics import correlation
from ..instance import Instance, TiedTokensError, random_instance
from ..reporting import new_figure as _new_figure
from ..reporting import save_png
from ..svm import SVMSolution
from ..svm import solve as solve_svm

__all__ = ["make_instances", "optimal_or_first", "corr", "solve", "solution_fields", "targets",
           "new_figure", "save_figure", "series_style", "add_legend",
           "legend_outside", "legend_overlaps", "SOLVE_TOL", "ALIGNED",
           "aligned", "log_steps", "mathtext"]

#: KKT accuracy an SVM solution must reach to count as certified.
SOLVE_TOL = 1e-6

#: Correlation from which the report's verdicts count a run as aligned with its SVM direction.
ALIGNED = 0.95


def sd(values: Any) -> float:
    """Sample standard deviation (``ddof=1``) of the finite ``values``; NaN for fewer than two.

    Parameters
    ----------
    values : array_like, shape (k,)
        One number per run (seed).
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1)) if v.size > 1 else float("nan")


def aligned(*values: Any) -> bool:
    """True when every value is a number >= :data:`ALIGNED` (None or NaN is not aligned)."""
    return all(v is not None and np.isfinite(v) and v >= ALIGNED for v in values)


def make_instances(n: int, T: int, d: int, seeds: Sequence[int], cross: bool = True
                   ) -> list[Instance]:
    """The papers' random instances, one per seed."""
    return [random_instance(n, T, d, seed=int(s), cross=cross) for s in seeds]


def optimal_or_first(instance: Instance) -> tuple[np.ndarray, bool]:
    """Optimal tokens, or the first argmax of the scores when they tie (as the official code);
    the flag says whether there was a tie (the caller records it)."""

    try:
        return instance.optimal_tokens(), False
    except TiedTokensError:
        return np.argmax(instance.token_scores(), axis=1).astype(np.int64), True


#: the alignment measure of every figure: :func:`attnsvm._numerics.correlation` itself
corr = correlation


def solve(instance: Instance, alpha: np.ndarray, norm: str = "fro", p: float = 3.0,
          **options: Any) -> SVMSolution:
    """Att-SVM of ``instance`` for ``alpha`` in the Frobenius, nuclear or entrywise l_p norm
    (:func:`attnsvm.svm.solve`, the one choice of solver by norm); solver warnings are
    silenced because each solution's accuracy is recorded instead."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return solve_svm(instance, norm, alpha=alpha, p=p if norm == "lp" else None, **options)


def solution_fields(sol: SVMSolution, prefix: str) -> dict[str, Any]:
    """Status, norm, rank and accuracy of a solution as flat row fields."""
    feas = sol.W is not None
    return {
        f"{prefix}_status": sol.status,
        f"{prefix}_certified": bool(sol.is_optimal(SOLVE_TOL) if feas
                                    else sol.is_certified_infeasible()),
        f"{prefix}_objective": float(sol.objective) if feas else float("nan"),
        f"{prefix}_rank": int(sol.rank) if feas else -1,
        f"{prefix}_residual": float(max(sol.primal_residual(), sol.stationarity_residual()))
        if feas else float("nan"),
    }


def targets(instances: Sequence[Instance], alphas: np.ndarray, norm: str = "fro",
            cache: dict[Any, SVMSolution] | None = None, p: float = 3.0
            ) -> tuple[np.ndarray, list[SVMSolution]]:
    """SVM solutions for each instance's token choice, stacked as (B, d, d) (NaN if infeasible).

    ``cache`` (keyed by instance index, alpha and norm) avoids solving the same problem twice.
    """
    d = instances[0].d
    out = np.full((len(instances), d, d), np.nan)
    sols = []
    for b, (inst, a) in enumerate(zip(instances, alphas, strict=False)):
        key = (b, tuple(int(x) for x in a), norm)
        if cache is not None and key in cache:
            sol = cache[key]
        else:
            sol = solve(inst, np.asarray(a, dtype=np.int64), norm, p)
            if cache is not None:
                cache[key] = sol
        if sol.W is not None:
            out[b] = sol.W
        sols.append(sol)
    return out, sols


def log_steps(steps: int, per_decade: int = 12) -> np.ndarray:
    """0, then roughly log-spaced steps up to ``steps`` (included)."""
    if steps <= 0:
        return np.array([0], dtype=np.int64)
    pts = np.unique(np.round(np.logspace(0, np.log10(steps),
                                         max(2, int(per_decade * np.log10(steps)) + 1))))
    return np.unique(np.r_[0, pts.astype(np.int64), steps])


#: Markers and dash patterns of :func:`series_style` (one per series, cycled).
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_DASHES: tuple[Any, ...] = ("-", "--", "-.", (0, (6, 2, 1, 2, 1, 2)))


def series_style(j: int, n_points: int = 30) -> dict[str, Any]:
    """Plot keywords that keep series ``j`` visible where curves coincide.

    Each series has its own colour, marker and dash pattern; earlier series are drawn wider
    and lower (``zorder``) so that a later series lying exactly on top leaves a visible rim,
    and markers are staggered along the curve (``markevery``) so they never hide each other.
    """
    every = max(1, n_points // 8)
    return {"color": f"C{j % 10}", "marker": _MARKERS[j % len(_MARKERS)],
            "ls": _DASHES[j % len(_DASHES)], "lw": max(3.4 - 0.9 * j, 1.0),
            "ms": max(7.0 - 1.2 * j, 3.5), "markevery": (j % every, every),
            "zorder": 2 + j, "mfc": "none" if j % 2 else f"C{j % 10}"}


def add_legend(ax: Any, **kw: Any) -> Any:
    """A legend in a readable size (8 pt) with a half-transparent frame."""
    kw.setdefault("fontsize", 8)
    kw.setdefault("framealpha", 0.85)
    return ax.legend(**kw)


def legend_outside(ax: Any, where: str = "right", handles: Sequence[Any] | None = None,
                   ncol: int = 1, **kw: Any) -> Any:
    """A legend outside the axes ``ax`` so that it covers no data: to the ``"right"`` of the
    axes or ``"below"`` them (under the x label), in 8 pt; ``handles`` default to the axes'
    own labelled artists. The figure's layout (:func:`save_figure`) makes room for it."""
    if where not in ("right", "below"):
        raise ValueError(f"where must be 'right' or 'below', not {where!r}")
    kw.setdefault("fontsize", 8)
    kw.setdefault("frameon", False)
    if where == "right":
        kw.update(loc="center left", bbox_to_anchor=(1.02, 0.5))
    else:  # a fixed distance under the axes, below the tick labels and the x label
        from matplotlib.transforms import ScaledTranslation

        below = ax.transAxes + ScaledTranslation(0, -0.48, ax.figure.dpi_scale_trans)
        kw.update(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below)
    if handles is None:
        return ax.legend(ncol=ncol, **kw)
    return ax.legend(handles=list(handles), ncol=ncol, **kw)


def legend_overlaps(fig: Any) -> list[str]:
    """Curves with a data point under a legend drawn inside their axes, as ``"title: label"``
    (empty when every legend sits on empty space or outside the axes); the figure is drawn
    first so that the legends have their final places."""
    fig.canvas.draw()
    bad = []
    from matplotlib.legend import Legend

    for ax in fig.axes:
        for leg in [c for c in ax.get_children() if isinstance(c, Legend)]:
            box = leg.get_window_extent()
            if leg.get_visible() and box.overlaps(ax.get_window_extent()):
                bad += _under(ax, box)
    return bad


def _under(ax: Any, box: Any) -> list[str]:
    """Curves of ``ax`` with a data point inside the display box ``box``."""
    bad = []
    for line in ax.get_lines():
        xy = ax.transData.transform(np.column_stack(line.get_data()).astype(float))
        xy = xy[np.isfinite(xy).all(axis=1)]
        inside = ((xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0)
                  & (xy[:, 1] <= box.y1))
        if inside.any():
            bad.append(f"{ax.get_title()}: {line.get_label()}")
    return bad


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4
               ) -> tuple[Any, Any]:
    """A figure (object API, Agg canvas, no pyplot) with a 2-D array of axes."""
    return _new_figure(ncols, nrows, width, height)


_SYMBOL = re.compile(r"\b([WRpv])(_\*)?\^([A-Za-z0-9]+)(?:_([A-Za-z0-9]+))?|\bK Q\^T\b")
_GREEK = {"alpha", "beta", "gamma", "lambda"}


def _symbol(m: re.Match[str]) -> str:
    if m.group(1) is None:
        return "$KQ^T$"
    sub = m.group(4)
    sub = "" if sub is None else "_{" + (f"\\{sub}" if sub in _GREEK else sub) + "}"
    return f"${m.group(1)}{m.group(2) or ''}^{{{m.group(3)}}}{sub}$"


def mathtext(text: str) -> str:
    """Plain-text symbols of the prose (``W^mm``, ``W_*^mm``, ``K Q^T``) as matplotlib
    mathtext, for captions drawn in the PNG.

    >>> mathtext("W_*^mm and W^svmeq, K Q^T")
    '$W_*^{mm}$ and $W^{svmeq}$, $KQ^T$'
    >>> print(mathtext("p^mm_beta, W^mm_1"))
    $p^{mm}_{\\beta}$, $W^{mm}_{1}$
    """
    return _SYMBOL.sub(_symbol, text)


def _labels_as_mathtext(fig: Any) -> None:
    """Titles, axis labels and legend entries of ``fig`` with their plain-text symbols as
    mathtext (:func:`mathtext`); a text that already holds mathtext is left as it is."""
    texts = []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        leg = ax.get_legend()
        texts += list(leg.get_texts()) if leg is not None else []
    for leg in fig.legends:
        texts += list(leg.get_texts())
    for t in texts:
        old = t.get_text()
        if old and "$" not in old:
            new = mathtext(old)
            if new != old:
                t.set_text(new)


def save_figure(fig: Any, path: str | Path | None, title: str | None = None,
                caption: str | None = None, legend: Sequence[Any] | None = None,
                legend_cols: int = 4) -> Any:
    """Lay out the figure (title on top, ``caption`` below), write it as PNG to ``path``
    atomically when a path is given, and return it.

    Symbols written as plain text in the title, the caption, axis labels and legends
    (``W^mm``, ``W_*^mm``, ``p^mm``, ``K Q^T``) are drawn as mathtext.

    ``caption`` is the sentence that says what the reader should see. ``legend``: artists
    (with labels) of one legend for the whole figure, drawn under the title in a size that
    stays readable at page width, for figures of many small panels.
    """
    import textwrap

    from matplotlib.ticker import NullFormatter

    for ax in fig.axes:  # log axes spanning two decades or more: decade labels only
        for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = sorted(lim)
            if axis.get_scale() == "log" and lo > 0 and hi / lo >= 100:
                axis.set_minor_formatter(NullFormatter())
    if title:
        fig.suptitle(mathtext(title), fontsize=10)
    top = 1.0
    if legend:
        rows = -(-len(legend) // legend_cols)
        height_in = fig.get_size_inches()[1]
        fig.legend(handles=list(legend), loc="upper center", ncol=legend_cols, fontsize=10,
                   frameon=False, bbox_to_anchor=(0.5, 1 - 0.35 / height_in))
        top = 1 - (0.25 + 0.2 * rows) / height_in
    bottom = 0.0
    if caption:
        width_in = fig.get_size_inches()[0]
        lines = [mathtext(line) for line in
                 textwrap.wrap(caption, width=max(40, int(width_in * 15)))]
        fig.text(0.5, 0.01, "\n".join(lines), ha="center", va="bottom", fontsize=8.5,
                 style="italic", wrap=False)
        bottom = (0.16 * len(lines) + 0.1) / fig.get_size_inches()[1]
    _labels_as_mathtext(fig)
    fig.tight_layout(rect=(0.0, bottom, 1.0, top))
    if path is not None:
        save_png(fig, path)
    return fig
