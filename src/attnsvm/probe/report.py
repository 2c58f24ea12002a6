"""Write the probe's outputs: the per-head table, the heat map, the HTML page, the summary."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes, atomic_write_text

__all__ = [
    "TABLE_COLUMNS",
    "clean_json",
    "heat_matrix",
    "write_table",
    "write_heatmap",
    "write_html",
    "write_summary",
]

#: Columns of ``heads.csv`` and of the HTML table, in order.
TABLE_COLUMNS = [
    "layer",
    "head",
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
    "n_conf",
    "m_conf",
    "feasible_conf",
    "corr_fro_conf",
    "corr_control_conf",
    "margin_ratio_conf",
    "violated_share_conf",
    "corr_nuc",
    "corr_nuc_control",
    "corr_fro_nucrows",
    "duality_gap",
    "support",
    "seconds",
]


def clean_json(obj: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python ones, recursively."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


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
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def write_table(records: list[dict[str, Any]], path: Path) -> None:
    """Write ``heads.csv``: one row per head, the columns of :data:`TABLE_COLUMNS`."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(TABLE_COLUMNS)
    for r in records:
        w.writerow([_fmt(r.get(c)) for c in TABLE_COLUMNS])
    atomic_write_text(path, buf.getvalue())


def write_heatmap(records: list[dict[str, Any]], path: Path, title: str) -> None:
    """Write a PNG heat map of corr_fro - corr_control (layers x heads)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers, M = heat_matrix(records)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * max(M.shape[1], 1), 1.2 + 0.45 * len(layers)))
    lim = float(np.nanmax(np.abs(M))) if np.isfinite(M).any() else 1.0
    im = ax.imshow(np.ma.masked_invalid(M), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(M.shape[1]))
    ax.set_yticks(range(len(layers)), [str(li) for li in layers])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            txt = "inf." if not np.isfinite(M[i, j]) else f"{M[i, j]:.2f}"
            dark = np.isfinite(M[i, j]) and abs(M[i, j]) > 0.6 * lim
            ax.text(
                j, i, txt, ha="center", va="center", fontsize=6, color="white" if dark else "black"
            )
    fig.colorbar(im, ax=ax, shrink=0.8, label="corr_fro - corr_control")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_maxprob_figure(records: list[dict[str, Any]], path: Path) -> None:
    """Write a PNG of the distribution of the largest probability per row, one line per layer.

    Uses the per-head histograms ``max_prob_hist`` (10 bins on [0, 1]) summed over each layer's
    heads.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sorted({int(r["layer"]) for r in records})
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    centers = (np.arange(10) + 0.5) / 10
    cmap = plt.get_cmap("viridis")
    for k, li in enumerate(layers):
        hist = np.sum([r["max_prob_hist"] for r in records if r["layer"] == li], axis=0)
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
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _img(path: Path, alt: str) -> str:
    """An <img> with the PNG embedded as a data URI (the file also lies beside the page)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def write_summary(summary: dict[str, Any], path: Path) -> str:
    """Write ``summary.json`` and return its text."""
    text = json.dumps(clean_json(summary), indent=1)
    atomic_write_text(path, text + "\n")
    return text


def write_html(
    summary: dict[str, Any], path: Path, heatmap: str = "heatmap.png", maxprob: str = "max_prob.png"
) -> None:
    """Write ``index.html``: setup, notes, the figures (embedded) and the per-head table.

    Like the reproduction report, the page is self-contained: PNGs are embedded as data URIs
    and also lie beside it; links to the data are relative; no script, no remote resource.
    """
    recs = summary["heads"]
    e = html.escape
    feas = [r for r in recs if r.get("corr_fro") is not None]
    diff = [r["corr_fro"] - r["corr_control"] for r in feas if r.get("corr_control") is not None]
    head_lines = [
        f"<li>model: <b>{e(str(summary['model']))}</b> ({e(str(summary['family']))}), "
        f"{summary['n_sequences']} sequences of {summary['seq_len']} tokens, "
        f"{len(recs)} heads in layers {e(str(summary['layers']))}</li>",
        f"<li>feasible Att-SVM instances: {len(feas)} of {len(recs)}; mean corr_fro "
        f"{_fmt(float(np.mean([r['corr_fro'] for r in feas])) if feas else None)}, mean "
        f"corr_fro - corr_control {_fmt(float(np.mean(diff)) if diff else None)}</li>",
        f"<li>total time {summary['seconds']:.1f} s (model run {summary['capture_seconds']:.1f}"
        " s)</li>",
        f"<li>provenance: {e(json.dumps(summary.get('provenance', {})))}</li>",
    ]
    notes = "".join(f"<li>{e(n)}</li>" for n in summary.get("notes", []))
    rows = []
    for r in recs:
        cells = "".join(f"<td>{e(_fmt(r.get(c)))}</td>" for c in TABLE_COLUMNS)
        cls = ' class="approx"' if r.get("approximate") else ""
        rows.append(f"<tr{cls}>{cells}</tr>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>attnsvm probe: {e(str(summary["model"]))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 2px 5px; text-align: right; }}
th {{ background: #eee; position: sticky; top: 0; }}
tr.approx td {{ color: #666; font-style: italic; }}
figure {{ margin: 1em 0; }}
</style></head><body>
<h1>Att-SVM probe of {e(str(summary["model"]))}</h1>
<ul>{"".join(head_lines)}</ul>
<h2>Notes</h2><ul>{notes}</ul>
<h2>Correlation with the Frobenius Att-SVM minus control</h2>
<figure>{_img(path.parent / heatmap, "layers x heads heat map of corr_fro - corr_control")}
<figcaption>Each cell: correlation of the head's W with the Frobenius Att-SVM solution of its own
argmax selections, minus the mean correlation of that solution with the layer's other heads.
Empty cells: infeasible instances.</figcaption></figure>
<h2>Largest probability per row</h2>
<figure>{_img(path.parent / maxprob, "distribution of the largest probability per row")}
<figcaption>Distribution over all rows of each layer's heads (10 bins on [0, 1]); sinks
(argmax on a special or the first token) are in the table's sink_share column.</figcaption>
</figure>
<h2>Per head</h2>
<p>Files: <a href="{e(heatmap)}">{e(heatmap)}</a>, <a href="{e(maxprob)}">{e(maxprob)}</a>,
<a href="heads.csv">heads.csv</a>, <a href="summary.json">summary.json</a>, per-head
arrays in <code>heads/</code>.</p>
<table><thead><tr>{"".join(f"<th>{e(c)}</th>" for c in TABLE_COLUMNS)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""
    atomic_write_text(path, page)
