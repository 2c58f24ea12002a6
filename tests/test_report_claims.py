"""The report says no more than it measured: each verdict fails when a part of its claim
fails and then says why; spread beside the means of several seeds; human labels and legends
that cover no data in the geometry, prompt-path and training figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnsvm.experiments import get_figure, run_figure
from attnsvm.experiments._common import legend_overlaps
from attnsvm.experiments._labels import norm_label, run_label
from attnsvm.experiments.report import headline_label


def _verdict(name: str, h: dict[str, Any], quick: bool = True) -> Any:
    fig = get_figure(name)
    cfg = fig.config().quick_variant() if quick else fig.config()
    assert fig.verdict is not None
    return fig.verdict(cfg, h)


def _prompt_headline(local_stay: float = 1.0, ngd: float = 0.999, gd: float = 0.96) -> dict:
    h: dict[str, Any] = {}
    for size in ("n1T3", "n3T7"):
        for start, opt, corr in (("random", "ngd", ngd), ("random", "gd", gd),
                                 ("local", "ngd", 1.0), ("local", "gd", 1.0)):
            key = f"{size}_{start}_{opt}"
            h[f"{key}_corr_mean"], h[f"{key}_runs"] = corr, 4
            h[f"{key}_ends_at_target"] = local_stay if start == "local" else 1.0
            h[f"{key}_corr_sd"], h[f"{key}_corr_min"] = 0.01, corr - 0.02
            if opt == "ngd":
                h[f"{key}_norm_stalled"] = 0.25
            if start == "random":
                h[f"{key}_corr_mean_ngd_grows"] = 0.999 if opt == "ngd" else 0.96
    return h


def test_prompt_paths_verdict_tests_every_part_and_says_why() -> None:
    ok = _verdict("prompt-paths", _prompt_headline())
    assert ok.passed and ok.why == ""
    assert "(sd 0.010, min 0.979, 4 runs)" in ok.measured  # spread beside each mean
    left = _verdict("prompt-paths", _prompt_headline(local_stay=0.5))
    assert left.passed is False and "leave beta" in left.why and "50%" in left.why
    slow = _verdict("prompt-paths", _prompt_headline(ngd=0.97, gd=0.975))
    assert slow.passed is False
    assert "not above plain GD's 0.975" in slow.why and "25% of its runs nearly stopped" in slow.why
    assert "NGD averages 0.999 against plain GD's 0.960" in slow.why


def test_prompt_paths_reports_spread_and_draws_bands(tmp_path: Path) -> None:
    res = run_figure("prompt-paths", tmp_path, quick=True, progress=False,
                     overrides={"seeds": 2, "chunk": 2, "steps": 40,
                                "settings": ((1, 3, 3),)})
    h, df = res.headline, res.data
    last = df[(df["step"] == df["step"].max()) & (df["start"] == "random")
              & (df["optimizer"] == "ngd")]
    assert h["n1T3_random_ngd_corr_sd"] == pytest.approx(last["corr_target"].std(ddof=1))
    assert h["n1T3_random_ngd_corr_min"] == pytest.approx(last["corr_target"].min())
    assert 0.0 <= h["n1T3_random_ngd_norm_stalled"] <= 1.0
    ax = res.figure.axes[0]
    assert ax.collections, "no 25-75% band on the alignment panel"
    assert ax.get_legend() is None and res.figure.axes[1].get_legend() is not None


def test_prompt_paths_stall_test_reads_the_norm_growth() -> None:
    import pandas as pd

    from attnsvm.experiments.figures.prompt_paths import _stalled

    steps = np.arange(0, 101, 10)
    grows = pd.DataFrame({"seed": 0, "step": steps, "norm": 0.1 * steps + 1.0})
    stops = pd.DataFrame({"seed": 1, "step": steps, "norm": np.minimum(0.1 * steps, 2.0)})
    out = _stalled(pd.concat([grows, stops]), lr=0.1)
    assert not out[0] and out[1]


@pytest.mark.parametrize("name", ["optimizer-geometry", "minibatch-geometry"])
def test_geometry_verdict_says_why_a_claim_fails(name: str) -> None:
    fig = get_figure(name)
    cfg = fig.config().quick_variant()
    claims = __import__(fig.run_cell.__module__, fromlist=["CLAIMS"]).CLAIMS
    h: dict[str, Any] = {"steps": 200, "seeds": 3}
    for run, k in claims.items():
        h[f"{run}_nearest_{k}"], h[f"{run}_ratio_{k}"] = 1.0, 0.95
        h[f"{run}_rate_norm"], h[f"{run}_slope_sqrt"], h[f"{run}_slope_sqrt_hi"] = k, -1.0, -0.5
    v = fig.verdict(cfg, h)
    assert v.passed and v.why == ""
    run, k = next(iter(claims.items()))
    h[f"{run}_ratio_{k}"] = 0.5
    v = fig.verdict(cfg, h)
    assert v.passed is False
    assert v.why.startswith(f"{run_label(run)} -> {norm_label(k)}: mean ratio 0.500")
    assert "still shrinking" in v.why and "too few steps" in v.why
    h[f"{run}_slope_sqrt_hi"] = 0.3
    assert "not measurably shrinking" in fig.verdict(cfg, h).why
    assert "_" not in v.measured.split(":")[0]  # human run labels, no snake_case keys


def test_quick_deviations_say_why() -> None:
    """paths-2d, optimizer-rates and rope: the part that fails, with what was measured."""
    paths = {"corr_T3_KQ_mean": 0.777, "corr_T3_KQ_min": 0.115, "corr_T3_KQ_runs": 4,
             "corr_T3_KQ_sd": 0.44, "corr_T3_W_mean": 0.99, "corr_T3_W_min": 0.98,
             "corr_T3_W_runs": 4, "corr_T3_W_sd": 0.01}
    v = _verdict("paths-2d", paths)
    assert v.passed is False and "T=3 (K,Q)" in v.why and "0.998" in v.why  # (3.108-.115)/3
    rates = {f"{o}_{p}_one_minus_corr_mean": g for o, g in
             (("gd", 0.3), ("ngd", 0.03), ("polyak", 0.01), ("md", 0.19)) for p in ("W", "KQ")}
    rates["md_W_loglog_slope"] = -0.29
    v = _verdict("optimizer-rates", rates)
    assert v.passed is False and "mirror descent" in v.why and "-0.290" in v.why
    assert "NGD" not in v.why  # only the failing part is named
    rope = {"runs": 2, "lifted_corr_fro_mean": 1.0, "lifted_corr_nuc_mean": 0.75,
            "factors_corr_nuc_mean": 0.94, "factors_corr_fro_mean": 0.73,
            "factors_still_rising": 1.0, "lifted_still_rising": 1.0}
    for p in ("lifted", "factors"):
        for t in ("fro", "nuc"):
            rope[f"{p}_corr_{t}_min"] = rope[f"{p}_corr_{t}_max"] = rope[f"{p}_corr_{t}_mean"]
    v = _verdict("rope", rope)
    assert v.passed is False and v.why.startswith("factors:") and "100%" in v.why


def test_runner_never_leaves_a_deviation_unexplained() -> None:
    from attnsvm.experiments.registry import Verdict
    from attnsvm.experiments.runner import _why

    assert _why(Verdict("m", True, "c")) == "" and _why(Verdict("m", None, "c")) == ""
    assert _why(Verdict("m", False, "c", "because")) == "because"
    assert "no further diagnosis" in _why(Verdict("m", False, "c"))


def test_headline_labels_of_the_geometry_and_training_studies_are_words() -> None:
    keys = ["ngd_W_ratio_linf", "adam1e-16_W_nearest_spec", "signum99_seq_slope_log_hi",
            "adam_seq_eps_rate_norm", "muon_KQ_consistent_sqrt", "hier_layer0_max_delta",
            "hier_upper_gain_emb", "gap_top_layer_final_mean", "n3T7_local_ngd_norm_stalled"]
    for k in keys:
        label = headline_label(k)
        assert "_" not in label and "linf" not in label and "spec " not in label, label
    assert headline_label("ngd_W_ratio_linf") == "NGD on W: margin ratio, max-norm"


_OG_RUNS = (("ngd_W", "ngd", "W", 0.1, 0.0), ("adam1e-8_W", "adam", "W", 0.01, 1e-8),
            ("ngd_KQ", "ngd", "KQ", 0.1, 0.0))
_MB_RUNS = (("signum_full", "signum", 0, "cyclic", 0.01, 0.0, 0.9, 0.999),
            ("adam_seq_rand", "adam", 1, "random", 0.01, 0.0, 0.9, 0.999))


@pytest.mark.parametrize("name,overrides", [
    ("optimizer-geometry", {"seeds": 2, "chunk": 2, "checkpoints": (10, 20, 40),
                            "runs": _OG_RUNS}),
    ("minibatch-geometry", {"seeds": 2, "chunk": 2, "checkpoints": (10, 20, 40),
                            "runs": _MB_RUNS}),
])
def test_geometry_legends_cover_no_data_and_read_in_words(
        name: str, overrides: dict, tmp_path: Path) -> None:
    res = run_figure(name, tmp_path, quick=True, progress=False, overrides=overrides)
    fig = res.figure
    assert legend_overlaps(fig) == []
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    texts += [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    texts += [ax.get_title() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]
    assert texts and not [t for t in texts if "_" in t and "$" not in t]
    assert "NGD" in texts or "Signum, full batch" in texts
    assert not any(math.isnan(float(v)) for v in [res.headline["seeds"]])


def test_solve_summary_keeps_local_optimality_a_frobenius_notion() -> None:
    """``solve --norm nuc`` does not call its answer locally optimal: local optimality is
    TF-SVM's test of the token choice on the Frobenius Att-SVM, printed on its own line."""
    from attnsvm.instance import random_instance
    from attnsvm.report_solve import solve_report

    inst = random_instance(3, 4, 4, seed=0)
    fro = solve_report(inst, "fro").text().splitlines()
    nuc = solve_report(inst, "nuc").text().splitlines()
    assert "locally optimal: yes" in fro[0]
    assert "locally optimal" not in nuc[0] and nuc[0].startswith("optimal: ||W||_nuc")
    assert nuc[1] == ("token choice locally optimal (TF-SVM's test on the Frobenius Att-SVM "
                      "of these tokens): yes")


def test_several_seed_figures_give_the_sd_beside_the_min():
    import pandas as pd

    from attnsvm.experiments._common import sd
    from attnsvm.experiments.figures import losses

    c = np.array([0.91, 0.99, 0.97, np.nan])
    want = np.std(c[:3], ddof=1)
    assert sd(c) == pytest.approx(want, rel=1e-12)
    assert np.isnan(sd([0.5]))
    cfg = losses.LossesConfig()
    df = pd.concat([pd.DataFrame({"step": 10, "loss": lo, "corr_p": c, "global": True,
                                  "feasible": True}) for lo in cfg.losses])
    h = losses.summarize(cfg, df)
    for lo in cfg.losses:
        assert h[f"corr_p_{lo}_sd"] == pytest.approx(want, rel=1e-12)
        assert h[f"corr_p_{lo}_min"] == pytest.approx(0.91)
    assert losses.verdict(cfg, h).measured.count("sd ") == len(cfg.losses)
