"""GD paths in two dimensions (TF-SVM 2-D path figure).

With d = 2 the vector ``W z_i`` that scores sequence i's tokens lives in the plane of the
tokens: GD moves it to infinity along ``W^mm z_i`` (``W_*^mm z_i`` for (K, Q)), the direction
that separates the selected token from the others with the largest margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._common import corr, log_steps, make_instances, new_figure, save_figure, targets
from .._training import trajectory
from ..config import FigureConfig
from ..registry import Figure
from ..sweep import Cell

__all__ = ["Paths2DConfig", "FIGURE"]


@dataclass(frozen=True)
class Paths2DConfig(FigureConfig):
    """Settings: n=2 sequences of T=3 or T=5 tokens in d=2, W and (K,Q), normalized GD."""

    n: int = 2
    Ts: tuple[int, ...] = (3, 5)
    d: int = 2
    steps: int = 1000
    lr: float = 0.1
    optimizer: str = "ngd"
    seeds: int = 20
    chunk: int = 20

    QUICK: ClassVar[dict[str, Any]] = {"steps": 300, "seeds": 4, "chunk": 4}


def cells(cfg: Paths2DConfig) -> list[Cell]:
    return [Cell({"T": T, "param": p}, ch) for T in cfg.Ts for p in ("W", "KQ")
            for ch in cfg.seed_chunks()]


def run_cell(cfg: Paths2DConfig, cell: Cell) -> pd.DataFrame:
    T, param = cell.params["T"], cell.params["param"]
    insts = make_instances(cfg.n, T, cfg.d, cell.seeds)
    rs = log_steps(cfg.steps, 20)
    tr = trajectory(insts, rs, param=param, optimizer=cfg.optimizer, lr=cfg.lr,
                    seeds=list(cell.seeds))
    assert tr.W is not None
    norm = "fro" if param == "W" else "nuc"
    Wt, sols = targets(insts, tr.final_selected, norm)
    rows = []
    for b, inst in enumerate(insts):
        Z = inst.queries
        opt = inst.optimal_tokens()
        for k, step in enumerate(tr.steps):
            WZ = Z @ tr.W[k, b].T  # rows W z_i
            for i in range(cfg.n):
                rows.append({"T": T, "param": param, "seed": cell.seeds[b], "step": int(step),
                             "seq": i, "x": WZ[i, 0], "y": WZ[i, 1],
                             "corr": corr(tr.W[k, b], Wt[b] if sols[b].W is not None else None),
                             "selected": int(tr.selected[k, b, i]), "opt": int(opt[i]),
                             "svm_x": (Z[i] @ Wt[b].T)[0], "svm_y": (Z[i] @ Wt[b].T)[1],
                             "status": sols[b].status})
    return pd.DataFrame(rows)


def summarize(cfg: Paths2DConfig, df: pd.DataFrame) -> dict[str, Any]:
    f = df[(df["step"] == df["step"].max()) & (df["seq"] == 0)]
    out: dict[str, Any] = {}
    for (T, param), g in f.groupby(["T", "param"]):
        out[f"corr_T{T}_{param}_mean"] = float(g["corr"].mean())
        out[f"corr_T{T}_{param}_min"] = float(g["corr"].min())
    out["infeasible"] = int((f["status"] == "infeasible").sum())
    return out


def plot(cfg: Paths2DConfig, df: pd.DataFrame, path: Path) -> None:
    from ...instance import random_instance

    fig, ax = new_figure(len(cfg.Ts) * 2, 1, width=3.6, height=3.6)
    seed = cfg.seed0
    for j, (T, param) in enumerate((T, p) for T in cfg.Ts for p in ("W", "KQ")):
        a = ax[0, j]
        g = df[(df["T"] == T) & (df["param"] == param) & (df["seed"] == seed)]
        inst = random_instance(cfg.n, T, cfg.d, seed=seed)
        opt = inst.optimal_tokens()
        for i in range(cfg.n):
            c = f"C{i}"
            gi = g[g["seq"] == i].sort_values("step")
            scale = float(np.hypot(gi["x"], gi["y"]).max()) or 1.0
            a.plot(gi["x"] / scale, gi["y"] / scale, "-", color=c, lw=1.5,
                   label=f"W(k) z_{i + 1}")
            sv = gi[["svm_x", "svm_y"]].iloc[-1].to_numpy()
            sv = sv / (np.linalg.norm(sv) or 1.0)
            a.plot([0, sv[0]], [0, sv[1]], "--", color=c, lw=1, label=f"SVM z_{i + 1}")
            X = inst.X[i]
            a.scatter(X[:, 0], X[:, 1], s=18, color=c, marker="o", alpha=.6)
            a.scatter(X[opt[i], 0], X[opt[i], 1], s=80, color=c, marker="*")
        a.set_aspect("equal")
        a.set_xlim(-1.15, 1.15)
        a.set_ylim(-1.15, 1.15)
        a.set_title(f"T={T}, {param} ({'W^mm' if param == 'W' else 'W_*^mm'})", fontsize=9)
        a.legend(fontsize=6, loc="lower left")
    save_figure(fig, path, "GD paths of W(k) z_i (solid, scaled) vs Att-SVM direction (dashed);"
                           " tokens o, optimal *")


def notes(cfg: Paths2DConfig, h: dict[str, Any]) -> dict[str, str]:
    vals = ", ".join(f"{k} = {v:.4f}" for k, v in h.items() if k.endswith("_mean"))
    cmp = (f"The published figure shows the GD paths of W(k) z_i bending towards the W^mm z_i "
           f"direction. Here, mean final correlations with the SVM of the selected tokens over "
           f"{cfg.seeds} instances: {vals}. The plot shows seed {cfg.seed0}.")
    diff = ("The official code plots one hand-picked instance; here every instance of the seed "
            "range is run and summarised, the plot shows the first. Paths are scaled to the "
            "unit disc to show directions.")
    return {"comparison": cmp, "differences": diff}


FIGURE = Figure(
    name="paths-2d", title="GD paths in 2-D vs the Att-SVM direction",
    source="TF-SVM (Tarzanagh et al. 2023), 2-D path figure of the official code",
    claim=("In d = 2 the score vectors W(k) z_i of GD (and K(k)Q(k)^T z_i) move to infinity along "
           "the max-margin directions W^mm z_i (W_*^mm z_i) of the selected tokens."),
    config=Paths2DConfig, cells=cells, run_cell=run_cell, summarize=summarize, plot=plot,
    notes=notes)
