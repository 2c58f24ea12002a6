"""Every figure runs in the default test run (tiny settings) and reads well.

Each figure is swept, summarised, plotted and written; the matplotlib ``Figure`` its ``plot``
returns is inspected as objects (no pixels): every axes has labels, every labelled curve is in
a visible, readable legend, coinciding curves stay distinguishable, the figure carries its
one-sentence takeaway; its prose prints formatted numbers and its verdict is decided by its own
headline numbers.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure as MplFigure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D

from attnsvm.experiments._common import legend_overlaps, mathtext
from attnsvm.experiments.registry import Verdict, figure_names, get_figure
from attnsvm.experiments.report import write_report
from attnsvm.experiments.runner import run_figure
from attnsvm.reporting import provenance, write_json_atomic

#: Settings small enough for the default run (seconds per figure), still exercising every
#: branch of the plots (several settings, both parametrizations, local and random starts).
TINY: dict[str, dict[str, Any]] = {
    "local-convergence": {"seeds": 2, "chunk": 2, "steps": 60},
    "rank": {"ns": (4,), "Ts": (4,), "n_fixed": 4, "T_fixed": 4, "ds": (2, 4), "seeds": 2,
             "chunk": 2},
    "multi-token": {"seeds": 4, "chunk": 4, "ds": (4,), "steps": 150},
    "paths-2d": {},  # --quick itself (4 seeds, 300 steps): the failure case below needs it
    "prompt-paths": {"seeds": 2, "chunk": 2, "steps": 60, "settings": ((1, 3, 3), (2, 4, 3))},
    "joint-vp": {"seeds": 2, "chunk": 2, "steps": 60},
    "losses": {"seeds": 2, "chunk": 2, "steps": 60},
    "convergence-types": {"seeds": 2, "chunk": 2, "ns": (2,), "ds": (2, 4), "steps": 60},
    "optimizer-rates": {"seeds": 2, "chunk": 2, "steps": 60},
    "optimizer-geometry": {"seeds": 2, "chunk": 2, "checkpoints": (10, 20, 40, 60)},
    "minibatch-geometry": {"seeds": 2, "chunk": 2, "checkpoints": (10, 20, 40, 60)},
    "numerics": {"seeds": 1, "chunk": 1, "steps": 120},
    "regularization-path": {"seeds": 2, "chunk": 2, "radii": (1.0, 4.0),
                            "steps_per_radius": 30, "gd_steps": 60},
    "ntp-acyclic": {"seeds": 1, "chunk": 1, "steps": 300},
    "ntp-cyclic": {"seeds": 1, "chunk": 1, "steps": 300},
    "ntp-local": {"seeds": 1, "chunk": 1, "steps": 200},
    "rope": {"seeds": 1, "chunk": 1, "steps": 200},
}

RAW_FLOAT = re.compile(r"\d\.\d{7,}")          # e.g. 5.190476190476191
BAD_PLURAL = re.compile(r"(?<![\d.])1 (cells|runs|instances|seeds)\b")


_CACHE: dict[str, tuple[Any, MplFigure, Path]] = {}


def _run(name: str, factory: pytest.TempPathFactory) -> tuple[Any, MplFigure, Path]:
    """Run a figure once per test session (tiny settings): result, drawing, report folder."""
    if name not in _CACHE:
        out = factory.mktemp(name)
        res = run_figure(name, out, quick=True, overrides=TINY.get(name) or None,
                         progress=False)
        assert isinstance(res.figure, MplFigure), f"{name}: plot must return its Figure"
        _CACHE[name] = (res, res.figure, out)
    return _CACHE[name]


def _labelled_lines(ax: Any) -> list[Line2D]:
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def _check_axes(name: str, fig: MplFigure) -> None:
    axes = [a for a in fig.axes if a.get_visible() and a.has_data()]
    assert axes, f"{name}: nothing drawn"
    twins = {id(b) for a, b in itertools.combinations(fig.axes, 2)
             if a.get_position().bounds == b.get_position().bounds}
    for ax in axes:
        where = f"{name}, axes '{ax.get_title()}'"
        assert ax.get_ylabel().strip(), f"{where}: no y label"
        if id(ax) not in twins:
            assert ax.get_xlabel().strip(), f"{where}: no x label"
        labelled = _labelled_lines(ax) + [c for c in ax.collections + ax.patches
                                          if not str(c.get_label()).startswith("_")]
        leg = ax.get_legend()
        # every labelled curve is named in a legend: its own axes', a neighbour's (drawn
        # outside the axes so that it covers no data) or the figure's
        legends = [*fig.legends, *(c for a in fig.axes for c in a.get_children()
                                   if isinstance(c, Legend))]
        named = {t.get_text() for lg in legends if lg.get_visible() for t in lg.get_texts()}
        missing = [str(c.get_label()) for c in labelled
                   if not {str(c.get_label()), mathtext(str(c.get_label()))} & named]
        assert not missing, f"{where}: curves without a legend: {missing}"
        if leg is not None:
            sizes = [t.get_fontsize() for t in leg.get_texts()]
            assert sizes and min(sizes) >= 7, f"{where}: legend text {min(sizes)} pt"
        # Curves that coincide must differ in marker, dash pattern or width.
        lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]
        for a, b in itertools.combinations(lines, 2):
            xa, ya = np.asarray(a.get_xdata(), float), np.asarray(a.get_ydata(), float)
            xb, yb = np.asarray(b.get_xdata(), float), np.asarray(b.get_ydata(), float)
            if xa.shape == xb.shape and np.allclose(xa, xb) and np.allclose(
                    ya, yb, rtol=1e-3, equal_nan=True):
                look_a = (a.get_marker(), str(a.get_linestyle()), a.get_linewidth())
                look_b = (b.get_marker(), str(b.get_linestyle()), b.get_linewidth())
                assert look_a != look_b, f"{where}: '{a.get_label()}' hides '{b.get_label()}'"


@pytest.mark.parametrize("name", figure_names())
def test_figure_runs_plots_and_reads_well(name: str,
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    res, fig, out = _run(name, tmp_path_factory)
    spec = get_figure(name)
    _check_axes(name, fig)
    assert legend_overlaps(fig) == [], f"{name}: a legend covers data points"
    # The takeaway is one sentence (drawn as the caption).
    assert spec.takeaway.endswith(".") and len(spec.takeaway) < 300
    assert not re.search(r"[.!?] +[A-Z]", spec.takeaway), "more than one sentence"
    drawn = mathtext(spec.takeaway)  # the caption's symbols as mathtext ($W^{mm}$)
    assert any(drawn[:40] in t.get_text().replace("\n", " ") for t in fig.texts)
    # The PNG, CSV and record are written; the record carries the verdict.
    assert (out / f"{name}.png").stat().st_size > 5000
    rec = json.loads((out / "data" / f"{name}.json").read_text())
    assert rec["takeaway"] == spec.takeaway
    assert spec.verdict is not None
    v = spec.verdict(res.config, res.headline)
    assert isinstance(v, Verdict) and v.measured and v.criterion
    assert {k: rec["verdict"][k] for k in ("measured", "passed", "criterion")} == {
        "measured": v.measured, "passed": v.passed, "criterion": v.criterion}
    # a deviation always says why (the figure's own diagnosis where it has one), a pass never
    assert bool(rec["verdict"]["why"]) == (v.passed is False)
    if v.passed is False and v.why:
        assert rec["verdict"]["why"] == v.why
    # Prose: numbers formatted, plurals right.
    prose = " ".join([rec["comparison"], rec["differences"], v.measured, v.criterion])
    assert not RAW_FLOAT.search(prose), RAW_FLOAT.search(prose)
    assert not BAD_PLURAL.search(prose), BAD_PLURAL.search(prose)


def test_verdicts_follow_the_numbers() -> None:
    """The pass/deviation mark is decided by the headline numbers against the criterion."""
    lc = get_figure("local-convergence")
    cfg = lc.config().quick_variant()
    good = {"corr_fro_W_mean": 0.99, "corr_nuc_KQ_mean": 0.97, "corr_nuc_KQ_official_mean": 0.98,
            "prob_W_mean": 0.999, "prob_KQ_mean": 1.0}
    assert lc.verdict is not None and lc.verdict(cfg, good).passed is True
    # the claim includes "the selected token's probability tends to 1"
    assert lc.verdict(cfg, {**good, "prob_KQ_mean": 0.9}).passed is False
    assert lc.verdict(cfg, {**good, "corr_nuc_KQ_mean": 0.92}).passed is False
    assert lc.verdict(cfg, {**good, "corr_fro_W_mean": None}).passed is False
    mt = get_figure("multi-token")
    h = {"one_minus_corr_svmeq_median": 1e-3, "one_minus_corr_dir_median": 2e-3,
         "one_minus_corr_mm_median": 5e-3, "accepted": 1, "accepted_multi_token": 1,
         "multi_one_minus_corr_svmeq_median": 0.05, "multi_one_minus_corr_dir_median": 0.1,
         "multi_one_minus_corr_mm_median": 0.08}
    assert mt.verdict is not None
    v = mt.verdict(mt.config(), h)
    assert v.passed is True and "1 accepted run)" in v.measured
    assert mt.verdict(mt.config(), {**h, "one_minus_corr_mm_median": 1e-4}).passed is False
    # "beats W^dir": equal values do not pass, nor does W^mm beating W^svmeq on multi runs
    assert mt.verdict(mt.config(), {**h, "multi_one_minus_corr_dir_median": 0.05}).passed is False
    assert mt.verdict(mt.config(), {**h, "multi_one_minus_corr_mm_median": 0.04}).passed is False
    assert mt.verdict(mt.config(), {**h, "accepted_multi_token": 0}).passed is False
    ct = get_figure("convergence-types")
    assert ct.verdict is not None
    assert ct.verdict(ct.config(), {"share_global": .5, "share_local": .25,
                                    "share_other": .25, "runs": 4}).passed is None


def test_report_opens_with_the_claims_table(tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("report")
    for name in ("rank", "multi-token"):
        res, _, _ = _run(name, tmp_path_factory)
        write_json_atomic(out / "data" / f"{name}.json", res.record)
    summary = write_report(out, provenance(test=True))
    html = (out / "index.html").read_text(encoding="utf-8")
    first = html.index("<table id='claims'>")
    assert first < html.index("<section")  # the first thing after the heading
    claims = html[first:html.index("</table>", first)]
    for name in ("rank", "multi-token"):
        rec = summary["figures"][name]
        assert f"href='#{name}'" in claims and rec["verdict"]["measured"] in claims
        mark = {True: "pass", False: "deviation", None: "measured"}[rec["verdict"]["passed"]]
        assert mark in claims
    assert "What to see:" in html  # no PNG in this folder: the caption is written out
    assert not re.search(r"\b1 cells\b", html)
    # with its PNG the caption is the figure's own, given once (and as the image's alt text)
    import html as html_lib
    import shutil

    res, _, src = _run("rank", tmp_path_factory)
    shutil.copy(src / "rank.png", out / "rank.png")
    write_report(out, provenance(test=True))
    page = (out / "index.html").read_text(encoding="utf-8")
    section = page[page.index("<section id=\"rank\">"):]
    section = section[:section.index("</section>")]
    assert "What to see:" not in section and "<figure><img alt=" in section
    assert section.count(html_lib.escape(res.record["takeaway"])) == 1
    # headline numbers in words, the key as the tooltip
    table = section.split("<h3>Headline numbers</h3>")[1].split("</table>")[0]
    labels = re.findall(r"<th title='([^']+)'>([^<]+)</th>", table)
    assert labels and all(key != label for key, label in labels if "_" in key)


def test_paths_2d_separates_the_setting_from_failures(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The T=3 (K,Q) run of seed 0 ends at the optimal tokens yet far from W_*^mm: it is drawn
    as a labelled failure (rank-1 limit), never as the instance showing the theorem."""
    from attnsvm.experiments.figures.paths_2d import diagnose, setting_holds

    res, fig, _ = _run("paths-2d", tmp_path_factory)  # --quick: 4 seeds, 300 steps
    cfg, df = res.config, res.data
    final = df[(df["step"] == df["step"].max()) & (df["seq"] == 0)]
    row = final[(final["T"] == 3) & (final["param"] == "KQ") & (final["seed"] == 0)].iloc[0]
    assert row["corr"] < 0.5
    assert setting_holds(cfg, df, 3, "KQ", 0)  # the hypotheses hold; the conclusion fails
    assert "rank 1" in diagnose(cfg, df, 3, "KQ", 0)
    titles = [a.get_title() for a in fig.axes]
    top, bottom = titles[:4], titles[4:]
    assert all("setting holds" in t for t in top)
    assert any(t.startswith("FAILURE CASE: seed 0") and "rank 1" in t for t in bottom)
    assert not any("seed 0;" in t for t in top[1:2])


def test_figures_leave_the_matplotlib_backend_and_pyplot_alone(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Drawing a figure neither switches the process-wide backend nor registers pyplot
    figures (the earlier code called matplotlib.use("Agg") and plt.subplots)."""
    import matplotlib
    import matplotlib.pyplot as plt

    res, _, _ = _run("losses", tmp_path_factory)
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # the user's choice, e.g. a notebook's
    try:
        n_open = len(plt.get_fignums())
        drawn = get_figure("losses").plot(res.config, res.data, tmp_path / "x.png")
        assert matplotlib.get_backend() == "svg"
        assert len(plt.get_fignums()) == n_open
        assert isinstance(drawn, MplFigure)
        assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)


def test_prompt_paths_local_rise_is_the_bounded_finite_part(tmp_path: Path) -> None:
    """Why local-start 1 - corr curves rise (the figure's explanation, checked): p(k) =
    R(k) p^mm_beta / ||p^mm_beta|| + p_fin + o(1) with p_fin bounded, so
    1 - corr ~ ||P p_fin||^2 / (2 R^2): (1 - corr) ||p||^2 settles to a constant while
    1 - corr itself rises from 0 at the start on p^mm_beta and then falls as ||p|| grows."""
    res = run_figure("prompt-paths", tmp_path, quick=True, progress=False,
                     overrides={"settings": ((3, 7, 3),), "seed0": 1, "seeds": 2, "chunk": 2,
                                "steps": 1200})
    df = res.data
    runs = df[(df["start"] == "local") & (df["optimizer"] == "ngd")]
    stays = runs.groupby("seed")["ends_at_target"].transform("last").astype(bool)
    checked = 0
    for _, h in runs[stays].groupby("seed"):
        h = h.sort_values("step")
        gap = (1 - h["corr_target"]).to_numpy()
        norm = h["norm"].to_numpy()
        assert gap[0] < 1e-12  # starts exactly on p^mm_beta
        assert gap.max() > 100 * max(gap[0], 1e-15) and gap[-1] < gap.max() / 10  # rise, fall
        late = (gap * norm**2)[h["step"].to_numpy() >= 600]
        assert norm[-1] > 10 * norm[0] and np.ptp(late) < 0.05 * late.mean()  # ~ C / R^2
        checked += 1
    assert checked >= 1
