"""GD paths in two dimensions (TF-SVM 2-D path figure).

With d = 2 the vector ``W z_i`` that scores sequence i's tokens lives in the plane of the
tokens: GD moves it to infinity along ``W^mm z_i`` (``W_*^mm z_i`` for (K, Q)), the direction
that separates the selected token from the others with the largest margin.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...instance import random_instance
from ...reporting import fmt_number as num
from ...reporting import plural
from .._common import (
    ALIGNED,
    aligned,
    corr,
    log_steps,
    make_instances,
    new_figure,
    save_figure,
    targets,
)
from .._training import trajectory
from ..config import FigureConfig
from ..registry import Figure, Verdict
from ..sweep import Cell

__all__ = ["Paths2DConfig", "FIGURE", "setting_holds", "diagnose"]

#: What the reader should see (figure caption and report).
TAKEAWAY = ("Top row: runs in the theorem's setting (GD ends at the optimal tokens, feasible "
            "SVM, tokens settled), whose solid paths W(k) z_i end on their dashed SVM "
            "directions; bottom row: each panel's worst run, labelled with why it fails.")


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
    for (T, param), g in f.groupby(["T", "param"]):  # runs behind each mean, and their sd
        c = g["corr"].dropna()
        out[f"corr_T{T}_{param}_runs"] = int(len(c))
        out[f"corr_T{T}_{param}_sd"] = float(c.std(ddof=1)) if len(c) > 1 else float("nan")
    return out


def _final_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["step"] == df["step"].max()]


def _settled_step(g: pd.DataFrame) -> int:
    """First recorded step from which every sequence's selected token stays as at the end."""
    wide = g.pivot_table(index="step", columns="seq", values="selected").sort_index()
    same = (wide == wide.iloc[-1]).all(axis=1).to_numpy()
    k = len(same)
    while k > 0 and same[k - 1]:
        k -= 1
    return int(wide.index[min(k, len(same) - 1)])


def _matrix(inst: Any, g: pd.DataFrame, x: str, y: str) -> np.ndarray:
    """Recover the 2 x 2 matrix W from the vectors W z_i of the n = 2 sequences."""
    rows = g.sort_values("seq")[[x, y]].to_numpy()  # (n, 2): W z_i
    return np.linalg.lstsq(inst.queries, rows, rcond=None)[0].T


def setting_holds(cfg: Paths2DConfig, df: pd.DataFrame, T: int, param: str, seed: int) -> bool:
    """The theorem's setting for one run: GD ends at the optimal tokens, their Att-SVM is
    solved (feasible), and the selection settled in the first half of the run."""
    g = df[(df["T"] == T) & (df["param"] == param) & (df["seed"] == seed)]
    f = _final_rows(g)
    return bool((f["selected"] == f["opt"]).all() and (f["status"] == "optimal").all()
                and _settled_step(g) <= cfg.steps // 2)


def diagnose(cfg: Paths2DConfig, df: pd.DataFrame, T: int, param: str, seed: int) -> str:
    """Why a run ends far from its SVM direction, in words (from the recorded iterates)."""
    g = df[(df["T"] == T) & (df["param"] == param) & (df["seed"] == seed)]
    f = _final_rows(g).sort_values("seq")
    why = []
    if not (f["selected"] == f["opt"]).all():
        why.append(f"GD ends at tokens {tuple(int(t) for t in f['selected'])}, not the "
                   f"optimal {tuple(int(t) for t in f['opt'])}")
    settled = _settled_step(g)
    if settled > cfg.steps // 2:
        why.append(f"its tokens switched until step {settled} of {cfg.steps}")
    if param == "KQ":
        inst = random_instance(cfg.n, T, cfg.d, seed=seed)
        s_gd = np.linalg.svd(_matrix(inst, f, "x", "y"), compute_uv=False)
        s_svm = np.linalg.svd(_matrix(inst, f, "svm_x", "svm_y"), compute_uv=False)
        if s_gd[1] < 1e-2 * s_gd[0] and s_svm[1] >= 1e-2 * s_svm[0]:
            why.append("K Q^T tends to rank 1, W_*^mm has rank 2: a stationary point of "
                       "the factorized (K,Q) problem, not the convex SVM")
    if not why:
        why.append(f"still converging after {cfg.steps} steps")
    return "; ".join(why)


def _panel(a: Any, cfg: Paths2DConfig, df: pd.DataFrame, T: int, param: str, seed: int
           ) -> None:
    g = df[(df["T"] == T) & (df["param"] == param) & (df["seed"] == seed)]
    inst = random_instance(cfg.n, T, cfg.d, seed=seed)
    opt = inst.optimal_tokens()
    for i in range(cfg.n):
        c = f"C{i}"
        gi = g[g["seq"] == i].sort_values("step")
        scale = float(np.hypot(gi["x"], gi["y"]).max()) or 1.0
        a.plot(gi["x"] / scale, gi["y"] / scale, "-", color=c, lw=2.4 - 1.0 * i)
        sv = gi[["svm_x", "svm_y"]].iloc[-1].to_numpy()
        sv = sv / (np.linalg.norm(sv) or 1.0)
        a.plot([0, sv[0]], [0, sv[1]], ("--", ":")[i % 2], color=c, lw=2.0 - 0.8 * i)
        X = inst.X[i]
        a.scatter(X[:, 0], X[:, 1], s=18, color=c, marker="o", alpha=.6)
        a.scatter(X[opt[i], 0], X[opt[i], 1], s=90, color=c, marker="*")
    a.set_aspect("equal")
    a.set_xlim(-1.15, 1.15)
    a.set_ylim(-1.15, 1.15)
    a.set_xlabel("coordinate 1 (scaled to the unit disc)", fontsize=8)
    a.set_ylabel("coordinate 2", fontsize=8)


def plot(cfg: Paths2DConfig, df: pd.DataFrame, path: Path | None = None) -> Any:
    panels = [(T, p) for T in cfg.Ts for p in ("W", "KQ")]
    fig, ax = new_figure(len(panels), 2, width=3.2, height=4.6)
    f = _final_rows(df[df["seq"] == 0])
    for j, (T, param) in enumerate(panels):
        runs = f[(f["T"] == T) & (f["param"] == param)].sort_values("seed")
        good = runs[[setting_holds(cfg, df, T, param, int(s)) for s in runs["seed"]]]
        top = ax[0, j]
        if len(good):
            # The median correlation among the runs where the setting holds: typical, not best.
            row = good.iloc[int(np.argsort(good["corr"].to_numpy())[(len(good) - 1) // 2])]
            _panel(top, cfg, df, T, param, int(row["seed"]))
            top.set_title(f"T={T}, {param}: setting holds (seed {int(row['seed'])}; "
                          f"{len(good)} of {len(runs)} runs)\ncorr = {num(row['corr'])}",
                          fontsize=8.5)
        else:
            top.text(0.5, 0.5, "no run in the theorem's setting", ha="center",
                     transform=top.transAxes)
            top.set(xlabel="coordinate 1", ylabel="coordinate 2")
        worst = runs.iloc[int(np.argmin(runs["corr"].to_numpy()))]
        seed = int(worst["seed"])
        bottom = ax[1, j]
        _panel(bottom, cfg, df, T, param, seed)
        label = "FAILURE CASE" if worst["corr"] < 0.95 else "lowest correlation"
        why = diagnose(cfg, df, T, param, seed) if worst["corr"] < 0.95 else "aligned"
        bottom.set_title(f"{label}: seed {seed}, corr = {num(worst['corr'])}\n"
                         + "\n".join(textwrap.wrap(why, 46)), fontsize=7.5,
                         color="C3" if worst["corr"] < 0.95 else "black")
    from matplotlib.lines import Line2D

    keys = []  # one legend for all panels, readable at page width
    for i in range(cfg.n):
        keys.append(Line2D([], [], color=f"C{i}", lw=2.4 - 1.0 * i,
                           label=rf"GD path $W(k)\,z_{i + 1}$ (or $KQ^T(k)\,z_{i + 1}$)"))
        keys.append(Line2D([], [], color=f"C{i}", ls=("--", ":")[i % 2], lw=2.0 - 0.8 * i,
                           label=rf"SVM direction $W^{{mm}} z_{i + 1}$ "
                                 rf"(or $W_*^{{mm}} z_{i + 1}$)"))
    keys += [Line2D([], [], ls="none", marker="o", color="gray", alpha=.6, label="tokens"),
             Line2D([], [], ls="none", marker="*", ms=12, color="gray", label="optimal token")]
    return save_figure(fig, path, "GD paths (scaled) against the Att-SVM direction. Top: the "
                                  "theorem's setting; bottom: the worst run", caption=TAKEAWAY,
                       legend=keys, legend_cols=3)


def _setting(key: str) -> str:
    """``corr_T3_KQ_mean`` -> ``T=3 (K,Q)``."""
    T, param = key.removeprefix("corr_").removesuffix("_mean").split("_")
    return f"{T[0]}={T[1:]} {'(K,Q)' if param == 'KQ' else param}"


def verdict(cfg: Paths2DConfig, h: dict[str, Any]) -> Verdict:
    means = {k: v for k, v in h.items() if k.endswith("_mean")}
    parts = ", ".join(f"{_setting(k)} {num(v)} (sd {num(h.get(k.replace('_mean', '_sd')))}, "
                      f"min {num(h.get(k.replace('_mean', '_min')))})"
                      for k, v in sorted(means.items()))
    ok = aligned(*means.values())
    why = []
    for k, v in sorted(means.items()):
        if aligned(v):
            continue
        runs, worst = h.get(k.replace("_mean", "_runs")), h.get(k.replace("_mean", "_min"))
        rest = ((v * runs - worst) / (runs - 1) if runs and runs > 1 and worst is not None
                else None)
        why.append(f"{_setting(k)}: the mean of {plural(int(runs or 0), 'run')} is {num(v)}, "
                   f"pulled down by its worst run (corr {num(worst)}; the figure's bottom row "
                   f"shows it and why it fails); the other runs average {num(rest)}")
    return Verdict(f"mean final corr over {plural(cfg.seeds, 'seed')}: {parts}", ok,
                   f"every (T, parametrization) mean correlation >= {ALIGNED}",
                   "" if ok else "; ".join(why) + ".")


def notes(cfg: Paths2DConfig, h: dict[str, Any]) -> dict[str, str]:
    vals = ", ".join(f"{_setting(k)} {num(v)}" for k, v in h.items() if k.endswith("_mean"))
    cmp = (f"The published figure shows the GD paths of W(k) z_i bending towards the W^mm z_i "
           f"direction. Here, mean final correlations with the SVM of the selected tokens over "
           f"{cfg.seeds} instances: {vals}. The top row plots, per panel, the run with the median "
           f"correlation among those in the theorem's setting (GD ends at the optimal tokens, "
           f"the SVM is feasible, the tokens settled in the first half of the run); the "
           f"bottom row the run with the lowest correlation, with the reason it fails "
           f"(late token switches, non-optimal tokens, or for (K,Q) a rank-1 limit, which "
           f"is a stationary point of the factorized problem rather than the nuclear-norm "
           f"SVM).")
    diff = ("The official code plots one hand-picked instance; here every instance of the seed "
            "range is run and summarised, the plot shows a typical run in the theorem's setting "
            "and the worst run. Paths are scaled to the "
            "unit disc to show directions.")
    return {"comparison": cmp, "differences": diff}


FIGURE = Figure(
    name="paths-2d", title="GD paths in 2-D vs the Att-SVM direction",
    source="TF-SVM (Tarzanagh et al. 2023), 2-D path figure of the official code",
    claim=("In d = 2 the score vectors W(k) z_i of GD (and K(k)Q(k)^T z_i) move to infinity along "
           "the max-margin directions W^mm z_i (W_*^mm z_i) of the selected tokens."),
    config=Paths2DConfig, cells=cells, run_cell=run_cell, summarize=summarize, plot=plot,
    notes=notes, takeaway=TAKEAWAY, verdict=verdict)
