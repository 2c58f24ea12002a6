"""One sequence per step: which Att-SVM do Signum and Adam find? (new study)

Baek, Song and Yun (arXiv 2510.26303, 2025) show for linear logistic regression that
incremental Adam (one sample per step) can converge to the l_2 max margin where full-batch
Adam goes to l_inf, while Signum with momentum close to 1 goes to the l_inf max margin for any
batch size.  Here the same question for softmax attention on the paper-style instances
(n=6, T=8, d=10, W-parametrization): Signum (momentum 0.9, and 0.99 with one sequence per
step) and Adam (betas 0.9, 0.999; eps 0 and 1e-8) with the full batch, and with one sequence
per step in cyclic order (incremental) and in seeded random order (reshuffled each epoch),
every step exact after saturation (:mod:`attnsvm.train._batches`).  At log-spaced steps: the
margin ratio in the four geometries for the tokens each run ends selecting, which Att-SVM each
run ends nearest, and the fitted decay of the gap to its target (:mod:`._margin_rates`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...reporting import fmt_number as num
from ...train import train
from ...train.optim import Optimizer
from .._common import legend_outside, make_instances, new_figure, save_figure, series_style
from .._labels import norm_label, run_label
from ..config import FigureConfig
from ..registry import Figure, Verdict
from ..sweep import Cell
from ._margin_rates import fit_rates, plot_rates, plot_slopes, rate_text
from .optimizer_geometry import NORMS, _ratios, claim_parts, claim_why

__all__ = ["MinibatchGeometryConfig", "FIGURE", "CLAIMS"]

#: run label -> the geometry it is claimed to reach (Baek, Song, Yun: Signum, any batch size);
#: momentum 0.99 is measured: after saturation the gradients shrink geometrically, faster than
#: 0.99 per step, so its momentum keeps pointing where the gradients pointed long ago
CLAIMS = {"signum_full": "linf", "signum_seq": "linf", "signum_seq_rand": "linf"}

TAKEAWAY = (
    "Signum (momentum 0.9) heads for the max-norm Att-SVM with the full batch and with one "
    "sequence per step (slowest in random order); momentum 0.99 lags far behind; Adam ends "
    "nearest the Frobenius Att-SVM, far from it, whatever the batching.")


@dataclass(frozen=True)
class MinibatchGeometryConfig(FigureConfig):
    """Runs as (label, optimizer, batch_size (0: all), order, lr, adam_eps, beta1, beta2)."""

    n: int = 6
    T: int = 8
    d: int = 10
    checkpoints: tuple[int, ...] = (10, 30, 100, 300, 600, 1000, 1500, 2000, 3000)
    runs: tuple[tuple[str, str, int, str, float, float, float, float], ...] = (
        ("signum_full", "signum", 0, "cyclic", 0.01, 0.0, 0.9, 0.999),
        ("signum_seq", "signum", 1, "cyclic", 0.01, 0.0, 0.9, 0.999),
        ("signum_seq_rand", "signum", 1, "random", 0.01, 0.0, 0.9, 0.999),
        ("signum99_seq", "signum", 1, "cyclic", 0.01, 0.0, 0.99, 0.999),
        ("adam_full", "adam", 0, "cyclic", 0.01, 0.0, 0.9, 0.999),
        ("adam_seq", "adam", 1, "cyclic", 0.01, 0.0, 0.9, 0.999),
        ("adam_seq_eps", "adam", 1, "cyclic", 0.01, 1e-8, 0.9, 0.999),
        ("adam_seq_rand", "adam", 1, "random", 0.01, 0.0, 0.9, 0.999),
    )
    #: 24 seeds at full size (8 runs of 3000 steps each)
    seeds: int = 24
    chunk: int = 12
    #: share of seeds that must end nearest the claimed geometry, and its least mean ratio
    share: float = 0.8
    ratio: float = 0.9

    QUICK: ClassVar[dict[str, Any]] = {"checkpoints": (10, 30, 60, 120), "seeds": 2,
                                       "chunk": 2}


def cells(cfg: MinibatchGeometryConfig) -> list[Cell]:
    return [Cell({}, ch) for ch in cfg.seed_chunks()]


def _optimizer(name: str, lr: float, eps: float, betas: tuple[float, float]) -> Any:
    """An optimizer whose state survives the trainer's ``init`` of a continued run."""
    class Persistent(Optimizer):
        def init(self, blocks: Any) -> None:
            if not self._state:
                super().init(blocks)

    return Persistent(name, lr, adam_eps=eps, betas=betas)


def run_cell(cfg: MinibatchGeometryConfig, cell: Cell) -> pd.DataFrame:
    seeds = list(cell.seeds)
    insts = make_instances(cfg.n, cfg.T, cfg.d, seeds)
    cache: dict[Any, Any] = {}
    rows = []
    for label, opt, size, order, lr, eps, b1, b2 in cfg.runs:
        optimizer = _optimizer(opt, lr, eps, (b1, b2))
        runs: dict[int, Any] = {}
        start: dict[str, Any] = {}
        done = 0
        batch: dict[str, Any] = {"batch_size": size or None, "batch_order": order}
        for s in cfg.checkpoints:
            res = train(insts, param="W", optimizer=optimizer, steps=int(s) - done,
                        seed=seeds, backend="torch", batch_start=done, **batch, **start)
            runs[s], done = res, int(s)
            start = {"init": res.W}
        final = runs[cfg.checkpoints[-1]]
        for b, inst in enumerate(insts):
            alpha = final.selected[b]
            for s, res in runs.items():
                r = _ratios(inst, res.W[b], alpha, cache)
                best = max(NORMS, key=lambda k: -np.inf if np.isnan(r[k]) else r[k])
                rows.append({"run": label, "optimizer": opt, "batch_size": size or cfg.n,
                             "order": order, "lr": lr, "adam_eps": eps, "beta1": b1,
                             "seed": seeds[b], "step": int(s),
                             **{f"ratio_{k}": v for k, v in r.items()}, "nearest": best,
                             "max_prob": float(np.mean(res.max_prob[b]))})
    return pd.DataFrame(rows)


def rate_targets(df: pd.DataFrame) -> dict[str, str]:
    """Claimed norm, else the one the most seeds end nearest."""
    last = df[df["step"] == df["step"].max()]
    return {str(run): CLAIMS.get(str(run)) or str(g["nearest"].mode().iloc[0])
            for run, g in last.groupby("run", sort=False)}


def summarize(cfg: MinibatchGeometryConfig, df: pd.DataFrame) -> dict[str, Any]:
    last = df[df["step"] == df["step"].max()]
    out: dict[str, Any] = {"steps": int(df["step"].max()), "seeds": int(last["seed"].nunique())}
    for run, g in last.groupby("run", sort=False):
        for k in NORMS:
            out[f"{run}_ratio_{k}"] = float(g[f"ratio_{k}"].mean())
        counts = g["nearest"].value_counts(normalize=True)
        for k in NORMS:
            out[f"{run}_nearest_{k}"] = float(counts.get(k, 0.0))
        out[f"{run}_nearest"] = str(counts.idxmax())
    out.update(fit_rates(df, rate_targets(df)))
    return out


def plot(cfg: MinibatchGeometryConfig, df: pd.DataFrame, path: Path | None = None) -> Any:
    fig, ax = new_figure(4, 2, width=3.4, height=2.8)
    labels = [r[0] for r in cfg.runs]
    handles = []
    for j, k in enumerate(NORMS):
        a = ax[0, j]
        for c, run in enumerate(labels):
            g = df[df["run"] == run].groupby("step")[f"ratio_{k}"]
            m, lo, hi = g.mean(), g.quantile(0.1), g.quantile(0.9)
            st = series_style(c, len(m))
            (line,) = a.semilogx(m.index, m.to_numpy(), label=run_label(run),
                                 **{kk: v for kk, v in st.items() if kk != "markevery"})
            handles += [line] if j == 0 else []
            a.fill_between(m.index, lo.to_numpy(), hi.to_numpy(), color=st["color"],
                           alpha=0.12, lw=0)
        a.axhline(1.0, color="k", lw=0.6, ls=":")
        a.set(xlabel="step", ylabel=f"margin ratio ({norm_label(k)})",
              title=f"W: {norm_label(k)}", ylim=(0.0, 1.05))
    tg = rate_targets(df)
    h = fit_rates(df, tg)
    # bottom row: the slope panels first, so that their row names sit in the left margin
    plot_slopes(ax[1, 0], tg, h, "sqrt")
    plot_slopes(ax[1, 1], tg, h, "log", ticklabels=False)
    plot_rates(ax[1, 2], df, tg, h, styles={r: labels.index(r) for r in tg})
    _nearest_bars(ax[1, 3], df, labels)
    return save_figure(fig, path, f"One sequence per step vs the full batch: n={cfg.n}, "
                       f"T={cfg.T}, d={cfg.d}, {df['seed'].nunique()} seeds (mean, 10-90% "
                       "band); bottom: fitted slopes, gap decay, nearest Att-SVM",
                       caption=TAKEAWAY, legend=handles, legend_cols=4)


def _nearest_bars(ax: Any, df: pd.DataFrame, labels: list[str]) -> None:
    """Share of seeds each run ends nearest each geometry (stacked bars), one row per run in
    the order of the slope panels (the first run at the bottom)."""
    last = df[df["step"] == df["step"].max()]
    left = np.zeros(len(labels))
    for c, k in enumerate(NORMS):
        share = np.array([float((last[last["run"] == r]["nearest"] == k).mean())
                          for r in labels])
        ax.barh(np.arange(len(labels)), share, left=left, color=f"C{c}", label=norm_label(k))
        left += share
    ax.set_yticks(np.arange(len(labels)), [])  # rows as in the slope panels
    ax.set(xlabel="share of seeds", ylabel="(rows as left)", title="ends nearest",
           xlim=(0, 1))
    legend_outside(ax, "below", ncol=2)


def notes(cfg: MinibatchGeometryConfig, h: dict[str, Any]) -> dict[str, str]:
    parts = "; ".join(
        f"{run_label(run)}: " + ", ".join(f"{norm_label(k)} {num(h.get(f'{run}_ratio_{k}'))}"
                                          for k in NORMS)
        + f", nearest {norm_label(str(h.get(f'{run}_nearest')))}"
        for run in (r[0] for r in cfg.runs))
    rates = "; ".join(rate_text(h, r[0]) for r in cfg.runs if f"{r[0]}_slope_sqrt" in h)
    cmp = ("Baek, Song and Yun (2025) prove for linear logistic regression that Signum with "
           "momentum near 1 reaches the l_inf max margin for any batch size, and that "
           "incremental Adam can reach the l_2 one; for attention no result is known. Mean "
           f"final margin ratios after {h.get('steps')} steps: " + parts + ". Fitted slopes "
           "of log(1 - ratio), last decade, mean [95% interval]: " + rates + ".")
    diff = ("New study. W-parametrization from W = 0.01 N(0, 1), logistic loss, exact score "
            "directions; a step of a one-sequence run uses one sequence (so 6 steps are one "
            "epoch); Signum's momentum 0.9 (or 0.99 where named), Adam's betas (0.9, 0.999); "
            "ratios for the tokens each run ends selecting.")
    return {"comparison": cmp, "differences": diff}


def verdict(cfg: MinibatchGeometryConfig, h: dict[str, Any]) -> Verdict:
    ok, parts = claim_parts(CLAIMS, h, cfg.share, cfg.ratio)
    for run in (r[0] for r in cfg.runs if r[0] not in CLAIMS):
        near = h.get(f"{run}_nearest")
        share = h.get(f"{run}_nearest_{near}") if near else None
        parts.append(f"{run_label(run)} (measured): nearest {norm_label(str(near))} in "
                     f"{'n/a' if share is None else f'{share:.0%}'} of seeds")
    return Verdict("; ".join(parts), ok,
                   f"Signum with momentum 0.9 (full batch, one sequence per step in cyclic and "
                   f"in random order) "
                   f"ends nearest the max-norm Att-SVM for >= {cfg.share:.0%} of the seeds with "
                   f"a mean final max-norm margin ratio >= {cfg.ratio:g}; momentum 0.99 and Adam "
                   "are measured", claim_why(CLAIMS, h, cfg.share, cfg.ratio))


FIGURE = Figure(
    name="minibatch-geometry", title="One sequence per step: Signum and Adam",
    source="new study (Baek, Song, Yun 2025 for linear models)",
    claim=("Signum (momentum 0.9) converges to the max-norm Att-SVM with the full batch and "
           "with one sequence per step (cyclic or random order); Signum with momentum 0.99 "
           "and Adam with one sequence per step are measured."),
    config=MinibatchGeometryConfig, cells=cells, run_cell=run_cell, summarize=summarize,
    plot=plot, notes=notes, takeaway=TAKEAWAY, verdict=verdict)
