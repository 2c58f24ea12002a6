"""Heads over training: a small decoder trained on the induction task, each checkpoint probed.

For every seed, ``attnsvm pretrain`` trains a LLaMA-style decoder (rotary positions) on the
induction task and ``attnsvm track`` probes its checkpoints: per head the correlation of its
key-query form with the Frobenius Att-SVM of its own selections, against the same SVM's
correlation with the layer's other heads, beside the model's recall accuracy (the task solved).
The study asks whether the heads' alignment with their Att-SVMs moves with the recall jump.

Right panel, the hierarchy test (``track --hierarchy``): per layer, the same gap for the head's
exact Att-SVM (lifted, for these rotary heads) with the layer's input as tokens (the outputs of
the trained layers below) and with the embeddings as tokens (:mod:`attnsvm.lm.hierarchy`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...lm import PretrainConfig, TrackOptions, pretrain, track
from ...reporting import fmt_number as num
from .._common import legend_outside, new_figure, save_figure, series_style
from ..config import FigureConfig
from ..registry import Figure, Verdict
from ..sweep import Cell

__all__ = ["HeadsOverTrainingConfig", "FIGURE"]

TAKEAWAY = ("Left, each head's corr(W_head, W^mm of its own selections) minus the same SVM's "
            "correlation with the layer's other heads (grey: recall accuracy); right, per "
            "layer, that gap for the lifted Att-SVM on the layer input (solid) and on the "
            "embeddings (dotted).")


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
    rows = []
    for seed in cell.seeds:
        pc = PretrainConfig(task="induction", layers=cfg.layers, heads=cfg.heads,
                            d_model=cfg.d_model, optimizer=cfg.optimizer, steps=cfg.steps,
                            checkpoints=cfg.checkpoints, seed=int(seed), vocab=cfg.vocab,
                            segment=cfg.segment, noise=cfg.noise)
        with tempfile.TemporaryDirectory(prefix="attnsvm-hot-") as tmp:
            pretrain(pc, Path(tmp) / "run")
            s = track([Path(tmp) / "run"], TrackOptions(nuclear=False, hierarchy=True),
                      out=None).summary
        for k, c in enumerate(s["checkpoints"]):
            for r in c["heads"]:
                rows.append({"seed": int(seed), "step": int(c["step"]), "layer": r["layer"],
                             "head": r["head"], "corr_fro": r.get("corr_fro"),
                             "corr_control": r.get("corr_control"),
                             "task_accuracy": r.get("task_accuracy"),
                             "recall_accuracy": s["recall_accuracy"][k],
                             "hier_gain_input": r.get("hier_gain_input"),
                             "hier_gain_emb": r.get("hier_gain_emb"),
                             "infeasible_emb": r.get("rope_status_emb" if r.get(
                                 "hier_target") == "rope" else "status_emb") == "infeasible"})
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
    out.update(_hierarchy(df))
    return out


def _mean(x: pd.Series) -> float | None:
    v = pd.to_numeric(x, errors="coerce").dropna()
    return float(v.mean()) if len(v) else None


def _hierarchy(df: pd.DataFrame) -> dict[str, Any]:
    """The hierarchy test at the last checkpoint: layer 0 (where both instances coincide) and
    the layers above (layer input vs embeddings)."""
    last = df[df["step"] == df["step"].max()]
    l0, up = last[last["layer"] == 0], last[last["layer"] > 0]
    d0 = (pd.to_numeric(l0["hier_gain_input"], errors="coerce")
          - pd.to_numeric(l0["hier_gain_emb"], errors="coerce")).abs().dropna()
    return {
        "hier_layer0_max_delta": float(d0.max()) if len(d0) else None,
        "hier_upper_gain_input": _mean(up["hier_gain_input"]),
        "hier_upper_gain_emb": _mean(up["hier_gain_emb"]),
        "hier_upper_infeasible_emb": float(up["infeasible_emb"].astype(float).mean())
        if len(up) else None,
        "hier_upper_heads": int(len(up)),
    }


def plot(cfg: HeadsOverTrainingConfig, df: pd.DataFrame, path: Path | None = None) -> Any:
    fig, ax = new_figure(2, 1, 5.0, 4.0)
    a = ax[0, 0]
    d = df.assign(gap=_gap(df), x=df["step"].clip(lower=0))
    for j, ((layer, head), g) in enumerate(d.groupby(["layer", "head"])):
        m = g.groupby("step").mean(numeric_only=True).reset_index()
        a.plot(m["step"], m["gap"], label=f"layer {layer}, head {head}",
               **series_style(j, len(m)))
    r = d.groupby("step")["recall_accuracy"].mean().reset_index()
    a.plot(r["step"], r["recall_accuracy"], color="grey", lw=3, alpha=0.5, label="recall acc.")
    a.set_xscale("symlog", linthresh=1.0)
    a.set(xlabel="step", ylabel="corr(W_head, W^mm) - control",
          title="heads vs their Att-SVMs")
    legend_outside(a, "below", ncol=2)
    b = ax[0, 1]
    for j, (layer, g) in enumerate(d.groupby("layer")):
        m = g.assign(gi=pd.to_numeric(g["hier_gain_input"], errors="coerce"),
                     ge=pd.to_numeric(g["hier_gain_emb"], errors="coerce")
                     ).groupby("step")[["gi", "ge"]].mean().reset_index()
        st = series_style(2 * j, len(m))  # the layer's colour; solid input, dotted embeddings
        b.plot(m["step"], m["gi"], label=f"layer {layer}: on layer input", **{**st, "ls": "-"})
        b.plot(m["step"], m["ge"], label=f"layer {layer}: on embeddings",
               **{**st, "ls": ":", "lw": 1.6, "mfc": "none", "zorder": 10})
    b.set_xscale("symlog", linthresh=1.0)
    b.set(xlabel="step", ylabel="corr - control (lifted Att-SVM)",
          title="hierarchy: which tokens?")
    legend_outside(b, "below", ncol=2)
    opt = {"adamw": "AdamW", "sgd": "SGD", "muon": "Muon"}.get(cfg.optimizer, cfg.optimizer)
    return save_figure(fig, path, f"Heads over training: {cfg.layers} layers x {cfg.heads} "
                       f"heads, d={cfg.d_model}, {opt}", caption=TAKEAWAY)


def notes(cfg: HeadsOverTrainingConfig, h: dict[str, Any]) -> dict[str, str]:
    cmp = (f"No published figure. Final recall accuracy {num(h['recall_final_mean'])}; top layer "
           f"corr(W_head, W^mm) - control {num(h['gap_top_layer_first_mean'])} at step 0, "
           f"{num(h['gap_top_layer_final_mean'])} at the end.")
    diff = ("Rotary heads are analysed by the probe's form for this build (position-free on "
            "probes without the lifted rotary SVM); see docs/training-dynamics.md.")
    return {"comparison": cmp, "differences": diff}


def verdict(cfg: HeadsOverTrainingConfig, h: dict[str, Any]) -> Verdict:
    """The hierarchy claim: at layer 0 both instances coincide; above it, at the last
    checkpoint, the heads are nearer the Att-SVM on their layer input than on the embeddings
    (a larger corr - control, or no form on the embeddings makes their selections at all)."""
    d0, gi, ge = (h.get("hier_layer0_max_delta"), h.get("hier_upper_gain_input"),
                  h.get("hier_upper_gain_emb"))
    inf = h.get("hier_upper_infeasible_emb")
    layer0 = d0 is None or d0 <= 1e-12
    upper = gi is not None and (ge is None or gi > ge)
    measured = (f"layer 0 |input - embeddings| {num(d0)}; layers above: corr with the lifted "
                f"Att-SVM - control "
                f"{num(gi)} on the layer input, {num(ge)} on the embeddings (embedding SVM "
                f"infeasible for {num(inf)} of the heads); recall {num(h['recall_final_mean'])}; "
                f"top layer corr(W_head, W^mm) - control {num(h['gap_top_layer_first_mean'])} -> "
                f"{num(h['gap_top_layer_final_mean'])}")
    return Verdict(measured, bool(layer0 and upper),
                   "layer 0: both instances coincide (difference <= 1e-12); layers above, last "
                   "checkpoint: mean corr - control on the layer input exceeds that on the "
                   "embeddings, or no embedding SVM exists")


FIGURE = Figure(
    name="heads-over-training", title="Heads over training (induction task)",
    source="new study",
    claim=("While a small decoder learns the induction task, its heads' key-query forms move "
           "toward (or away from) the Att-SVMs of their own selections; the heads of a layer "
           "above the first are nearer the Att-SVM whose tokens are the trained layers' "
           "outputs than the one on the embeddings (TF-SVM's hierarchy of SVMs)."),
    config=HeadsOverTrainingConfig, cells=cells, run_cell=run_cell, summarize=summarize,
    plot=plot, notes=notes, takeaway=TAKEAWAY, verdict=verdict)
