"""Local convergence of GD to the Att-SVM direction (TF-SVM local-convergence figure).

For each random instance, GD (normalized, lr 0.1, float64, exact update directions) runs on W
and on (K, Q); at the end the selected tokens alpha (largest probability per sequence) define
``W^mm_alpha`` (Frobenius) and ``W_*^mm`` (nuclear), and the correlation of every recorded
iterate with both is reported.  The (K, Q) run is repeated with the official code's tiny
weight decay ``eps (||K||^2 + ||Q||^2)``, ``eps = 2.2e-16``, and both are shown.

Runs start where the official code's do: PyTorch's ``nn.Linear`` default draws every entry of
``W`` (or of ``K`` and ``Q``) uniformly in ``[-1/sqrt(d), 1/sqrt(d)]``; here the entries are
Gaussian with the same standard deviation ``1/sqrt(3 d)`` (``init_scale``).  From a small start
(``init_scale=0.01``) the exact (K,Q) dynamics are markedly slower to align with ``W_*^mm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...reporting import fmt_number as num
from ...reporting import fmt_share as share
from .._common import (
    ALIGNED,
    add_legend,
    aligned,
    corr,
    legend_outside,
    log_steps,
    make_instances,
    new_figure,
    save_figure,
    series_style,
    targets,
)
from .._training import trajectory
from ..config import FigureConfig
from ..registry import Figure, Verdict
from ..sweep import Cell

__all__ = ["LocalConvergenceConfig", "FIGURE"]

#: What the reader should see (figure caption and report).
TAKEAWAY = ("All three 1 - corr curves fall: GD on W aligns with W^mm; K Q^T aligns with the "
            "nuclear-norm W_*^mm (dotted: the other norm's SVM, which it does not approach), "
            "the exact (K,Q) run (orange) more slowly than the official weight-decayed one.")

#: Mean largest probability from which "the selected token's probability tends to 1" holds.
SATURATED = 0.99

#: Run variants: name -> (param, kq_eps).
VARIANTS = {"W": ("W", 0.0), "KQ": ("KQ", 0.0), "KQ-official": ("KQ", 2.2e-16)}


@dataclass(frozen=True)
class LocalConvergenceConfig(FigureConfig):
    """Settings (TF-SVM official notebook): n=6, T=8, d=10, cross-attention, 100 seeds,
    normalized GD with lr 0.1 for 2000 steps on W and on (K, Q), started at the scale of
    PyTorch's ``nn.Linear`` default (``init_scale`` None: standard deviation ``1/sqrt(3 d)``)."""

    n: int = 6
    T: int = 8
    d: int = 10
    steps: int = 2000
    lr: float = 0.1
    optimizer: str = "ngd"
    official_eps: float = 2.2e-16
    seeds: int = 100
    chunk: int = 100
    per_decade: int = 8
    init_scale: float | None = None

    def start_scale(self) -> float:
        """Standard deviation of the random start's entries."""
        return float(self.init_scale) if self.init_scale is not None else 1 / np.sqrt(3 * self.d)

    QUICK: ClassVar[dict[str, Any]] = {"seeds": 12, "chunk": 12, "steps": 500}


def cells(cfg: LocalConvergenceConfig) -> list[Cell]:
    # (K, Q) exact and official share a cell so that equal token choices share their solves.
    return [Cell({"param": p}, ch) for p in ("W", "KQ") for ch in cfg.seed_chunks()]


def run_cell(cfg: LocalConvergenceConfig, cell: Cell) -> pd.DataFrame:
    insts = make_instances(cfg.n, cfg.T, cfg.d, cell.seeds)
    opt = np.stack([inst.optimal_tokens() for inst in insts])
    rs = log_steps(cfg.steps, cfg.per_decade)
    variants = ["W"] if cell.params["param"] == "W" else ["KQ", "KQ-official"]
    cache: dict[Any, Any] = {}
    frames = []
    for var in variants:
        param, eps = VARIANTS[var]
        eps = cfg.official_eps if eps else 0.0
        tr = trajectory(insts, rs, param=param, optimizer=cfg.optimizer, lr=cfg.lr,
                        seeds=list(cell.seeds), kq_eps=eps, init_scale=cfg.start_scale())
        alpha = tr.final_selected
        Wf, sf = targets(insts, alpha, "fro", cache)
        Wn, sn = targets(insts, alpha, "nuc", cache)
        assert tr.W is not None
        S, B = tr.W.shape[:2]
        for b in range(B):
            glob = bool(np.array_equal(alpha[b], opt[b]))
            for k in range(S):
                frames.append({
                    "variant": var, "seed": cell.seeds[b], "step": int(tr.steps[k]),
                    "corr_fro": corr(tr.W[k, b], Wf[b] if sf[b].W is not None else None),
                    "corr_nuc": corr(tr.W[k, b], Wn[b] if sn[b].W is not None else None),
                    "prob_min": float(tr.max_prob[k, b].min()),
                    "prob_mean": float(tr.max_prob[k, b].mean()),
                    "norm": float(np.linalg.norm(tr.W[k, b])),
                    "loss": float(tr.loss[k, b]),
                    "global": glob, "fro_status": sf[b].status, "nuc_status": sn[b].status,
                    "nuc_certified": bool(sn[b].W is not None and sn[b].is_optimal(1e-6)),
                })
    return pd.DataFrame(frames)


def _final(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["step"] == df["step"].max()]


def summarize(cfg: LocalConvergenceConfig, df: pd.DataFrame) -> dict[str, Any]:
    f = _final(df)
    out: dict[str, Any] = {}
    for var, key in (("W", "W"), ("KQ", "KQ"), ("KQ-official", "KQ_official")):
        g = f[f["variant"] == var]
        out[f"corr_fro_{key}_mean"] = float(g["corr_fro"].mean())
        out[f"corr_nuc_{key}_mean"] = float(g["corr_nuc"].mean())
        out[f"corr_fro_{key}_sd"] = float(g["corr_fro"].std(ddof=1))
        out[f"corr_nuc_{key}_sd"] = float(g["corr_nuc"].std(ddof=1))
        out[f"corr_fro_{key}_min"] = float(g["corr_fro"].min())
        out[f"corr_nuc_{key}_min"] = float(g["corr_nuc"].min())
        out[f"prob_{key}_mean"] = float(g["prob_mean"].mean())
        out[f"global_share_{key}"] = float(g["global"].mean())
        out[f"infeasible_{key}"] = int((g["fro_status"] == "infeasible").sum())
        out[f"share_{key}_nearer_fro"] = float((g["corr_fro"] > g["corr_nuc"]).mean())
        out[f"norm_{key}_median"] = float(g["norm"].median())
        out[f"loss_{key}_median"] = float(g["loss"].median())
    out["runs_per_variant"] = int(len(f) // max(1, f["variant"].nunique()))
    out["nuc_uncertified"] = int((~f["nuc_certified"] & (f["nuc_status"] != "infeasible")).sum())
    return out


#: Mathtext labels of the variants and targets.
_VAR = {"W": "$W$", "KQ": "$(K,Q)$", "KQ-official": "$(K,Q)$, official decay"}
_TGT = {"corr_fro": "$W^{mm}$", "corr_nuc": "$W_*^{mm}$"}


#: optimizer keys in the title, in words
_OPTIMIZER = {"ngd": "NGD", "gd": "GD", "polyak": "Polyak"}


def plot(cfg: LocalConvergenceConfig, df: pd.DataFrame, path: Path | None = None) -> Any:
    fig, ax = new_figure(3, 1, height=4.4)
    d = df[df["step"] > 0]
    m = d.groupby(["variant", "step"], sort=True).mean(numeric_only=True).reset_index()
    q = d.groupby(["variant", "step"], sort=True)[["corr_fro", "corr_nuc"]]
    g25, g75 = q.quantile(0.25), q.quantile(0.75)
    npts = int(m["step"].nunique())
    for j, var in enumerate(VARIANTS):
        g = m[m["variant"] == var]
        st = series_style(j, npts)
        x = g["step"]
        ax[0, 0].plot(x, g["prob_mean"], label=_VAR[var], **st)
        main = "corr_fro" if var == "W" else "corr_nuc"
        ax[0, 1].loglog(x, (1 - g[main]).clip(lower=1e-12),
                        label=f"{_VAR[var]} vs {_TGT[main]}", **st)
        # interquartile band over seeds of 1 - corr (1 - q75 is the lower edge)
        lo = (1 - g75.loc[var][main]).clip(lower=1e-12)
        hi = (1 - g25.loc[var][main]).clip(lower=1e-12)
        ax[0, 1].fill_between(lo.index, lo.values, hi.values, color=st["color"], alpha=0.15,
                              lw=0)
        # The other norm's SVM: same colour, thin dotted, no marker.
        other = "corr_nuc" if var == "W" else "corr_fro"
        ax[0, 1].loglog(x, (1 - g[other]).clip(lower=1e-12), color=st["color"], ls=":",
                        lw=1.0, marker=st["marker"], ms=3, mfc="none",
                        markevery=st["markevery"], label=f"{_VAR[var]} vs {_TGT[other]}",
                        zorder=1)
    ax[0, 0].set(xscale="log", xlabel="step", ylabel="mean prob. of selected token",
                 title="softmax probability")
    ax[0, 1].set(xlabel="step", ylabel="1 - corr (band: quartiles)",
                 title="alignment")
    f = _final(df)
    bins = np.linspace(min(0.5, float(np.nanmin(f[["corr_fro", "corr_nuc"]].values))), 1, 30)
    for j, var in enumerate(VARIANTS):
        g = f[f["variant"] == var]
        col = "corr_fro" if var == "W" else "corr_nuc"
        ax[0, 2].hist(g[col].dropna(), bins=bins, color=f"C{j}", histtype="step",
                      lw=2.4 - 0.6 * j, ls=("-", "--", ":")[j],
                      label=f"{_VAR[var]} vs {_TGT[col]}")
    ax[0, 2].set(xlabel="final correlation", ylabel="runs", title="final correlation")
    add_legend(ax[0, 0], loc="upper left")
    legend_outside(ax[0, 1], "below", ncol=2)
    add_legend(ax[0, 2], loc="upper left")
    return save_figure(fig, path, f"Local convergence: n={cfg.n}, T={cfg.T}, d={cfg.d}, "
                                  f"{_OPTIMIZER.get(cfg.optimizer, cfg.optimizer)} lr={cfg.lr}, "
                                  f"{cfg.steps} steps",
                       caption=TAKEAWAY)


def _ms(h: dict[str, Any], key: str) -> str:
    """``mean (sd, min, runs)`` of a headline triple ``<key>_mean``, ``_sd``, ``_min``."""
    mean, sd, lo = (h.get(f"{key}_{s}") for s in ("mean", "sd", "min"))
    if sd is None or lo is None:
        return num(mean)
    return (f"{num(mean)} (sd {num(sd)}, min {num(lo)}, "
            f"{h.get('runs_per_variant', '?')} runs)")


def verdict(cfg: LocalConvergenceConfig, h: dict[str, Any]) -> Verdict:
    w, kq, kqo = (h["corr_fro_W_mean"], h["corr_nuc_KQ_mean"],
                  h["corr_nuc_KQ_official_mean"])
    pw, pkq = h.get("prob_W_mean"), h.get("prob_KQ_mean")
    saturated = all(p is not None and np.isfinite(p) and p >= SATURATED for p in (pw, pkq))
    return Verdict(f"mean corr(W, W^mm) = {_ms(h, 'corr_fro_W')}; mean corr(K Q^T, W_*^mm) = "
                   f"{_ms(h, 'corr_nuc_KQ')} (exact), {num(kqo)} (official weight decay); "
                   f"mean selected-token probability {num(pw)} (W), {num(pkq)} (K,Q)",
                   aligned(w, kq) and saturated,
                   f"W and exact (K,Q) mean correlations >= {ALIGNED} and mean selected-token "
                   f"probabilities >= {SATURATED}")


def notes(cfg: LocalConvergenceConfig, h: dict[str, Any]) -> dict[str, str]:
    kq_nuc, kq_fro = h["corr_nuc_KQ_mean"], h["corr_fro_KQ_mean"]
    where = ("ends nearer W_*^mm than W^mm" if kq_nuc >= kq_fro
             else "ends nearer the Frobenius direction W^mm than the nuclear-norm one")
    cmp = (f"The published figure shows the selected token's probability going to 1 and the "
           f"correlation of W with W^mm and of K Q^T with W_*^mm going to 1 (mean and standard "
           f"deviation over 100 runs, first 1000 iterations). Here after {cfg.steps} steps: "
           f"mean corr(W, W^mm) = {_ms(h, 'corr_fro_W')}; (K,Q) with the exact dynamics: "
           f"mean corr with W_*^mm = {_ms(h, 'corr_nuc_KQ')}, with W^mm = {num(kq_fro)}, so "
           f"it {where}; the official protocol (eps = {cfg.official_eps:g} weight decay) "
           f"gives corr with W_*^mm = {_ms(h, 'corr_nuc_KQ_official')}. The weight decay "
           f"helps because the loss gradient vanishes exponentially as the softmax saturates "
           f"(the loss itself stays near its floor, median {num(h['loss_KQ_median'])}, because "
           f"the head v is fixed): once it is of the order of eps ||K|| the decay term "
           f"dominates the normalized update, the norm of K Q^T stops growing (median "
           f"{num(h['norm_KQ_official_median'])} against {num(h['norm_KQ_median'])} for the "
           f"exact dynamics) and the run behaves like the regularization path, whose limit is "
           f"W_*^mm. The start matters as much: the runs start at the scale of the official "
           f"code (standard deviation {num(cfg.start_scale())} per entry); from a small start "
           f"(init_scale = 0.01) the exact (K,Q) dynamics stay further from W_*^mm after the "
           f"same number of steps, with a flattening curve (measured in the documentation's "
           f"findings). GD ended at the globally optimal "
           f"tokens in {share(h['global_share_W'])} (W) and {share(h['global_share_KQ'])} "
           f"((K,Q)) of the runs; targets are the SVMs of the tokens GD actually selected.")
    diff = ("Updates use the exact normalized gradient computed in log space, so they stay "
            "defined after the softmax saturates; the official code needs the eps weight decay "
            "for (K,Q) to keep the update defined once the gradient underflows, which is why both "
            "(K,Q) curves are shown. The official code starts from PyTorch's uniform nn.Linear "
            "initialisation; here the start is Gaussian with the same standard deviation, from "
            "each seed. W_*^mm is solved by attnsvm's nuclear-norm solver and certified by its "
            f"duality gap ({h['nuc_uncertified']} uncertified); the official code uses cvxpy at "
            "its default accuracy.")
    return {"comparison": cmp, "differences": diff}


FIGURE = Figure(
    name="local-convergence", title="GD on W and (K,Q) converges in direction to the Att-SVM",
    source="TF-SVM (Tarzanagh et al. 2023), local-convergence figure of the official code",
    claim=("Normalized GD on W converges in direction to W^mm_alpha of the tokens it selects, "
           "and GD on (K,Q) to the nuclear-norm solution W_*^mm_alpha; the selected tokens' "
           "softmax probability tends to 1."),
    config=LocalConvergenceConfig, cells=cells, run_cell=run_cell, summarize=summarize,
    plot=plot, notes=notes, takeaway=TAKEAWAY, verdict=verdict)
