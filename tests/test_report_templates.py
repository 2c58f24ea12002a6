"""The HTML pages come from autoescaped Jinja2 templates; figure texts are drawn as mathtext."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from attnsvm.experiments._common import new_figure, save_figure
from attnsvm.experiments.report import headline_label, write_report
from attnsvm.probe.report import TABLE_COLUMNS, write_html
from attnsvm.reporting import TEMPLATES, figure_png, render_template, write_json_atomic

_HOSTILE = "<script>alert('x')</script>"


def _record(name: str = "rank") -> dict:
    return {"name": name, "title": "a title", "source": "TF-SVM Fig. 1", "claim": _HOSTILE,
            "mode": "quick", "settings": {"seeds": 2, "label": "<b>"}, "config_key": "k",
            "seeds": [0, 1], "headline": {"corr_fro_W_mean": 0.98765, "runs": 3},
            "seconds": 1.25, "cells": 1, "cells_resumed": 0, "png": f"{name}.png",
            "csv": f"{name}.csv", "comparison": "same & better", "differences": "none",
            "takeaway": "what to see", "verdict": {"measured": "0.988", "passed": True,
                                                   "criterion": "corr >= 0.95"}}


def test_templates_ship_with_the_package() -> None:
    names = {p.name for p in TEMPLATES.glob("*.html")}
    assert {"report.html", "probe.html", "track.html"} <= names


def test_reproduce_report_escapes_and_keeps_its_content(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "data" / "rank.json", _record())
    summary = write_report(tmp_path, {"argv": ["attnsvm", "<x>"], "libraries": {"numpy": "2"}},
                           skipped={"heads-over-training": "needs the extra 'probe'"})
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert _HOSTILE not in page and "&lt;script&gt;" in page  # autoescaped, everywhere
    assert "<td>&lt;b&gt;</td>" in page and "&lt;x&gt;" in page
    claims = page[page.index("<table id='claims'>"):]
    claims = claims[:claims.index("</table>")]
    assert "href='#rank'" in claims and "\u2713 pass" in claims and "quick, 1.2 s" in claims
    assert "same &amp; better" in page and "What to see: what to see" in page  # no PNG here
    th = re.findall(r"<th title='([^']+)'>([^<]+)</th>", page)
    assert ("corr_fro_W_mean", headline_label("corr_fro_W_mean")) in th
    assert ">0.9877<" in page  # 4 significant digits in the tables
    assert "Not run: heads-over-training (needs the extra &#39;probe&#39;)" in page
    assert summary["skipped"] == {"heads-over-training": "needs the extra 'probe'"}


def test_undefined_names_are_errors() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render_template("track.html")


def test_probe_page_fits_and_shows_provenance_as_a_table(tmp_path: Path) -> None:
    fig, _ = new_figure()
    for name in ("heatmap.png", "max_prob.png"):
        (tmp_path / name).write_bytes(figure_png(fig))
    rec = {"layer": 0, "head": 1, "exact": False, "corr_fro": 0.5, "corr_control": 0.1,
           "feasible": True}
    summary = {"model": "m<1>", "family": "bert", "n_sequences": 2, "seq_len": 8,
               "layers": [0], "seconds": 1.0, "capture_seconds": 0.5, "heads": [rec],
               "notes": ["a & b"], "provenance": {"version": "0.1", "libraries":
                                                  {"torch": "2.13", "gguf": None},
                                                  "argv": ["attnsvm", "probe"]}}
    write_html(summary, tmp_path / "index.html")
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "img { max-width: 100%" in page and page.count("data:image/png;base64,") == 2
    assert "Att-SVM probe of m&lt;1&gt;" in page and "<li>a &amp; b</li>" in page
    prov = page[page.index("<h2>Provenance</h2>"):]
    assert "<table class=\"kv\">" in prov and "<th>torch</th><td>2.13</td>" in prov
    assert "<th>argv</th><td>attnsvm probe</td>" in prov and "<th>gguf</th><td>n/a</td>" in prov
    assert '<tr class="approx">' in page  # a head whose form is not exact
    header = re.search(r"<h2>Per head</h2>.*?<thead><tr>(.*?)</tr>", page, re.S)
    assert header and re.findall(r"<th>(\w+)</th>", header.group(1)) == TABLE_COLUMNS


def test_figure_texts_become_mathtext() -> None:
    fig, ax = new_figure()
    a = ax[0, 0]
    a.plot([0, 1], [0, 1], label="W_*^mm (nuclear)")
    a.plot([0, 1], [1, 0], label=r"$W^{mm}$ as it was")
    a.set(xlabel="1 - corr(p, p^mm)", ylabel="K Q^T", title="no symbol")
    a.legend()
    save_figure(fig, None, title="GD vs W^svm")
    assert a.get_xlabel() == "1 - corr(p, $p^{mm}$)" and a.get_ylabel() == "$KQ^T$"
    assert a.get_title() == "no symbol"
    labels = [t.get_text() for t in a.get_legend().get_texts()]
    assert labels == ["$W_*^{mm}$ (nuclear)", r"$W^{mm}$ as it was"]
    assert fig.get_suptitle() == "GD vs $W^{svm}$"
    figure_png(fig)  # mathtext that parses
