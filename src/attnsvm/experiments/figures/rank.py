"""Rank of the Frobenius vs the nuclear-norm Att-SVM solution (TF-SVM rank figure).

Solvers only: for random instances at each (n, T, d), solve ``W^mm`` (exact working-set
solver) and ``W_*^mm`` (the dedicated nuclear-norm solver, the cell's instances of equal
shapes by one stacked interior point: :func:`attnsvm.svm.nuclear.solve_nuc_many`) for
the optimal tokens, certify both, and count ranks with a
tolerance tied to each solution's accuracy.  Infeasible instances are counted apart.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...reporting import fmt_number as num
from ...reporting import fmt_share as share
from ...reporting import plural
from ...svm.conic import solve_conic
from ...svm.nuclear import solve_nuc_many
from .._common import (
    add_legend,
    legend_outside,
    make_instances,
    new_figure,
    optimal_or_first,
    save_figure,
    series_style,
    solution_fields,
    solve,
)
from ..config import FigureConfig
from ..registry import Figure, Verdict
from ..sweep import Cell

__all__ = ["RankConfig", "FIGURE"]

#: What the reader should see (figure caption and report).
TAKEAWAY = ("Dashed lines (nuclear-norm W_*^mm) lie below the solid ones of the same colour "
            "(Frobenius W^mm), which never exceed n; at small d many instances are infeasible "
            "and are counted apart (right).")


@dataclass(frozen=True)
class RankConfig(FigureConfig):
    """Settings of the rank figure (TF-SVM official notebook).

    Attributes
    ----------
    ns : tuple of int
        Sequence counts swept at ``T = T_fixed``.
    Ts : tuple of int
        Token counts swept at ``n = n_fixed``.
    ds : tuple of int
        Embedding dimensions.
    n_fixed, T_fixed : int
    seeds : int
        Instances drawn per (n, T, d) (infeasible ones counted apart).
    scs_seeds : int
        For the first ``scs_seeds`` seeds of each (n, T, d), the nuclear-norm SVM is also
        solved by SCS at its default accuracy and its rank counted with tolerance 1e-7: the
        official notebook's rule, measured beside the certified rank.
    """

    ns: tuple[int, ...] = (5, 10, 15)
    Ts: tuple[int, ...] = (5, 10, 15)
    ds: tuple[int, ...] = (1, 2, 3, 4, 5, 10, 15, 20)
    n_fixed: int = 5
    T_fixed: int = 5
    seeds: int = 100
    chunk: int = 50
    scs_seeds: int = 10

    QUICK: ClassVar[dict[str, Any]] = {"ns": (5, 10), "Ts": (5, 10), "ds": (1, 2, 5, 10),
                                       "seeds": 6, "chunk": 6, "scs_seeds": 2}


def grid(cfg: RankConfig) -> list[tuple[int, int, int]]:
    """Distinct (n, T, d) of both sweeps."""
    pts = [(n, cfg.T_fixed) for n in cfg.ns] + [(cfg.n_fixed, T) for T in cfg.Ts]
    uniq = list(dict.fromkeys(pts))
    return [(n, T, d) for n, T in uniq for d in cfg.ds]


def cells(cfg: RankConfig) -> list[Cell]:
    return [Cell({"n": n, "T": T, "d": d}, ch) for n, T, d in grid(cfg)
            for ch in cfg.seed_chunks()]


def run_cell(cfg: RankConfig, cell: Cell) -> pd.DataFrame:
    n, T, d = cell.params["n"], cell.params["T"], cell.params["d"]
    rows, feasible = [], []
    for seed, inst in zip(cell.seeds, make_instances(n, T, d, cell.seeds), strict=False):
        alpha, tied = optimal_or_first(inst)
        fro = solve(inst, alpha, "fro")
        row: dict[str, Any] = {"n": n, "T": T, "d": d, "seed": seed, "tied": tied,
                               "feasible": fro.W is not None}
        row.update(solution_fields(fro, "fro"))
        if fro.W is not None:
            feasible.append((row, inst, alpha, fro))
        else:
            row.update({"nuc_status": "infeasible", "nuc_certified": False,
                        "nuc_objective": np.nan, "nuc_rank": -1, "nuc_residual": np.nan,
                        "nuc_rank_tol1e-7": -1, "nuc_rank_scs_tol1e-7": np.nan})
        rows.append(row)
    # the cell's nuclear-norm SVMs together: same-shaped instances share one interior point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each solution's accuracy is recorded instead
        nucs = solve_nuc_many([inst.constraints(alpha) for _, inst, alpha, _ in feasible],
                              frobenius=[fro for *_, fro in feasible])
    for (row, inst, alpha, _), nuc in zip(feasible, nucs, strict=True):
        nuc.alpha, nuc.shape = np.asarray(alpha, dtype=np.int64).copy(), (n, T)
        row.update(solution_fields(nuc, "nuc"))
        sv = nuc.singular_values() if nuc.W is not None else np.zeros(1)
        # The official rule, numpy.linalg.matrix_rank(W, tol=1e-7), on the accurate W.
        row["nuc_rank_tol1e-7"] = int(np.sum(sv > 1e-7))
        row["nuc_rank_scs_tol1e-7"] = (_scs_rank(inst, alpha)
                                       if row["seed"] - cfg.seed0 < cfg.scs_seeds else np.nan)
    return pd.DataFrame(rows)


def _scs_rank(inst: Any, alpha: np.ndarray) -> float:
    """Rank with tol 1e-7 of SCS's default-accuracy nuclear-norm solution (official rule)."""

    c = inst.constraints(alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sol = solve_conic(c, norm="nuc", solver="SCS", reduce=False, tol=np.inf)
        except Exception:  # noqa: BLE001 - a failed low-accuracy solve is just not counted
            return float("nan")
    if sol.W is None:
        return float("nan")
    return float(np.sum(np.linalg.svd(sol.W, compute_uv=False) > 1e-7))


def table(cfg: RankConfig, df: pd.DataFrame) -> pd.DataFrame:
    """Per (n, T, d): instances, infeasible count, mean/max ranks over certified solutions."""
    out = []
    for (n, T, d), g in df.groupby(["n", "T", "d"], sort=False):
        f = g[g["feasible"]]
        ok = f[f["fro_certified"] & f["nuc_certified"]]
        out.append({
            "n": n, "T": T, "d": d, "instances": len(g), "infeasible": int((~g["feasible"]).sum()),
            "infeasible_certified": int((~g["feasible"] & g["fro_certified"]).sum()),
            "uncertified": int(len(f) - len(ok)),
            "rank_fro_mean": ok["fro_rank"].mean() if len(ok) else np.nan,
            "rank_nuc_mean": ok["nuc_rank"].mean() if len(ok) else np.nan,
            "rank_fro_max": ok["fro_rank"].max() if len(ok) else np.nan,
            "rank_nuc_max": ok["nuc_rank"].max() if len(ok) else np.nan,
            # Official-notebook rule: infeasible instances enter as rank 1.
            "rank_nuc_mean_official_rule": np.where(g["feasible"], g["nuc_rank"], 1).mean(),
        })
    return pd.DataFrame(out)


def summarize(cfg: RankConfig, df: pd.DataFrame) -> dict[str, Any]:
    t = table(cfg, df)
    feas = df[df["feasible"]]
    ok = feas[feas["fro_certified"] & feas["nuc_certified"]]
    return {
        "instances": int(len(df)),
        "infeasible": int((~df["feasible"]).sum()),
        "infeasible_share": float((~df["feasible"]).mean()),
        "infeasible_certified": int((~df["feasible"] & df["fro_certified"]).sum()),
        "infeasible_at_d1": int((~df["feasible"] & (df["d"] == 1)).sum()),
        "tied_instances": int(df["tied"].sum()),
        "uncertified_solutions": int(len(feas) - len(ok)),
        "rank_fro_mean": float(ok["fro_rank"].mean()) if len(ok) else None,
        "rank_nuc_mean": float(ok["nuc_rank"].mean()) if len(ok) else None,
        "share_nuc_rank_below_fro": float((ok["nuc_rank"] < ok["fro_rank"]).mean())
        if len(ok) else None,
        "share_nuc_rank_above_fro": float((ok["nuc_rank"] > ok["fro_rank"]).mean())
        if len(ok) else None,
        "max_rank_fro_over_n": float((ok["fro_rank"] / ok["n"]).max()) if len(ok) else None,
        "rank_nuc_mean_official_rule": float(t["rank_nuc_mean_official_rule"].mean())
        if len(t) else None,
        **_scs_summary(ok),
    }


def _scs_summary(ok: pd.DataFrame) -> dict[str, Any]:
    """SCS default accuracy + tol 1e-7 (official rule) against the certified nuclear rank."""
    col = "nuc_rank_scs_tol1e-7"
    g = ok[ok[col].notna()] if col in ok else ok.iloc[:0]
    if not len(g):
        return {"scs_instances": 0}
    return {
        "scs_instances": int(len(g)),
        "rank_nuc_scs_tol1e-7_mean": float(g[col].mean()),
        "rank_nuc_certified_same_instances_mean": float(g["nuc_rank"].mean()),
        "share_scs_rank_inflated": float((g[col] > g["nuc_rank"]).mean()),
    }


def plot(cfg: RankConfig, df: pd.DataFrame, path: Path | None = None) -> Any:
    from matplotlib.lines import Line2D

    t = table(cfg, df)
    fig, ax = new_figure(3, 1, width=4.4, height=3.8)
    norm_keys = [Line2D([], [], color="k", ls="-", marker="o", label="W^mm (Frobenius)"),
                 Line2D([], [], color="k", ls="--", marker="s", mfc="none",
                        label="W_*^mm (nuclear)")]
    for k, (col, vals, fixed) in enumerate((("n", cfg.ns, "T"), ("T", cfg.Ts, "n"))):
        a = ax[0, k]
        fv = cfg.T_fixed if fixed == "T" else cfg.n_fixed
        for j, v in enumerate(vals):
            g = t[(t[col] == v) & (t[fixed] == fv)].sort_values("d")
            c = f"C{j}"
            a.plot(g["d"], g["rank_fro_mean"], "-o", color=c, ms=5, lw=1.8, label=f"{col}={v}")
            a.plot(g["d"], g["rank_nuc_mean"], "--s", color=c, ms=5, mfc="none", lw=1.4)
        a.set_xlabel("d")
        a.set_ylabel("mean rank (feasible, certified)")
        a.set_title(f"{fixed}={fv}, varying {col}")
        # one legend under the axes: the colours, then the two norms' line styles
        legend_outside(a, "below", handles=[*a.get_lines()[::2], *norm_keys], ncol=2)
    a = ax[0, 2]
    for j, (n, T) in enumerate(dict.fromkeys(zip(t["n"], t["T"], strict=False))):
        g = t[(t["n"] == n) & (t["T"] == T)].sort_values("d")
        a.plot(g["d"], g["infeasible"] / g["instances"], label=f"n={n}, T={T}",
               **series_style(j, len(g)))
    a.set_xlabel("d")
    a.set_ylabel("share infeasible (certified)")
    a.set_title("Att-SVM infeasible")
    add_legend(a)
    return save_figure(fig, path, "Rank of W^mm (solid) vs W_*^mm (dashed)", caption=TAKEAWAY)


def verdict(cfg: RankConfig, h: dict[str, Any]) -> Verdict:
    fro, nuc = h.get("rank_fro_mean"), h.get("rank_nuc_mean")
    ok = (fro is not None and nuc is not None and nuc < fro
          and h["max_rank_fro_over_n"] is not None and h["max_rank_fro_over_n"] <= 1
          and h["share_nuc_rank_above_fro"] == 0)
    return Verdict(f"mean rank W^mm {num(fro)}, W_*^mm {num(nuc)}; max rank(W^mm)/n = "
                   f"{num(h['max_rank_fro_over_n'])}; W_*^mm lower in "
                   f"{share(h['share_nuc_rank_below_fro'])}, higher in "
                   f"{share(h['share_nuc_rank_above_fro'])}", ok,
                   "rank(W^mm) <= n everywhere, W_*^mm never of higher rank and lower on average")


def notes(cfg: RankConfig, h: dict[str, Any]) -> dict[str, str]:
    feas = plural(h['instances'] - h['infeasible'], 'feasible certified instance')
    cmp = (f"The published figure shows the nuclear-norm solution W_*^mm with lower rank than "
           f"W^mm, and rank(W^mm) <= n. Here, over {feas}, mean "
           f"rank W^mm = {num(h['rank_fro_mean'])}, mean rank W_*^mm = "
           f"{num(h['rank_nuc_mean'])}; W_*^mm has strictly lower rank in "
           f"{share(h['share_nuc_rank_below_fro'])} of them and higher rank in "
           f"{share(h['share_nuc_rank_above_fro'])}; max rank(W^mm)/n = "
           f"{num(h['max_rank_fro_over_n'])}.")
    diff = (f"The official notebook records an infeasible instance as rank 1 (the solver returns "
            f"no matrix and matrix_rank(None) is 1); here the {h['infeasible']} infeasible "
            f"instances ({h['infeasible_certified']} with a Farkas certificate; "
            f"{h['infeasible_at_d1']} at d = 1, where unit tokens are +-1 so the optimal token "
            f"has exact duplicates: {h['tied_instances']} instances have tied optimal tokens, "
            f"resolved as the official code does by the first argmax) are counted apart and "
            f"left out of every rank. "
            f"With the official rule the mean nuclear rank would read "
            f"{num(h['rank_nuc_mean_official_rule'])}. The official notebook also counts ranks of "
            f"SCS's low-accuracy nuclear-norm solutions with tolerance 1e-7, which reads ranks "
            f"such as 5, 6, 9 where accurate solutions have 2, 2, 5. Measured here on "
            f"{h.get('scs_instances', 0)} instances: that rule gives mean rank "
            f"{num(h.get('rank_nuc_scs_tol1e-7_mean'))} against the certified "
            f"{num(h.get('rank_nuc_certified_same_instances_mean'))}, inflated in "
            f"{share(h.get('share_scs_rank_inflated'))} of them. Here every solution is "
            f"certified by its KKT residuals (Clarabel, {h['uncertified_solutions']} not "
            f"certified and excluded) and ranks use a tolerance tied to that accuracy "
            f"(the CSV also gives matrix_rank with tol 1e-7 on the accurate solution). "
            f"Instances are drawn per (n, T, d): {cfg.seeds} seeds each, not resampled until "
            f"feasible.")
    return {"comparison": cmp, "differences": diff}


FIGURE = Figure(
    name="rank", title="Rank of W^mm vs W_*^mm",
    source="TF-SVM (Tarzanagh et al. 2023), rank figure of the official code",
    claim=("rank(W^mm) <= n by the KKT conditions, and the nuclear-norm solution W_*^mm "
           "(the (K,Q) limit direction) is of lower rank than the Frobenius one."),
    config=RankConfig, cells=cells, run_cell=run_cell, summarize=summarize, plot=plot,
    notes=notes, table=table, takeaway=TAKEAWAY, verdict=verdict)
