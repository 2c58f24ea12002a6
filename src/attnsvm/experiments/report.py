"""The HTML report and ``summary.json``.

``index.html`` is one self-contained file: every figure's PNG is embedded as a base64 data URI
(and also lies beside it as ``<name>.png``), the CSV links are relative, there is no script and
no remote resource, so it opens from disk in any browser.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..reporting import fmt_number, git_commit, plural, png_data_uri, write_json_atomic
from ..reporting import provenance as _provenance
from .registry import FIGURES, NEW_STUDIES

__all__ = ["provenance", "git_commit", "write_report", "load_records", "claims_table",
           "summary_text"]


def provenance(**extra: Any) -> dict[str, Any]:
    """Package version, git commit, library versions, machine and time, plus ``extra``
    (:func:`attnsvm.reporting.provenance`)."""
    return _provenance(**extra)


def load_records(out: str | Path) -> list[dict[str, Any]]:
    """The figure records under ``out/data``, in report order."""
    recs = []
    for name in FIGURES:
        p = Path(out) / "data" / f"{name}.json"
        if p.exists():
            recs.append(json.loads(p.read_text(encoding="utf-8")))
    return recs


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return html.escape(fmt_number(v, 4))
    if isinstance(v, (list, dict)):
        return html.escape(json.dumps(v))
    return html.escape(str(v))


#: Words of the headline keys (see :func:`headline_label`): inside a key, at its start and at
#: its end.
_INNER = (("one_minus_corr", "1 - corr"), ("corr_svmeq", "corr with W^svmeq"),
          ("corr_dir", "corr with W^dir"), ("corr_mm", "corr with W^mm"),
          ("corr_fro", "corr with W^mm"), ("corr_nuc", "corr with W@^mm"),
          ("_KQ_official", ", (K,Q) with the official weight decay,"), ("_KQ", ", (K,Q),"),
          ("_W_", ", W, "), ("prob_", "selected-token probability "))
_START = (("multi_", "several-token runs: "),)
_END = (("_mean", ", mean"), ("_median", ", median"), ("_sd", ", sd"), ("_min", ", min"),
        ("_max", ", max"), ("_q25", ", 25% quantile"), ("_q75", ", 75% quantile"))


def headline_label(key: str) -> str:
    """A headline key of ``summary.json`` in words, for the report's tables.

    >>> headline_label("corr_nuc_KQ_official_mean")
    'corr with W_*^mm, (K,Q) with the official weight decay, mean'
    >>> headline_label("multi_one_minus_corr_dir_median")
    'several-token runs: 1 - corr with W^dir, median'
    >>> headline_label("min_max_prob_median")
    'min max prob, median'
    """
    text, head, tail = key, "", ""
    for old, new in _START:
        if text.startswith(old):
            text, head = text[len(old):], new
    for old, new in _END:
        if text.endswith(old):
            text, tail = text[:-len(old)], new
    text += "_" if text.endswith("_W") else ""
    for old, new in _INNER:
        text = text.replace(old, new)
    text = (head + text.replace("_", " ") + tail).replace("@", "_*")
    return " ".join(text.replace(" ,", ",").replace(",,", ",").strip(" ,").split())


def _table(d: dict[str, Any], human: bool = False) -> str:
    rows = "".join(
        f"<tr><th title='{html.escape(str(k))}'>"
        f"{html.escape(headline_label(str(k)) if human else str(k))}</th><td>{_fmt(v)}</td></tr>"
        for k, v in d.items())
    return f"<table>{rows}</table>"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em} section{border-top:1px solid #ccc;margin-top:2em;padding-top:1em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4;font-weight:600} img{max-width:100%;border:1px solid #eee}
.claim{background:#eef5ff;padding:.5em 1em;border-left:4px solid #4a7bd0}
.diff{background:#fff6e6;padding:.5em 1em;border-left:4px solid #d09a4a}
.meta{color:#666;font-size:.9em} details{margin:.5em 0}
.see{font-size:1.05em;font-weight:600}
.pass{color:#17692e;font-weight:700} .dev{color:#a5340f;font-weight:700}
.study{color:#555;font-weight:700}
"""

_MARKS = {True: ("pass", "&#10003; pass"), False: ("dev", "&#9888; deviation"),
          None: ("study", "&#8212; measured")}


_WORDS = {True: "pass", False: "deviation", None: "measured"}


def summary_text(summary: dict[str, Any], names: Sequence[str] | None = None) -> str:
    """What ``attnsvm reproduce`` prints: per figure its mode, seconds and verdict, then the
    counts of each verdict.

    Parameters
    ----------
    summary : dict
        As returned by :func:`write_report` (``summary.json``).
    names : sequence of str, optional
        Only these figures (default all in the summary).
    """
    lines, counts = [], dict.fromkeys(_WORDS.values(), 0)
    for name, entry in summary["figures"].items():
        if names and name not in names:
            continue
        v = entry.get("verdict") or {}
        word = _WORDS.get(v.get("passed"), "measured") if v else ""
        if word:
            counts[word] += 1
        lines.append(f"{name:<20} {entry['mode']:<5} {entry['seconds']:8.1f} s  {word}")
    said = {"pass": f"{counts['pass']} pass", "deviation": plural(counts["deviation"], "deviation"),
            "measured": f"{counts['measured']} measured without a criterion"}
    lines.append("verdicts: " + ", ".join(said[w] for w, k in counts.items() if k))
    return "\n".join(lines)


def claims_table(recs: Sequence[dict[str, Any]]) -> str:
    """The report's first screen: every claim, its measured numbers and a pass/deviation mark.

    A figure without a verdict (a record written before verdicts existed) shows no mark.
    """
    rows = []
    for r in recs:
        v = r.get("verdict") or {}
        cls, mark = _MARKS.get(v.get("passed"), ("study", "")) if v else ("study", "")
        rows.append(
            f"<tr><td><a href='#{html.escape(r['name'])}'>{html.escape(r['name'])}</a></td>"
            f"<td>{html.escape(r['claim'])}</td>"
            f"<td>{html.escape(v.get('measured', ''))}</td>"
            f"<td class='{cls}' title='{html.escape(v.get('criterion', ''))}'>{mark}</td>"
            f"<td>{html.escape(r['mode'])}, {r['seconds']:.1f} s</td></tr>")
    return ("<table id='claims'><tr><th>figure</th><th>claim</th><th>measured</th>"
            "<th>verdict</th><th>run</th></tr>" + "".join(rows) + "</table>")


def _section(rec: dict[str, Any], out: Path) -> str:
    name = rec["name"]
    png = out / rec["png"]
    img = ""
    if png.exists():
        img = (f'<img id="img-{html.escape(name)}" class="figure" alt="{html.escape(name)}" '
               f'src="{png_data_uri(png)}">')
    see = rec.get("takeaway") or ""
    if img:  # the PNG carries the caption: the page shows it once
        img = f"<figure>{img.replace(' alt=', ' title=', 1)}</figure>".replace(
            "<img ", f'<img alt="{html.escape(see)}" ', 1)
    v = rec.get("verdict") or {}
    crit = (f"<p class='meta'>Verdict criterion: {html.escape(v['criterion'])}</p>"
            if v.get("criterion") else "")
    new = " (new study)" if name in NEW_STUDIES else ""
    return f"""
<section id="{html.escape(name)}">
<h2>{html.escape(name)}: {html.escape(rec['title'])}{new}</h2>
<p class="meta">Source: {html.escape(rec['source'])} &middot; mode: {html.escape(rec['mode'])}
&middot; {rec['seconds']:.1f} s &middot; seeds {rec['seeds'][0]}..{rec['seeds'][1]}
&middot; {plural(rec['cells'], 'cell')} ({rec['cells_resumed']} resumed from disk)
&middot; data: <a href="{html.escape(rec['csv'])}">{html.escape(rec['csv'])}</a></p>
<p class="claim"><b>Claim tested.</b> {html.escape(rec['claim'])}</p>
{img or f'<p class="see">What to see: {html.escape(see)}</p>'}{crit}
<h3>Headline numbers</h3>{_table(rec['headline'], human=True)}
<p><b>Compared with the published figure.</b> {html.escape(rec['comparison'])}</p>
<p class="diff"><b>How these numbers differ from the official code's.</b>
{html.escape(rec['differences'])}</p>
<details><summary>Settings</summary>{_table(rec['settings'])}</details>
</section>"""


def write_report(out: str | Path, prov: dict[str, Any],
                 records: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``index.html`` and ``summary.json`` for the figure records in ``out``.

    Returns
    -------
    dict
        The summary: ``{"provenance": ..., "figures": {name: {headline..., "seconds"}}}``.
    """
    out = Path(out)
    recs = list(records) if records is not None else load_records(out)
    figures = {r["name"]: {**r["headline"], "seconds": r["seconds"], "mode": r["mode"],
                           "title": r["title"], "png": r["png"], "csv": r["csv"],
                           "settings": r["settings"], "verdict": r.get("verdict")}
               for r in recs}
    summary = {"provenance": prov, "figures": figures,
               "total_seconds": round(sum(r["seconds"] for r in recs), 3)}
    write_json_atomic(out / "summary.json", summary)
    body = "".join(_section(r, out) for r in recs)
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>attnsvm report: attention as a max-margin SVM</title>
<style>{_CSS}</style></head>
<body>
<h1>attnsvm: softmax attention trained by GD vs the Att-SVM</h1>
<h2>Claims and what was measured</h2>
{claims_table(recs)}
<p>Each figure computes both sides of a claim of Tarzanagh et al. (MMTS, NeurIPS 2023;
TF-SVM, 2023) or of a follow-up study, and reports the distance between them. Every SVM
solution is checked for accuracy (KKT residuals); infeasible instances are counted apart,
never given a rank or a correlation.</p>
<details><summary>Provenance</summary>{_table(prov)}</details>
{body}
</body></html>
"""
    atomic_write_text(out / "index.html", doc)
    return summary
