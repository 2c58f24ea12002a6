"""Heads over training: a small decoder trained on the induction task, each checkpoint probed.

For every seed, ``attnsvm pretrain`` trains a LLaMA-style decoder (rotary positions) on the
induction task and ``attnsvm track`` probes its checkpoints: per head the correlation of its
key-query form with the Frobenius Att-SVM of its own selections, against the same SVM's
correlation with the layer's other heads, beside the model's recall accuracy (the task solved).
The study asks whether the heads' alignment with their Att-SVMs moves with the recall jump.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...reporting import fmt_number as num
from .._common import add_legend, new_figure, save_figure, series_style
from ..config import FigureConfig
from ..registry import Figure, Verdict
from ..sweep import Cell

__all__ = ["HeadsOverTrainingConfig", "FIGURE"]

TAKEAWAY = ("Each line is one head's corr(W_head, W^mm of its own selections) minus the same "
            "SVM's mean correlation with the layer's other heads; grey: the model's recall "
            "accuracy.")


@dataclass(frozen=True)
class HeadsOverTrainingConfig(FigureConfig):
    """Settings: 2 layers, 2 heads, d_model 32, rotary, AdamW, induction (segment 8, noise 16)."""

    layers: int = 2
    heads: int = 2
    d_model: int = 32
    segment: int = 8
    noise: int = 16
    vocab: int = 32
    steps: int = 1500
    checkpoints: int = 8
    optimizer: str = "adamw"
    seeds: int = 2
    chunk: int = 1

    QUICK: ClassVar[dict[str, Any]] = {"d_model": 16, "segment": 4, "noise": 4, "vocab": 12,
                                       "steps": 60, "checkpoints": 3, "seeds": 1}


def cells(cfg: HeadsOverTrainingConfig) -> list[Cell]:
    return [Cell({}, ch) for ch in cfg.seed_chunks()]


def run_cell(cfg: HeadsOverTrainingConfig, cell: Cell) -> pd.DataFrame:
    from ...lm import PretrainConfig, TrackOptions, pretrain, track

    rows = []
    for seed in cell.seeds:
        pc = PretrainConfig(task="induction", layers=cfg.layers, heads=cfg.heads,
                            d_model=cfg.d_model, optimizer=cfg.optimizer, steps=cfg.steps,
                            checkpoints=cfg.checkpoints, seed=int(seed), vocab=cfg.vocab,
                            segment=cfg.segment, noise=cfg.noise)
        with tempfile.TemporaryDirectory(prefix="attnsvm-hot-") as tmp:
            pretrain(pc, Path(tmp) / "run")
            s = track([Path(tmp) / "run"], TrackOptions(nuclear=False), out=None).summary
        for k, c in enumerate(s["checkpoints"]):
            for r in c["heads"]:
                rows.append({"seed": int(seed), "step": int(c["step"]), "layer": r["layer"],
                             "head": r["head"], "corr_fro": r.get("corr_fro"),
                             "corr_control": r.get("corr_control"),
                             "task_accuracy": r.get("task_accuracy"),
                             "recall_accuracy": s["recall_accuracy"][k]})
    return pd.DataFrame(rows)


def _gap(df: pd.DataFrame) -> pd.Series:
    return df["corr_fro"].astype(float) - df["corr_control"].astype(float)


def summarize(cfg: HeadsOverTrainingConfig, df: pd.DataFrame) -> dict[str, Any]:
    last = df[df["step"] == df["step"].max()]
    top = last[last["layer"] == last["layer"].max()]
    out: dict[str, Any] = {
        "recall_final_mean": float(last.groupby("seed")["recall_accuracy"].first().mean()),
        "gap_top_layer_final_mean": float(np.nanmean(_gap(top))) if len(top) else None,
        "gap_top_layer_first_mean": None,
    }
    first = df[(df["step"] == 0) & (df["layer"] == df["layer"].max())]
    if len(first):
        out["gap_top_layer_first_mean"] = float(np.nanmean(_gap(first)))
    return out


def plot(cfg: HeadsOverTrainingConfig, df: pd.DataFrame, path: Path | None = None) -> Any:
    fig, ax = new_figure(1, 1, 5.0, 3.4)
    a = ax[0, 0]
    d = df.assign(gap=_gap(df), x=df["step"].clip(lower=0))
    for j, ((layer, head), g) in enumerate(d.groupby(["layer", "head"])):
        m = g.groupby("step").mean(numeric_only=True).reset_index()
        a.plot(m["step"], m["gap"], label=f"L{layer} H{head}", **series_style(j, len(m)))
    r = d.groupby("step")["recall_accuracy"].mean().reset_index()
    a.plot(r["step"], r["recall_accuracy"], color="grey", lw=3, alpha=0.5, label="recall acc.")
    a.set_xscale("symlog", linthresh=1.0)
    a.set(xlabel="step", ylabel="corr_fro - control", title="heads vs their Att-SVMs")
    add_legend(a)
    return save_figure(fig, path, f"Heads over training: {cfg.layers} layers x {cfg.heads} "
                       f"heads, d={cfg.d_model}, {cfg.optimizer}", caption=TAKEAWAY)


def notes(cfg: HeadsOverTrainingConfig, h: dict[str, Any]) -> dict[str, str]:
    cmp = (f"No published figure. Final recall accuracy {num(h['recall_final_mean'])}; top layer "
           f"corr_fro - control {num(h['gap_top_layer_first_mean'])} at step 0, "
           f"{num(h['gap_top_layer_final_mean'])} at the end.")
    diff = ("Rotary heads are analysed by the probe's form for this build (position-free on "
            "probes without the lifted rotary SVM); see docs/training-dynamics.md.")
    return {"comparison": cmp, "differences": diff}


def verdict(cfg: HeadsOverTrainingConfig, h: dict[str, Any]) -> Verdict:
    return Verdict(f"top layer corr_fro - control: {num(h['gap_top_layer_first_mean'])} -> "
                   f"{num(h['gap_top_layer_final_mean'])}; recall {num(h['recall_final_mean'])}",
                   None, "a study: measured, no pass/fail criterion")


FIGURE = Figure(
    name="heads-over-training", title="Heads over training (induction task)",
    source="new study",
    claim=("While a small decoder learns the induction task, its heads' key-query forms move "
           "toward (or away from) the Att-SVMs of their own selections."),
    config=HeadsOverTrainingConfig, cells=cells, run_cell=run_cell, summarize=summarize,
    plot=plot, notes=notes, takeaway=TAKEAWAY, verdict=verdict)
