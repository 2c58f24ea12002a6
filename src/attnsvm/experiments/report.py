"""The HTML report and ``summary.json``.

``index.html`` is one self-contained file: every figure's PNG is embedded as a base64 data URI
(and also lies beside it as ``<name>.png``), the CSV links are relative, there is no script and
no remote resource, so it opens from disk in any browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..reporting import (
    fmt_number,
    git_commit,
    plural,
    png_data_uri,
    render_template,
    write_json_atomic,
)
from ..reporting import provenance as _provenance
from ._labels import NORM_LABELS, RUN_KEY, run_label
from .registry import FIGURES, NEW_STUDIES

__all__ = ["provenance", "git_commit", "write_report", "load_records", "summary_text",
           "headline_label"]


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
    """A value of a report table as text (the template escapes it)."""
    if isinstance(v, float):
        return fmt_number(v, 4)
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


#: a prompt-paths run group at the start of a key (``n1T3_local_gd_``)
_PROMPT_RUN = re.compile(r"^n(\d+)T(\d+)_(random|local)_(n?gd)_")

#: Words of the headline keys (see :func:`headline_label`): inside a key, at its start and at
#: its end.
_INNER = (("one_minus_corr", "1 - corr"), ("corr_svmeq", "corr with W^svmeq"),
          ("corr_dir", "corr with W^dir"), ("corr_mm", "corr with W^mm"),
          ("corr_fro", "corr with W^mm"), ("corr_nuc", "corr with W@^mm"),
          ("corr_svms", "corr between the two SVMs"),
          ("corr_svm_fin", "corr with R W^svm + W^fin"), ("corr_svm", "corr with W^svm"),
          ("_KQ_official", ", (K,Q) with the official weight decay,"), ("_KQ", ", (K,Q),"),
          ("_W_", ", W, "), ("prob_", "selected-token probability "),
          ("_slope_sqrt", " slope of the gap vs log t"),
          ("_slope_log", " slope of the gap vs log log t"),
          ("_consistent_sqrt", " consistent with 1/sqrt(t)"),
          ("_consistent_log", " consistent with 1/log t"), ("_rate_norm", " gap fitted in"),
          ("hier_layer0_max_delta", "hierarchy, layer 0: |layer input - embeddings|, max"),
          ("hier_upper_gain_input", "hierarchy, layers above: corr - control on the layer input"),
          ("hier_upper_gain_emb", "hierarchy, layers above: corr - control on the embeddings"),
          ("hier_upper_infeasible_emb", "hierarchy, layers above: share infeasible on the "
           "embeddings"), ("hier_upper_heads", "hierarchy, layers above: heads"),
          ("gap_top_layer", "top layer corr - control"), ("_ratio_", " margin ratio, "),
          ("_nearest_", " share of seeds nearest "),
          ("_corr_mean_ngd_grows", " mean corr where the norm of NGD's p grows"),
          ("_norm_stalled", " share of runs whose norm stalled"))
_START = (("multi_", "several-token runs: "),)
_END = (("_mean", ", mean"), ("_median", ", median"), ("_sd", ", sd"), ("_min", ", min"),
        ("_max", ", max"), ("_q25", ", 25% quantile"), ("_q75", ", 75% quantile"),
        ("_lo", ", 95% interval, low"), ("_hi", ", 95% interval, high"))


def headline_label(key: str) -> str:
    """A headline key of ``summary.json`` in words, for the report's tables.

    >>> headline_label("corr_nuc_KQ_official_mean")
    'corr with W_*^mm, (K,Q) with the official weight decay, mean'
    >>> headline_label("multi_one_minus_corr_dir_median")
    'several-token runs: 1 - corr with W^dir, median'
    >>> headline_label("min_max_prob_median")
    'min max prob, median'
    >>> headline_label("n1T3_local_gd_corr_mean"), headline_label("corr_svm_fin_min")
    ('n=1, T=3, local start, GD: corr, mean', 'corr with R W^svm + W^fin, min')
    >>> headline_label("adam1e-8_KQ_ratio_linf")
    'Adam (eps 1e-8) on (K,Q): margin ratio, max-norm'
    >>> print(headline_label("signum_seq_rand_slope_sqrt_lo"))
    Signum, per sequence, random order: slope of the gap vs log t, 95% interval, low
    """
    text, head, tail = key, "", ""
    run = RUN_KEY.match(text)
    if run:  # a geometry study's run: its words, then the rest of the key
        head, text = run_label(run.group(0)) + ": ", text[run.end():]
    prompt = _PROMPT_RUN.match(text)
    if prompt:  # prompt-paths: setting, start and optimizer
        n, T, start, opt = prompt.groups()
        head = f"n={n}, T={T}, {start} start, {'NGD' if opt == 'ngd' else 'GD'}: "
        text = "_" + text[prompt.end():]
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
    text = " ".join(_WORDS_OF_KEYS.get(w, w) for w in text.split())
    text = _SIZES.sub(_sizes, text)
    return " ".join(text.replace(" ,", ",").replace(",,", ",").strip(" ,").split())


#: Whole words of the headline keys, spelled out (after :data:`_INNER`).
_WORDS_OF_KEYS = {**{norm + c: NORM_LABELS[norm] + c for norm in ("fro", "nuc", "linf", "spec")
                     for c in ("", ",")},
                  "gd": "GD", "gd,": "GD,", "ngd": "NGD", "ngd,": "NGD,",
                  "md,": "mirror descent,", "polyak,": "Polyak,", "scc": "SCC", "svm": "SVM",
                  "rel": "relative", "diff": "difference", "fin": "W^fin",
                  "perp,": "orthogonal part,", "scs": "SCS", "tol1e-7,": "tol 1e-7,",
                  "emb": "embeddings"}
#: Sizes written together in a key (``n1T3``, ``T5``, ``d4``): ``n=1, T=3``.
_SIZES = re.compile(r"\b(?:[nTdK]\d+)+\b")


def _sizes(m: re.Match[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in re.findall(r"([nTdK])(\d+)", m.group(0)))


#: verdict -> (CSS class, mark) in the claims table
_MARKS = {True: ("pass", "\u2713 pass"), False: ("dev", "\u26a0 deviation"),
          None: ("study", "\u2014 measured")}


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
    lines.extend(f"skipped {name}: {why}" for name, why in summary.get("skipped", {}).items())
    return "\n".join(lines)


def write_report(out: str | Path, prov: dict[str, Any],
                 records: Sequence[dict[str, Any]] | None = None,
                 skipped: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``index.html`` (template ``templates/report.html``) and ``summary.json`` for the
    figure records in ``out``.

    ``skipped`` maps figures that were not run to why (a missing extra); the summary and the
    page say so.

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
    if skipped:
        summary["skipped"] = dict(skipped)
    write_json_atomic(out / "summary.json", summary)
    images = {r["name"]: png_data_uri(out / r["png"]) for r in recs if (out / r["png"]).exists()}
    doc = render_template("report.html", records=recs, provenance=prov, images=images,
                          skipped=dict(skipped or {}), new_studies=NEW_STUDIES, marks=_MARKS,
                          label=headline_label, fmt=_fmt)
    atomic_write_text(out / "index.html", doc)
    return summary
