"""Where does GD end? (new study): global, locally optimal, or other token choices over (n,T,d).

For random instances at each grid point, normalized GD on W runs from a small random start;
its final token choice alpha is classified as the globally optimal tokens, a locally optimal
choice (verified: ``W^mm_alpha`` exists and passes the SVM-neighbour test,
:func:`attnsvm.svm.local_optimality`), or neither.  Feasibility of Att-SVM for the optimal
tokens is recorded on the same instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...reporting import fmt_number as num
from ...reporting import fmt_share as share
from ...svm import local_optimality
from ...train import train
from .._common import add_legend, corr, make_instances, new_figure, save_figure, solve
from ..config import FigureConfig
from ..registry import Figure, Verdict
from ..sweep import Cell

__all__ = ["ConvergenceTypesConfig", "FIGURE"]

#: What the reader should see (figure caption and report).
TAKEAWAY = (
    "Green bars (the globally optimal tokens) dominate, blue shows how often GD ends at another "
    "locally optimal choice, red at anything else; the optimal tokens' Att-SVM becomes "
    "feasible as d grows.")

KINDS = ("global", "local", "other")


@dataclass(frozen=True)
class ConvergenceTypesConfig(FigureConfig):
    """Grid of (n, T, d); ``seeds`` instances per point; normalized GD on W."""

    ns: tuple[int, ...] = (2, 4, 8)
    Ts: tuple[int, ...] = (4, 8)
    ds: tuple[int, ...] = (2, 4, 8, 16)
    steps: int = 2000
    lr: float = 0.1
    seeds: int = 100
    chunk: int = 100

    QUICK: ClassVar[dict[str, Any]] = {"ns": (2, 6), "Ts": (4,), "ds": (2, 8), "steps": 400,
                                       "seeds": 16, "chunk": 16}


def cells(cfg: ConvergenceTypesConfig) -> list[Cell]:
    return [Cell({"n": n, "T": T, "d": d}, ch) for n in cfg.ns for T in cfg.Ts for d in cfg.ds
            for ch in cfg.seed_chunks()]


def run_cell(cfg: ConvergenceTypesConfig, cell: Cell) -> pd.DataFrame:
    # torch (heavy): imported when a figure trains, not when figures are listed

    n, T, d = (cell.params[k] for k in ("n", "T", "d"))
    insts = make_instances(n, T, d, cell.seeds)
    res = train(insts, param="W", optimizer="ngd", lr=cfg.lr, steps=cfg.steps,
                seed=list(cell.seeds))
    assert res.W is not None
    rows = []
    for b, inst in enumerate(insts):
        opt = inst.optimal_tokens()
        a = res.selected[b]
        gsol = solve(inst, opt, "fro")
        sol = gsol if np.array_equal(a, opt) else solve(inst, a, "fro")
        lo = local_optimality(inst, a, solution=sol)
        kind = ("global" if np.array_equal(a, opt) and sol.W is not None
                else "local" if lo.locally_optimal else "other")
        rows.append({"n": n, "T": T, "d": d, "seed": cell.seeds[b], "kind": kind,
                     "selected_is_opt": bool(np.array_equal(a, opt)),
                     "selected_feasible": sol.W is not None,
                     "opt_feasible": gsol.W is not None,
                     "opt_certified_infeasible": bool(gsol.W is None
                                                      and gsol.is_certified_infeasible()),
                     "corr_fro": corr(res.W[b], sol.W),
                     "min_max_prob": float(res.max_prob[b].min())})
    return pd.DataFrame(rows)


def table(cfg: ConvergenceTypesConfig, df: pd.DataFrame) -> pd.DataFrame:
    """Per grid point: shares of each kind, feasibility and mean correlation."""
    out = []
    for (n, T, d), g in df.groupby(["n", "T", "d"], sort=False):
        row: dict[str, Any] = {"n": n, "T": T, "d": d, "runs": len(g)}
        for k in KINDS:
            row[f"share_{k}"] = float((g["kind"] == k).mean())
        row["share_opt_feasible"] = float(g["opt_feasible"].mean())
        row["corr_fro_mean"] = float(g["corr_fro"].mean())
        row["corr_fro_mean_local"] = float(g[g["kind"] == "local"]["corr_fro"].mean())
        out.append(row)
    return pd.DataFrame(out)


def summarize(cfg: ConvergenceTypesConfig, df: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": int(len(df))}
    for k in KINDS:
        out[f"share_{k}"] = float((df["kind"] == k).mean())
    out["share_opt_feasible"] = float(df["opt_feasible"].mean())
    out["infeasible_opt_certified"] = int(df["opt_certified_infeasible"].sum())
    for k in ("global", "local"):
        out[f"corr_fro_mean_{k}"] = float(df[df["kind"] == k]["corr_fro"].mean())
    out["min_max_prob_median"] = float(df["min_max_prob"].median())
    return out


def plot(cfg: ConvergenceTypesConfig, df: pd.DataFrame, path: Path | None = None) -> Any:
    t = table(cfg, df)
    fig, ax = new_figure(len(cfg.Ts) + 1, 1, width=4.3)
    colors = {"global": "C2", "local": "C0", "other": "C3"}
    for j, T in enumerate(cfg.Ts):
        a = ax[0, j]
        g = t[t["T"] == T]
        labels = [f"n{n}\nd{d}" for n, d in zip(g["n"], g["d"], strict=True)]
        bottom = np.zeros(len(g))
        for k in KINDS:
            a.bar(range(len(g)), g[f"share_{k}"], bottom=bottom, color=colors[k], label=k)
            bottom += g[f"share_{k}"].to_numpy()
        a.set_xticks(range(len(g)), labels, fontsize=6)
        a.set(xlabel="n (sequences), d (dimension)", ylabel="share of runs",
              title=f"T={T}: where GD ends")
        add_legend(a)
    a = ax[0, -1]
    for j, n in enumerate(cfg.ns):
        for T, ls in zip(cfg.Ts, ("-", "--", ":", "-."), strict=False):
            g = t[(t["n"] == n) & (t["T"] == T)]
            a.plot(g["d"], g["share_opt_feasible"], ls, marker="o", ms=3, color=f"C{j}",
                   label=f"n={n}, T={T}")
    a.set(xscale="log", xlabel="d", ylabel="share feasible", title="Att-SVM(opt) feasible")
    ds = sorted(set(t["d"]))
    a.set_xticks(ds, [str(d) for d in ds])  # plain labels at the grid's d (no 3x10^0 clutter)
    a.minorticks_off()
    add_legend(a)
    return save_figure(fig, path, f"Convergence types of normalized GD on W ({cfg.steps} steps)",
                       caption=TAKEAWAY)


def notes(cfg: ConvergenceTypesConfig, h: dict[str, Any]) -> dict[str, str]:
    cmp = (f"No published counterpart. Over {h['runs']} runs: {share(h['share_global'])} end "
           f"at the globally optimal tokens, {share(h['share_local'])} at a verified locally "
           f"optimal choice, {share(h['share_other'])} elsewhere (not locally optimal, "
           f"infeasible, or not yet selecting). Mean corr with W^mm_alpha: "
           f"{num(h['corr_fro_mean_global'])} (global), {num(h['corr_fro_mean_local'])} "
           f"(local). Att-SVM for the optimal tokens is feasible in "
           f"{share(h['share_opt_feasible'])} of the instances.")
    diff = ("New study. Local optimality is verified with the SVM-neighbour test on the solved "
            "W^mm_alpha, not assumed from GD's convergence.")
    return {"comparison": cmp, "differences": diff}


def verdict(cfg: ConvergenceTypesConfig, h: dict[str, Any]) -> Verdict:
    return Verdict(f"global {share(h['share_global'])}, locally optimal "
                   f"{share(h['share_local'])}, other {share(h['share_other'])} of "
                   f"{h['runs']} runs", None, "new study: measured shares, no threshold")


FIGURE = Figure(
    name="convergence-types", title="Where GD ends: global, locally optimal, other",
    source="new study (TF-SVM local and global convergence theorems)",
    claim=("GD on W ends at a token choice that is globally or locally optimal (TF-SVM); how "
           "often each happens, and how often Att-SVM is feasible, over a grid of (n, T, d)."),
    config=ConvergenceTypesConfig, cells=cells, run_cell=run_cell, summarize=summarize,
    plot=plot, notes=notes, takeaway=TAKEAWAY,
    verdict=verdict, table=table)
