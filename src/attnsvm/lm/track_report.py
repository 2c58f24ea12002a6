"""The files of ``attnsvm track``: ``summary.json``, one PNG of curves per head and
``index.html`` (template ``templates/track.html``) with a layer-by-head grid of those curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text
from ..reporting import (
    fmt_number,
    new_figure,
    png_data_uri,
    render_template,
    save_png,
    write_json_atomic,
)

__all__ = ["write_track_report", "curve_file", "CURVES"]

#: Upper panel of a head's figure: (field, label, style).
CURVES = (("corr_fro", "corr_fro", "-"), ("corr_control", "fro control", ":"),
          ("corr_nuc", "corr_nuc", "-"), ("corr_nuc_control", "nuc control", ":"),
          ("corr_rope", "corr_rope", "-"), ("corr_rope_control", "rope control", ":"),
          ("task_accuracy", "task accuracy", "--"), ("support_jaccard", "support Jaccard", "-."),
          ("corr_fro_emb", "fro on embeddings", "--"), ("corr_rope_emb", "rope on embeddings",
                                                         "--"))


def curve_file(layer: int, head: int) -> str:
    """Relative path of a head's curves, ``curves/L00_H01.png``."""
    return f"curves/L{layer:02d}_H{head:02d}.png"


def _x(steps: list[Any]) -> tuple[np.ndarray, str]:
    if all(isinstance(s, int) for s in steps):
        return np.asarray(steps, dtype=float), "step"
    return np.arange(len(steps), dtype=float), "checkpoint"


def _values(vals: list[Any]) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in vals])


def write_head_curves(s: dict[str, Any], path: Path, recall: list[Any] | None = None) -> None:
    """Two panels over training: correlations, accuracy and support Jaccard (and the model's
    recall accuracy, grey); margin ratio."""
    x, xlabel = _x(s["step"])
    fig, axes = new_figure(2, 1, 3.0, 2.6)
    fig.set_layout_engine("constrained")
    ax, ax2 = axes[0]
    for f, label, style in CURVES:
        if f in s:
            ax.plot(x, _values(s[f]), style, marker=".", label=label)
    if recall is not None and any(v is not None for v in recall):
        ax.plot(x, _values(recall), color="grey", lw=2, alpha=0.5, label="model recall")
    ax.set_ylim(-1.05, 1.05)
    ax.set_title(f"layer {s['layer']} head {s['head']}", fontsize=9)
    ax.legend(fontsize=6)
    if "margin_ratio" in s:
        ax2.plot(x, _values(s["margin_ratio"]), marker=".", color="k")
        ax2.axhline(1.0, color="grey", lw=0.5)
        ax2.set_yscale("symlog", linthresh=1.0)
    ax2.set_title("margin ratio (1 = max margin)", fontsize=9)
    for a in (ax, ax2):
        if xlabel == "step" and len(x) > 1:
            a.set_xscale("symlog", linthresh=1.0)
            a.set_xlim(0.0, max(float(x.max()) * 1.3, 1.0))
        a.set_xlabel(xlabel, fontsize=8)
        a.tick_params(labelsize=7)
    save_png(fig, path, dpi=80)


def _last(s: dict[str, Any], f: str) -> str:
    vals = s.get(f)
    return fmt_number(vals[-1]) if vals else "n/a"


def write_track_report(summary: dict[str, Any], out_dir: Path) -> None:
    """Write the per-head curves, ``summary.json`` and ``index.html`` (last) into ``out_dir``."""
    (out_dir / "curves").mkdir(parents=True, exist_ok=True)
    series = summary["series"]
    for s in series:
        write_head_curves(s, out_dir / curve_file(s["layer"], s["head"]),
                          summary.get("recall_accuracy"))
    write_json_atomic(out_dir / "summary.json", summary, indent=1)
    layers = sorted({s["layer"] for s in series})
    heads = sorted({s["head"] for s in series})
    grid = []
    for li in layers:
        cells: list[dict[str, Any] | None] = []
        for h in heads:
            s = next((t for t in series if (t["layer"], t["head"]) == (li, h)), None)
            cells.append(None if s is None else {
                "head": h, "uri": png_data_uri(out_dir / curve_file(li, h)),
                "last": f"corr_fro {_last(s, 'corr_fro')} (control {_last(s, 'corr_control')}),"
                        f" task accuracy {_last(s, 'task_accuracy')}, exact {_last(s, 'exact')}"})
        grid.append((li, cells))
    checkpoints = [{"step": c["step"], "path": c["path"], "heads": c["heads"],
                    "exact": sum(bool(r.get("exact")) for r in c["heads"])}
                   for c in summary["checkpoints"]]
    page = render_template("track.html", checkpoints=checkpoints, heads=heads, grid=grid,
                           architecture=str(summary["architecture"]), text=str(summary["text"]),
                           seq_len=summary["seq_len"], max_queries=summary["max_queries"],
                           hierarchy=hierarchy_rows(summary), geometry=geometry_rows(summary))
    atomic_write_text(out_dir / "index.html", page)


# --- track's optional sections (--hierarchy, --geometry): HTML fragments for the page --------

def _mean(vals: list[Any]) -> float | None:
    v = [float(x) for x in vals if x is not None]
    return float(np.mean(v)) if v else None


def hierarchy_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per checkpoint and layer: mean correlation with the exact target on the layer input and
    on the embeddings, mean ``hier_gain_input``, ``hier_gain_emb`` over the heads and
    the heads whose embedding instance is infeasible (exact target: lifted for rotary heads)."""
    rows = []
    for c in summary["checkpoints"]:
        for li in sorted({r["layer"] for r in c["heads"]}):
            recs = [r for r in c["heads"] if r["layer"] == li and "hier_target" in r]
            if not recs:
                continue
            st = ["rope_status_emb" if r["hier_target"] == "rope" else "status_emb"
                  for r in recs]
            corr = ["corr_rope" if r["hier_target"] == "rope" else "corr_fro" for r in recs]
            rows.append({"step": c["step"], "layer": li, "heads": len(recs),
                         "corr_input": _mean([r.get(k) for r, k in zip(recs, corr, strict=True)]),
                         "corr_emb": _mean([r.get(f"{k}_emb")
                                            for r, k in zip(recs, corr, strict=True)]),
                         "gain_input": _mean([r["hier_gain_input"] for r in recs]),
                         "gain_emb": _mean([r["hier_gain_emb"] for r in recs]),
                         "infeasible_emb": sum(r.get(k) == "infeasible"
                                               for r, k in zip(recs, st, strict=True))})
    return rows


def geometry_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per head of the last checkpoint with ``--geometry``: layer, head and, per norm
    (fro, nuc, linf, spec), ``"corr / margin ratio"`` as text ([] when not computed)."""
    last = summary["checkpoints"][-1]["heads"] if summary["checkpoints"] else []
    cols = (("corr_fro", "margin_ratio"), ("corr_nuc", "margin_ratio_nuc"),
            ("corr_linf", "margin_ratio_linf"), ("corr_spec", "margin_ratio_spec"))
    return [{"layer": r["layer"], "head": r["head"],
             "cells": [f"{fmt_number(r.get(c))} / {fmt_number(r.get(m))}" for c, m in cols]}
            for r in last if r.get("status_linf") or r.get("status_spec")]
