"""The files of ``attnsvm track``: ``summary.json``, one PNG of curves per head and
``index.html`` with a layer-by-head grid of those curves."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text
from ..reporting import fmt_number, new_figure, png_data_uri, save_png, write_json_atomic

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
    e = html.escape
    layers = sorted({s["layer"] for s in series})
    heads = sorted({s["head"] for s in series})
    rows = []
    for li in layers:
        cells = [f"<th>layer {li}</th>"]
        for h in heads:
            s = next((t for t in series if (t["layer"], t["head"]) == (li, h)), None)
            if s is None:
                cells.append("<td></td>")
                continue
            img = out_dir / curve_file(li, h)
            cells.append(
                f'<td><img src="{png_data_uri(img)}" alt="layer {li} head {h}"><br>'
                f"last: corr_fro {_last(s, 'corr_fro')} (control {_last(s, 'corr_control')}),"
                f" task accuracy {_last(s, 'task_accuracy')}, exact {_last(s, 'exact')}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ck_rows = "".join(
        f"<tr><td>{e(str(c['step']))}</td><td>{e(c['path'])}</td><td>{len(c['heads'])}</td>"
        f"<td>{sum(bool(r.get('exact')) for r in c['heads'])}</td></tr>"
        for c in summary["checkpoints"])
    head_cols = "".join(f"<th>head {h}</th>" for h in heads)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>attnsvm track</title>
<style>body{{font-family:sans-serif;margin:1.5em}}td,th{{border:1px solid #ccc;padding:4px;
font-size:12px;vertical-align:top}}table{{border-collapse:collapse}}</style></head><body>
<h1>Heads over training</h1>
<p>{len(summary['checkpoints'])} checkpoints of {e(str(summary['architecture']))}; text:
{e(str(summary['text']))}, {summary['seq_len']} tokens per sequence, {summary['max_queries']}
query rows. Per head: the correlation of its key-query form with the Att-SVM of its own
selections (solid) against the same SVM's correlation with the layer's other heads (dotted),
the share of selections on the task's correct token, the Jaccard index of consecutive support
sets, and the margin ratio.</p>
<table><tr><th></th>{head_cols}</tr>
{''.join(rows)}</table>
{extra_sections(summary)}
<h2>Checkpoints</h2>
<table><tr><th>step</th><th>path</th><th>heads</th><th>exact heads</th></tr>{ck_rows}</table>
</body></html>
"""
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


def extra_sections(summary: dict[str, Any]) -> str:
    """The Hierarchy and Geometry sections of ``index.html`` ('' when not computed)."""
    e = html.escape
    out = []
    hier = hierarchy_rows(summary)
    if hier:
        body = "".join(
            f"<tr><td>{e(str(h['step']))}</td><td>{h['layer']}</td>"
            f"<td>{fmt_number(h['corr_input'])} ({fmt_number(h['gain_input'])})</td>"
            f"<td>{fmt_number(h['corr_emb'])} ({fmt_number(h['gain_emb'])})</td>"
            f"<td>{h['infeasible_emb']} of {h['heads']}</td></tr>" for h in hier)
        out.append(
            "<h2>Hierarchy of SVMs</h2><p>Per layer, the mean over heads of the correlation "
            "(and, in brackets, corr - control) of the head's exact Att-SVM (lifted for "
            "rotary heads) with the layer's input as "
            "tokens (the outputs of the trained layers below) and with the embeddings as "
            "tokens (layer l's norm of the residual stream entering layer 0); the same "
            "selections. Equal at layer 0. Infeasible: no form on the embeddings makes "
            "those selections.</p><table><tr><th>step</th><th>layer</th><th>on layer input"
            "</th><th>on embeddings</th><th>infeasible on embeddings</th></tr>"
            f"{body}</table>")
    last = summary["checkpoints"][-1]["heads"] if summary["checkpoints"] else []
    geo = [r for r in last if r.get("status_linf") or r.get("status_spec")]
    if geo:
        cols = (("corr_fro", "margin_ratio"), ("corr_nuc", "margin_ratio_nuc"),
                ("corr_linf", "margin_ratio_linf"), ("corr_spec", "margin_ratio_spec"))
        body = "".join(
            f"<tr><td>{r['layer']}</td><td>{r['head']}</td>"
            + "".join(f"<td>{fmt_number(r.get(c))} / {fmt_number(r.get(m))}</td>"
                      for c, m in cols) + "</tr>" for r in geo)
        out.append(
            "<h2>Optimizer geometry (last checkpoint)</h2><p>Correlation / margin ratio of "
            "each head with the Att-SVM of its own selections in four norms (Frobenius, "
            "nuclear, entrywise max, spectral).</p><table><tr><th>layer</th><th>head</th>"
            "<th>fro</th><th>nuc</th><th>linf</th><th>spec</th></tr>" + body + "</table>")
    return "\n".join(out)
