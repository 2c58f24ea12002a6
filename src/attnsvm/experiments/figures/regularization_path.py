"""Regularization path vs gradient descent (new study).

``W_R = argmin_{||W||_F <= R} L(W)``: theory says ``W_R / R -> W^mm / ||W^mm||`` as R grows
(and, for ``||K||^2 + ||Q||^2 <= 2R``, ``K_R Q_R^T`` tends to the nuclear-norm direction).  The
figure plots the correlation of ``W_R`` with the SVM against R, beside GD's correlation against
its own norm ``||W(k)||``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...reporting import fmt_number as num
from ...reporting import plural
from ...train import regularization_path
from .._common import (
    ALIGNED,
    add_legend,
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

__all__ = ["RegularizationPathConfig", "FIGURE"]

#: What the reader should see (figure caption and report).
TAKEAWAY = (
    "The regularization path (dots) approaches 1 - corr = 0 as its radius grows; normalized GD "
    "(line), drawn against its own norm for comparison, is not part of the claim.")


@dataclass(frozen=True)
class RegularizationPathConfig(FigureConfig):
    """n=4, T=6, d=8; radii log-spaced; projected NGD per radius; GD for comparison."""

    n: int = 4
    T: int = 6
    d: int = 8
    radii: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
    steps_per_radius: int = 400
    gd_steps: int = 2000
    lr: float = 0.1
    seeds: int = 20
    chunk: int = 20

    QUICK: ClassVar[dict[str, Any]] = {"radii": (1.0, 4.0, 16.0, 64.0), "steps_per_radius": 150,
                                       "gd_steps": 400, "seeds": 4, "chunk": 4}


def cells(cfg: RegularizationPathConfig) -> list[Cell]:
    return [Cell({"param": p}, ch) for p in ("W", "KQ") for ch in cfg.seed_chunks()]


def run_cell(cfg: RegularizationPathConfig, cell: Cell) -> pd.DataFrame:
    param = cell.params["param"]
    norm = "fro" if param == "W" else "nuc"
    insts = make_instances(cfg.n, cfg.T, cfg.d, cell.seeds)
    path = regularization_path(insts, cfg.radii, param=param,
                               steps_per_radius=cfg.steps_per_radius, lr=cfg.lr,
                               seed=list(cell.seeds))
    tr = trajectory(insts, log_steps(cfg.gd_steps, 10), param=param, optimizer="ngd",
                    lr=cfg.lr, seeds=list(cell.seeds))
    assert tr.W is not None
    cache: dict[Any, Any] = {}
    Wp, sp = targets(insts, path.selected[-1], norm, cache)
    Wg, sg = targets(insts, tr.final_selected, norm, cache)
    rows = []
    for b in range(len(insts)):
        for r, R in enumerate(path.radii):
            rows.append({"param": param, "method": "path", "seed": cell.seeds[b], "R": float(R),
                         "norm": float(np.linalg.norm(path.W[r, b])),
                         "corr": corr(path.W[r, b], Wp[b] if sp[b].W is not None else None)})
        for k, step in enumerate(tr.steps):
            rows.append({"param": param, "method": "gd", "seed": cell.seeds[b],
                         "R": float(step), "norm": float(np.linalg.norm(tr.W[k, b])),
                         "corr": corr(tr.W[k, b], Wg[b] if sg[b].W is not None else None)})
    return pd.DataFrame(rows)


def summarize(cfg: RegularizationPathConfig, df: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (param, method), g in df.groupby(["param", "method"]):
        last = g[g["R"] == g["R"].max()]
        out[f"{method}_{param}_final_corr_mean"] = float(last["corr"].mean())
        out[f"{method}_{param}_final_corr_sd"] = float(last["corr"].std(ddof=1))
        out[f"{method}_{param}_final_corr_min"] = float(last["corr"].min())
        out[f"{method}_{param}_runs"] = int(last["corr"].notna().sum())
        out[f"{method}_{param}_final_norm_median"] = float(last["norm"].median())
    return out


def plot(cfg: RegularizationPathConfig, df: pd.DataFrame, path: Path | None = None) -> Any:
    fig, ax = new_figure(2, 1, width=4.8)
    for j, param in enumerate(("W", "KQ")):
        a = ax[0, j]
        for i, method in enumerate(("path", "gd")):
            g = df[(df["param"] == param) & (df["method"] == method) & (df["R"] > 0)]
            m = g.groupby("R").median(numeric_only=True).reset_index()
            q = g.groupby("R")[["corr"]]
            lo, hi = 1 - q.quantile(0.75)["corr"].values, 1 - q.quantile(0.25)["corr"].values
            lab = (r"regularization path $W_R$" if method == "path"
                   else r"normalized GD $W(k)$")
            a.loglog(m["norm"], (1 - m["corr"]).clip(lower=1e-16), "-o" if i == 0 else "-",
                     ms=3, color=f"C{i}", label=lab)
            a.fill_between(m["norm"], np.clip(lo, 1e-16, None), np.clip(hi, 1e-16, None),
                           color=f"C{i}", alpha=0.15, lw=0)
        tgt = r"$W^{mm}$" if param == "W" else r"$W_*^{mm}$"
        a.set(xlabel=r"$\|W\|_F$ of $W_R$ or $W(k)$", ylabel=f"1 - corr with {tgt} (median)",
              title=r"$W$" if param == "W" else r"$(K,Q)$: $K Q^T$")
        add_legend(a)
    return save_figure(fig, path, f"Regularization path vs GD: n={cfg.n}, T={cfg.T}, d={cfg.d}",
                       caption=TAKEAWAY)


def notes(cfg: RegularizationPathConfig, h: dict[str, Any]) -> dict[str, str]:
    cmp = (f"No published plot of this in the two papers (the path result is their theorem). "
           f"At the largest radius R = {num(cfg.radii[-1])}: mean corr(W_R, W^mm) = "
           f"{_ms(h, 'path_W')}, (K,Q) path vs W_*^mm = {_ms(h, 'path_KQ')}. For comparison "
           f"(not part of the claim), normalized GD after {cfg.gd_steps} steps: "
           f"{_ms(h, 'gd_W')} (W), {_ms(h, 'gd_KQ')} ((K,Q)); GD on (K,Q) approaches "
           f"W_*^mm slowly, so at this length it need not reach the path's alignment.")
    diff = (f"New study. W_R is computed by projected normalized GD warm-started along the "
            f"radii ({cfg.steps_per_radius} steps per radius), so it is an approximate minimiser;"
            f" targets are the SVMs of the tokens selected at the largest radius / last step.")
    return {"comparison": cmp, "differences": diff}


def _ms(h: dict[str, Any], key: str) -> str:
    sd, lo = (h.get(f"{key}_final_corr_sd"), h.get(f"{key}_final_corr_min"))
    k = h.get(f"{key}_runs")
    mean = num(h.get(f"{key}_final_corr_mean"))
    if sd is None or lo is None or not k:
        return mean
    return f"{mean} (sd {num(sd)}, min {num(lo)}, {plural(int(k), 'run')})"


def verdict(cfg: RegularizationPathConfig, h: dict[str, Any]) -> Verdict:
    w, kq = h.get("path_W_final_corr_mean"), h.get("path_KQ_final_corr_mean")
    return Verdict(f"at R = {num(cfg.radii[-1])}: mean corr(W_R, W^mm) = {_ms(h, 'path_W')}, "
                   f"(K,Q) path vs W_*^mm = {_ms(h, 'path_KQ')}", aligned(w, kq),
                   f"both mean correlations of the path >= {ALIGNED} (GD, shown for "
                   f"comparison, is not tested)")


FIGURE = Figure(
    name="regularization-path", title="Regularization path W_R / R vs W^mm, beside GD",
    source="new study (MMTS / TF-SVM regularization-path theorems)",
    claim=("As R grows the norm-constrained minimiser W_R aligns with W^mm (K_R Q_R^T with "
           "W_*^mm)."),
    config=RegularizationPathConfig, cells=cells, run_cell=run_cell, summarize=summarize,
    plot=plot, notes=notes, takeaway=TAKEAWAY,
    verdict=verdict)
