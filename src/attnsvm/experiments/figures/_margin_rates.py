"""Fitted decay of the margin gap ``1 - margin ratio`` (shared by the geometry studies).

For one run and seed, with ``g(t) = 1 - ratio(t)`` in the run's target norm at the checkpoints
``t`` of the last decade of steps (``t >= t_max / 10``, ``g > 0``), two least-squares fits:

* ``log g = a + s log t``: a power law; ``s = -1/2`` is the ``1/sqrt(t)`` rate of normalized
  steepest descent for linear models (Fan, Schmidt, Thrampoulidis 2025);
* ``log g = a + r log log t``: ``r = -1`` is a ``1/log t`` decay (plain GD's margin rate for
  linear models).

Across seeds: the mean slope and its 95% t-interval (``mean +- t_{0.975, S-1} sd / sqrt(S)``).
A rate is "consistent" with a model when the interval contains the model's slope.  Over one
decade both models are nearly straight lines; the intervals say which of them the data
exclude, not which law holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ...reporting import fmt_number as num
from .._common import legend_outside, series_style
from .._labels import norm_label, run_label

__all__ = ["RATE_MODELS", "seed_slopes", "fit_rates", "rate_text", "plot_rates", "plot_slopes"]

#: model name -> (x transform, slope of that model)
RATE_MODELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "sqrt": (np.log, -0.5), "log": (lambda t: np.log(np.log(t)), -1.0)}


def seed_slopes(steps: np.ndarray, gap: np.ndarray) -> dict[str, float]:
    """Slopes of one seed's gap against each model's abscissa over the last decade.

    Parameters
    ----------
    steps : ndarray (S,) int
    gap : ndarray (S,) float
        ``1 - ratio`` at those steps.

    Returns
    -------
    dict
        ``{"sqrt": s, "log": r}``; NaN with fewer than 3 usable points.
    """
    steps = np.asarray(steps, dtype=float)
    gap = np.asarray(gap, dtype=float)
    keep = (steps >= steps.max() / 10) & (steps > 2) & np.isfinite(gap) & (gap > 0)
    out = {}
    for name, (fx, _) in RATE_MODELS.items():
        if keep.sum() < 3:
            out[name] = float("nan")
            continue
        x, y = fx(steps[keep]), np.log(gap[keep])
        out[name] = float(np.polyfit(x, y, 1)[0])
    return out


def _interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval of the finite values of ``x`` (NaNs when fewer than 2)."""
    from scipy.stats import t as student

    x = x[np.isfinite(x)]
    if x.size < 2:
        m = float(x.mean()) if x.size else float("nan")
        return m, float("nan"), float("nan")
    m = float(x.mean())
    half = float(student.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return m, m - half, m + half


def fit_rates(df: pd.DataFrame, targets: Mapping[str, str]) -> dict[str, Any]:
    """Headline numbers of the gap decay per run.

    Parameters
    ----------
    df : DataFrame
        Columns ``run``, ``seed``, ``step`` and ``ratio_<norm>``.
    targets : mapping run -> norm
        The norm whose gap is fitted for each run.

    Returns
    -------
    dict
        Per run: ``<run>_rate_norm``, ``<run>_gap`` (mean final gap), and for each model
        ``m`` in ``sqrt``, ``log``: ``<run>_slope_<m>`` (mean), ``<run>_slope_<m>_lo``,
        ``<run>_slope_<m>_hi`` (95% interval), ``<run>_consistent_<m>`` (bool or None).
    """
    out: dict[str, Any] = {}
    for run, norm in targets.items():
        g = df[df["run"] == run]
        if g.empty:
            continue
        col = f"ratio_{norm}"
        slopes: dict[str, list[float]] = {m: [] for m in RATE_MODELS}
        for _, h in g.groupby("seed"):
            h = h.sort_values("step")
            s = seed_slopes(h["step"].to_numpy(), 1.0 - h[col].to_numpy())
            for m in RATE_MODELS:
                slopes[m].append(s[m])
        last = g[g["step"] == g["step"].max()]
        out[f"{run}_rate_norm"] = norm
        out[f"{run}_gap"] = float((1.0 - last[col]).mean())
        for m, (_, want) in RATE_MODELS.items():
            mean, lo, hi = _interval(np.asarray(slopes[m]))
            out[f"{run}_slope_{m}"] = mean
            out[f"{run}_slope_{m}_lo"] = lo
            out[f"{run}_slope_{m}_hi"] = hi
            out[f"{run}_consistent_{m}"] = (None if not np.isfinite(lo) else
                                            bool(lo <= want <= hi))
    return out


def rate_text(h: Mapping[str, Any], run: str) -> str:
    """One line: the fitted slopes of ``run`` with their intervals."""
    def part(m: str) -> str:
        return (f"{num(h.get(f'{run}_slope_{m}'))} [{num(h.get(f'{run}_slope_{m}_lo'))}, "
                f"{num(h.get(f'{run}_slope_{m}_hi'))}]")

    return (f"{run_label(run)} (gap to {norm_label(str(h.get(f'{run}_rate_norm')))}): vs log t "
            f"{part('sqrt')}, vs log log t {part('log')}")


def plot_rates(ax: Any, df: pd.DataFrame, targets: Mapping[str, str], h: Mapping[str, Any],
               styles: Mapping[str, int] | None = None) -> None:
    """Mean gap against steps (log-log) per run, 10-90% band, with 1/sqrt(t) and 1/log t
    guides through the first run's last point.

    ``styles`` maps each run to its :func:`~attnsvm.experiments._common.series_style` index,
    the same as in the figure's legend (default: the runs' order); the panel's own legend
    names the guides only (the fitted slopes are in :func:`plot_slopes`)."""
    anchor = None
    for c, (run, norm) in enumerate(targets.items()):
        g = df[(df["run"] == run) & (df["step"] > 0)]
        if g.empty:
            continue
        gap = (1.0 - g[f"ratio_{norm}"]).clip(lower=1e-6)
        grp = gap.groupby(g["step"])
        m, lo, hi = grp.mean(), grp.quantile(0.1), grp.quantile(0.9)
        st = series_style(c if styles is None else styles[run], len(m))
        ax.loglog(m.index, m.to_numpy(), **{k: v for k, v in st.items() if k != "markevery"})
        ax.fill_between(m.index, lo.to_numpy(), hi.to_numpy(), color=st["color"], alpha=0.1,
                        lw=0)
        if anchor is None:
            anchor = (float(m.index[-1]), float(m.iloc[-1]))
    guides = []
    if anchor is not None:
        t1, g1 = anchor
        t = np.geomspace(max(3.0, t1 / 10), t1, 20)
        guides += ax.loglog(t, g1 * np.sqrt(t1 / t), color="k", lw=0.8, ls=":",
                            label="1/sqrt(t)")
        guides += ax.loglog(t, g1 * np.log(t1) / np.log(t), color="0.4", lw=0.8, ls="--",
                            label="1/log t")
    ax.set(xlabel="step", ylabel="1 - margin ratio (mean)", title="margin gap decay")
    if guides:
        legend_outside(ax, "below", handles=guides, ncol=2)


def slope_label(run: str, norm: str) -> str:
    """A run and the norm of its fitted gap, for the slope panels' rows.

    >>> slope_label("sign_W", "linf")
    'sign descent on W → max-norm'
    """
    return f"{run_label(run)} → {norm_label(norm)}"


def plot_slopes(ax: Any, targets: Mapping[str, str], h: Mapping[str, Any], model: str,
                ticklabels: bool = True) -> None:
    """Fitted slope per run with its 95% interval across seeds, beside the model's slope;
    ``ticklabels=False`` leaves the rows unnamed (a panel beside one that names them)."""
    runs = [r for r in targets if f"{r}_slope_{model}" in h]
    y = np.arange(len(runs))
    mean = np.array([h[f"{r}_slope_{model}"] for r in runs], dtype=float)
    lo = np.array([h[f"{r}_slope_{model}_lo"] for r in runs], dtype=float)
    hi = np.array([h[f"{r}_slope_{model}_hi"] for r in runs], dtype=float)
    err = np.vstack([np.nan_to_num(mean - lo), np.nan_to_num(hi - mean)])
    ax.errorbar(mean, y, xerr=err, fmt="o", color="C0", ms=4, capsize=2, label="fit, 95%")
    want = RATE_MODELS[model][1]
    ax.axvline(want, color="k", lw=0.8, ls=":",
               label="1/sqrt(t)" if model == "sqrt" else "1/log t")
    ax.set_yticks(y, [slope_label(r, targets[r]) for r in runs] if ticklabels else [],
                  fontsize=8)
    ax.set_ylim(-0.6, len(runs) - 0.4)
    ax.set(xlabel="slope of log gap vs " + ("log t" if model == "sqrt" else "log log t"),
           ylabel="run → norm of its gap" if ticklabels else "(rows as left)",
           title="fitted rate, last decade")

    legend_outside(ax, "below", ncol=2)
