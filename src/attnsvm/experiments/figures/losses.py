"""Correlation loss vs logistic loss on the prompt (MMTS losses figure).

The max-margin bias of prompt attention holds for any decreasing loss; with the (unbounded)
correlation loss ``-u`` and with the logistic loss, GD on p should both align with ``p^mm`` of
the tokens it selects.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...reporting import fmt_number as num
from ...reporting import plural
from ...svm import solve_p_svm
from .._common import (
    ALIGNED,
    add_legend,
    aligned,
    corr,
    log_steps,
    make_instances,
    new_figure,
    save_figure,
    sd,
    series_style,
)
from .._training import trajectory
from ..config import FigureConfig
from ..registry import Figure, Verdict
from ..sweep import Cell

__all__ = ["LossesConfig", "FIGURE"]

#: What the reader should see (figure caption and report).
TAKEAWAY = (
    "Both losses drive 1 - corr(p, p^mm) down alike: the max-margin direction does not "
    "depend on the loss.")


@dataclass(frozen=True)
class LossesConfig(FigureConfig):
    """Settings (MMTS): n=2, T=2, d=3, prompt p, correlation vs logistic loss."""

    n: int = 2
    T: int = 2
    d: int = 3
    steps: int = 2000
    lr: float = 0.1
    optimizer: str = "ngd"
    losses: tuple[str, ...] = ("logistic", "correlation")
    seeds: int = 40
    chunk: int = 40

    QUICK: ClassVar[dict[str, Any]] = {"steps": 400, "seeds": 8, "chunk": 8}


def cells(cfg: LossesConfig) -> list[Cell]:
    return [Cell({"loss": lo}, ch) for lo in cfg.losses for ch in cfg.seed_chunks()]


def run_cell(cfg: LossesConfig, cell: Cell) -> pd.DataFrame:

    insts = make_instances(cfg.n, cfg.T, cfg.d, cell.seeds)
    tr = trajectory(insts, log_steps(cfg.steps, 16), param="p", optimizer=cfg.optimizer,
                    lr=cfg.lr, seeds=list(cell.seeds), loss=cell.params["loss"])
    assert tr.p is not None
    rows = []
    for b, inst in enumerate(insts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ps = solve_p_svm(inst, alpha=tr.selected[-1, b])
        opt = inst.optimal_tokens()
        for k, step in enumerate(tr.steps):
            rows.append({"loss": cell.params["loss"], "seed": cell.seeds[b], "step": int(step),
                         "corr_p": corr(tr.p[k, b], ps.W),
                         "norm": float(np.linalg.norm(tr.p[k, b])),
                         "prob_mean": float(tr.max_prob[k, b].mean()),
                         "global": bool((tr.selected[-1, b] == opt).all()),
                         "feasible": ps.W is not None})
    return pd.DataFrame(rows)


def summarize(cfg: LossesConfig, df: pd.DataFrame) -> dict[str, Any]:
    f = df[df["step"] == df["step"].max()]
    out: dict[str, Any] = {}
    for lo, g in f.groupby("loss"):
        out[f"corr_p_{lo}_mean"] = float(g["corr_p"].mean())
        out[f"corr_p_{lo}_min"] = float(g["corr_p"].min())
        out[f"corr_p_{lo}_sd"] = sd(g["corr_p"])
        out[f"runs_{lo}"] = int(g["corr_p"].notna().sum())
        out[f"global_share_{lo}"] = float(g["global"].mean())
        out[f"infeasible_{lo}"] = int((~g["feasible"]).sum())
    return out


def plot(cfg: LossesConfig, df: pd.DataFrame, path: Path | None = None) -> Any:
    fig, ax = new_figure(2, 1)
    m = df[df["step"] > 0].groupby(["loss", "step"]).mean(numeric_only=True).reset_index()
    for j, (lo, g) in enumerate(m.groupby("loss")):
        st = series_style(j, len(g))
        ax[0, 0].loglog(g["step"], (1 - g["corr_p"]).clip(lower=1e-12), label=lo, **st)
        ax[0, 1].semilogx(g["step"], g["prob_mean"], label=lo, **st)
    ax[0, 0].set(xlabel="step", ylabel="1 - corr(p, p^mm)", title="alignment (mean)")
    ax[0, 1].set(xlabel="step", ylabel="prob. of selected token", title="selection")
    for a in ax[0]:
        add_legend(a)
    return save_figure(fig, path, f"Losses: prompt p, n={cfg.n}, T={cfg.T}, d={cfg.d}",
                       caption=TAKEAWAY)


def notes(cfg: LossesConfig, h: dict[str, Any]) -> dict[str, str]:
    parts = "; ".join(f"{lo}: mean corr {num(h[f'corr_p_{lo}_mean'])} (sd "
                      f"{num(h.get(f'corr_p_{lo}_sd'))}, min {num(h[f'corr_p_{lo}_min'])})"
                      for lo in cfg.losses)
    cmp = ("The published figure shows both losses driving p to the p^mm direction. Here: "
           + parts + ".")
    diff = ("Correlations are with the p-SVM of the tokens selected at the end of each run; "
            f"{cfg.seeds} random instances instead of one.")
    return {"comparison": cmp, "differences": diff}


def verdict(cfg: LossesConfig, h: dict[str, Any]) -> Verdict:
    vals = [h.get(f"corr_p_{lo}_mean") for lo in cfg.losses]
    return Verdict("; ".join(f"{lo}: mean corr(p, p^mm) = {num(v)} (sd "
                             f"{num(h.get(f'corr_p_{lo}_sd'))}, min "
                             f"{num(h.get(f'corr_p_{lo}_min'))}, "
                             f"{plural(int(h.get(f'runs_{lo}', 0)), 'run')})"
                             for lo, v in zip(cfg.losses, vals, strict=True)),
                   aligned(*vals), f"every loss's mean correlation >= {ALIGNED}")


FIGURE = Figure(
    name="losses", title="Correlation loss vs logistic loss on the prompt",
    source="MMTS (Tarzanagh et al., NeurIPS 2023), loss comparison figure",
    claim=("The max-margin implicit bias of prompt attention does not depend on the loss: "
           "with the correlation loss as with the logistic loss, p(k) aligns with p^mm."),
    config=LossesConfig, cells=cells, run_cell=run_cell, summarize=summarize, plot=plot,
    notes=notes, takeaway=TAKEAWAY, verdict=verdict)
