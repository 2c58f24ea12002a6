"""Write the probe's outputs: the per-head table, the heat maps, the HTML page, the summary.

JSON conversion, figures (matplotlib's object API on an Agg canvas: the process-wide backend is
never switched), PNG embedding and number formatting come from :mod:`attnsvm.reporting`, shared
with ``attnsvm reproduce``.
"""

from __future__ import annotations

import csv
import io
import math
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
    to_jsonable,
    write_json_atomic,
)
from .report_rope import has_rotary, write_freq_figure

__all__ = [
    "TABLE_COLUMNS",
    "TARGETS",
    "heat_matrix",
    "write_table",
    "write_heatmap",
    "write_maxprob_figure",
    "write_html",
    "write_summary",
    "write_report",
    "target_summary",
    "nuc_vs_fro",
]

#: The targets a head is compared with: (name, correlation key, control key, title).
TARGETS = [
    ("rope", "corr_rope", "corr_rope_control", "lifted Frobenius Att-SVM (exact rotary)"),
    ("rope_nuc", "corr_rope_nuc", "corr_rope_nuc_control", "group-nuclear lifted Att-SVM"),
    ("fro", "corr_fro", "corr_control", "Frobenius Att-SVM W^mm"),
    ("nuc", "corr_nuc", "corr_nuc_control", "nuclear-norm Att-SVM W_*^mm"),
    ("linf", "corr_linf", "corr_linf_control", "max-norm Att-SVM (--targets linf)"),
    ("spec", "corr_spec", "corr_spec_control", "spectral-norm Att-SVM (--targets spec)"),
    ("graph", "corr_graph", "corr_graph_control", "Graph-SVM (token-priority graphs)"),
    ("graph_nuc", "corr_graph_nuc", "corr_graph_nuc_control", "nuclear-norm Graph-SVM"),
]

#: Columns of ``heads.csv`` and of the HTML table, in order.
TABLE_COLUMNS = [
    "layer",
    "head",
    "exact",
    "selections_reproduced",
    "rotary",
    "corr_rope",
    "corr_rope_control",
    "corr_rope_nuc",
    "corr_rope_nuc_control",
    "rope_status",
    "rope_gap",
    "rope_form_error",
    "n",
    "T",
    "m",
    "status",
    "feasible",
    "certified",
    "corr_fro",
    "corr_control",
    "corr_control_max",
    "corr_random",
    "margin_ratio",
    "violated_share",
    "argmax_reproduced",
    "approximate",
    "max_prob_median",
    "sink_share",
    "ties",
    "identical_keys",
    "contradictory_pairs",
    "corr_nuc",
    "corr_nuc_control",
    "corr_nuc_control_max",
    "corr_nuc_random",
    "margin_ratio_nuc",
    "rank_nuc",
    "rank_head",
    "d_head",
    "rows_nuc",
    "nuc_status",
    "nuc_gap",
    "corr_nuc_fro",
    "corr_linf",
    "corr_linf_control",
    "margin_ratio_linf",
    "linf_status",
    "corr_spec",
    "corr_spec_control",
    "margin_ratio_spec",
    "spec_status",
    "graph_status",
    "graph_queries",
    "graph_n_eq",
    "graph_n_ineq",
    "graph_scc_max",
    "graph_cyclic",
    "corr_graph",
    "corr_graph_control",
    "corr_graph_random",
    "graph_violated_share",
    "corr_graph_nuc",
    "corr_graph_nuc_control",
    "rank_graph_nuc",
    "n_conf",
    "m_conf",
    "feasible_conf",
    "corr_fro_conf",
    "corr_control_conf",
    "margin_ratio_conf",
    "violated_share_conf",
    "duality_gap",
    "support",
    "seconds",
    "error",
]


def heat_matrix(
    records: list[dict[str, Any]], key: str = "corr_fro", control: str = "corr_control"
) -> tuple[list[int], np.ndarray]:
    """Layers x heads matrix of ``record[key] - record[control]`` (NaN where undefined).

    Returns
    -------
    (list of int, numpy.ndarray of shape (n_layers, n_heads))
        The layers (rows, ascending) and the matrix.
    """
    layers = sorted({int(r["layer"]) for r in records})
    H = max(int(r["head"]) for r in records) + 1 if records else 0
    M = np.full((len(layers), H), np.nan)
    for r in records:
        a, b = r.get(key), r.get(control)
        if a is not None and b is not None:
            M[layers.index(int(r["layer"])), int(r["head"])] = float(a) - float(b)
    return layers, M


def _fmt(v: Any) -> str:
    """A table cell: empty for missing values, 4 significant digits for floats."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, str):
        return v
    return fmt_number(v, 4)


def _mean(xs: list[Any]) -> float | None:
    xs = [float(x) for x in xs if x is not None and math.isfinite(float(x))]
    return float(np.mean(xs)) if xs else None


def target_summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target (:data:`TARGETS`) the means over the heads it was solved for.

    Returns
    -------
    list of dict
        ``name``, ``title``, ``heads``, ``solved``, ``corr_mean``, ``control_mean`` (the other
        heads of the layer), ``diff_mean`` (corr - control), ``beats_all_controls`` (heads whose
        corr exceeds the largest control), ``random_mean``; for ``nuc`` also ``rank_median`` and
        ``d_head``.
    """
    out = []
    for name, key, control, title in present_targets(records):
        pre = "corr" if name == "fro" else f"corr_{name}"
        solved = [r for r in records if r.get(key) is not None]
        row: dict[str, Any] = {
            "name": name, "title": title, "heads": len(records), "solved": len(solved),
            "corr_mean": _mean([r[key] for r in solved]),
            "control_mean": _mean([r.get(control) for r in solved]),
            "diff_mean": _mean([r[key] - r[control] for r in solved
                                if r.get(control) is not None]),
            "beats_all_controls": sum(1 for r in solved
                                      if r.get(f"{pre}_control_max") is not None
                                      and r[key] > r[f"{pre}_control_max"]),
            "random_mean": _mean([r.get(f"{pre}_random") for r in solved]),
        }
        if name in ("nuc", "graph_nuc"):
            rk = "rank_nuc" if name == "nuc" else "rank_graph_nuc"
            ranks = [r[rk] for r in solved if r.get(rk) is not None]
            dh = [r["d_head"] for r in solved if r.get("d_head") is not None]
            row["rank_median"] = float(np.median(ranks)) if ranks else None
            row["d_head"] = int(np.median(dh)) if dh else None
        out.append(row)
    return out


def nuc_vs_fro(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired comparison over the heads with both ``corr_nuc`` and ``corr_fro``.

    Returns
    -------
    dict
        ``heads``, ``nuc_higher`` (heads with corr_nuc > corr_fro), ``diff_mean`` (mean
        corr_nuc - corr_fro) and ``margin_diff_mean`` (the same for corr minus its control).
    """
    both = [r for r in records if r.get("corr_nuc") is not None
            and r.get("corr_fro") is not None]
    return {
        "heads": len(both),
        "nuc_higher": sum(1 for r in both if r["corr_nuc"] > r["corr_fro"]),
        "diff_mean": _mean([r["corr_nuc"] - r["corr_fro"] for r in both]),
        "margin_diff_mean": _mean([(r["corr_nuc"] - r["corr_nuc_control"])
                                   - (r["corr_fro"] - r["corr_control"]) for r in both
                                   if r.get("corr_nuc_control") is not None
                                   and r.get("corr_control") is not None]),
    }


def write_table(records: list[dict[str, Any]], path: Path) -> None:
    """Write ``heads.csv``: one row per head, the columns of :data:`TABLE_COLUMNS`."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(TABLE_COLUMNS)
    for r in records:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in TABLE_COLUMNS])
    atomic_write_text(path, buf.getvalue())


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    """A Figure (constrained layout, no pyplot) and its row of ``ncols`` axes."""
    fig, axes = new_figure(ncols, 1, width / ncols, height)
    fig.set_layout_engine("constrained")
    return fig, axes[0]


def present_targets(records: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """The entries of :data:`TARGETS` that some record has a value for (fro always)."""
    return [t for t in TARGETS
            if t[0] == "fro" or any(r.get(t[1]) is not None for r in records)]


def write_heatmap(records: list[dict[str, Any]], path: Path, title: str) -> None:
    """Write a PNG of layers x heads heat maps of corr - control, one panel per target.

    All panels share one colour scale, so the targets can be compared cell by cell.
    """
    targets = present_targets(records)
    mats = [heat_matrix(records, key, control) for _, key, control, _ in targets]
    layers = mats[0][0]
    finite = [np.abs(M[np.isfinite(M)]) for _, M in mats]
    lim = max((float(f.max()) for f in finite if f.size), default=1.0) or 1.0
    H = mats[0][1].shape[1]
    fig, axes = _figure(0.6 + len(targets) * (0.9 + 0.5 * max(H, 1)), 1.6 + 0.45 * len(layers),
                        len(targets))
    im = None
    for ax, (_, key, control, name), (_, M) in zip(axes, targets, mats, strict=True):
        im = ax.imshow(np.ma.masked_invalid(M), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xticks(range(M.shape[1]))
        ax.set_yticks(range(len(layers)), [str(li) for li in layers])
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(f"{name}\n{key} - {control}", fontsize=8)
        for i in range(M.shape[0]):
            for j in range(M.shape[1]):
                txt = "-" if not np.isfinite(M[i, j]) else f"{M[i, j]:.2f}"
                dark = np.isfinite(M[i, j]) and abs(M[i, j]) > 0.6 * lim
                ax.text(j, i, txt, ha="center", va="center", fontsize=6,
                        color="white" if dark else "black")
    fig.suptitle(title, fontsize=9)
    fig.colorbar(im, ax=list(axes), shrink=0.9, label="corr - control")
    save_png(fig, path, dpi=120)


def write_maxprob_figure(records: list[dict[str, Any]], path: Path) -> None:
    """Write a PNG of the distribution of the largest probability per row, one line per layer.

    Uses the per-head histograms ``max_prob_hist`` (10 bins on [0, 1]) summed over each layer's
    heads.
    """
    from matplotlib import colormaps

    layers = sorted({int(r["layer"]) for r in records})
    fig, (ax,) = _figure(6.0, 3.2)
    centers = (np.arange(10) + 0.5) / 10
    cmap = colormaps["viridis"]
    for k, li in enumerate(layers):
        hists = [r["max_prob_hist"] for r in records
                 if r["layer"] == li and r.get("max_prob_hist") is not None]
        if not hists:
            continue  # every head of the layer failed
        hist = np.sum(hists, axis=0)
        share = hist / max(hist.sum(), 1)
        ax.plot(
            centers,
            share,
            marker="o",
            ms=3,
            color=cmap(k / max(len(layers) - 1, 1)),
            label=f"layer {li}",
        )
    ax.set_xlabel("largest attention probability of a row")
    ax.set_ylabel("share of rows")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, ncol=2)
    save_png(fig, path, dpi=110)


def _provenance_rows(prov: dict[str, Any]) -> dict[str, Any]:
    """Provenance for its table: nested dicts kept (sub-tables), lists joined as text."""
    return {str(k): _provenance_rows(v) if isinstance(v, dict)
            else " ".join(map(str, v)) if isinstance(v, list) else v for k, v in prov.items()}


def write_report(summary: dict[str, Any], out_dir: Path) -> None:
    """Write the table, the figures, ``summary.json`` and ``index.html`` into ``out_dir``."""
    recs = summary["heads"]
    write_table(recs, out_dir / "heads.csv")
    write_heatmap(recs, out_dir / "heatmap.png", f"{summary['model']}: corr(W_head, target) - "
                  "mean corr(target, other heads)")
    write_maxprob_figure(recs, out_dir / "max_prob.png")
    if has_rotary(recs):
        write_freq_figure(recs, out_dir / "frequencies.png")
    write_summary(summary, out_dir / "summary.json")
    write_html(summary, out_dir / "index.html")


def write_summary(summary: dict[str, Any], path: Path) -> str:
    """Write ``summary.json`` and return its text."""
    return write_json_atomic(path, summary, indent=1)


def write_html(
    summary: dict[str, Any], path: Path, heatmap: str = "heatmap.png", maxprob: str = "max_prob.png"
) -> None:
    """Write ``index.html``: setup, notes, the figures (embedded) and the per-head table.

    Like the reproduction report, the page is self-contained: PNGs are embedded as data URIs
    and also lie beside it; links to the data are relative; no script, no remote resource.
    """
    recs = summary["heads"]
    tcols = ["target", "heads solved", "mean corr", "mean control", "mean corr - control",
             "corr > every other head", "mean corr_random", "median rank / d_head"]
    trows = []
    for t in summary.get("targets") or target_summary(recs):
        rank = (f"{_fmt(t['rank_median'])} / {_fmt(t['d_head'])}"
                if t.get("rank_median") is not None else "")
        trows.append([t["title"], f"{t['solved']} of {t['heads']}", _fmt(t["corr_mean"]),
                      _fmt(t["control_mean"]), _fmt(t["diff_mean"]),
                      f"{t['beats_all_controls']} of {t['solved']}", _fmt(t["random_mean"]),
                      rank])
    folder = path.parent
    freq = folder / "frequencies.png"
    page = render_template(
        "probe.html", model=str(summary["model"]), family=str(summary["family"]),
        n_sequences=summary["n_sequences"], seq_len=summary["seq_len"], n_heads=len(recs),
        layers=str(summary["layers"]), seconds=summary["seconds"],
        capture_seconds=summary["capture_seconds"], target_columns=tcols, target_rows=trows,
        paired=summary.get("nuc_vs_fro") or nuc_vs_fro(recs), fmt=_fmt,
        notes=summary.get("notes", []), heatmap=heatmap, maxprob=maxprob,
        heatmap_uri=png_data_uri(folder / heatmap), maxprob_uri=png_data_uri(folder / maxprob),
        frequencies_uri=png_data_uri(freq) if has_rotary(recs) and freq.is_file() else "",
        columns=TABLE_COLUMNS,
        head_rows=[(r.get("exact") is False, [_fmt(r.get(c)) for c in TABLE_COLUMNS])
                   for r in recs],
        provenance=_provenance_rows(to_jsonable(summary.get("provenance", {}))))
    atomic_write_text(path, page)
