"""The mini-batch geometry study's verdict and the fitted margin-gap rates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from attnsvm.experiments._labels import norm_label, run_label
from attnsvm.experiments.figures._margin_rates import fit_rates, seed_slopes
from attnsvm.experiments.figures.minibatch_geometry import CLAIMS
from attnsvm.experiments.figures.optimizer_geometry import NORMS
from attnsvm.experiments.registry import get_figure


def test_slopes_recover_power_and_log_laws():
    t = np.array([5, 10, 20, 50, 100, 200, 500, 1000, 2000])
    s = seed_slopes(t, 3.0 / np.sqrt(t))
    assert abs(s["sqrt"] + 0.5) < 1e-12                 # exact power law: slope -1/2
    s = seed_slopes(t, 2.0 / np.log(t))
    assert abs(s["log"] + 1.0) < 1e-12                  # exact 1/log t: slope -1 vs log log t
    few = np.array([100, 1000, 2000])   # two points in the last decade: no fit
    assert np.isnan(seed_slopes(few, 1 / few)["sqrt"])


def test_fit_rates_interval_covers_the_true_slope_and_excludes_the_other():
    rng = np.random.default_rng(0)
    t = np.array([100, 200, 300, 500, 700, 1000])
    rows = [{"run": "a", "seed": s, "step": int(k), "ratio_fro": 1 - c * k ** -0.5}
            for s, c in enumerate(rng.uniform(0.5, 2, 8)) for k in t]
    # noise-free per seed: every seed's slope is -1/2, so the interval is the point -1/2
    h = fit_rates(pd.DataFrame(rows), {"a": "fro"})
    assert abs(h["a_slope_sqrt"] + 0.5) < 1e-10 and abs(h["a_slope_sqrt_hi"] + 0.5) < 1e-10
    noisy = [{**r, "ratio_fro": 1 - (1 - r["ratio_fro"]) * np.exp(0.05 * rng.standard_normal())}
             for r in rows]
    h = fit_rates(pd.DataFrame(noisy), {"a": "fro"})
    assert h["a_slope_sqrt_lo"] <= -0.5 <= h["a_slope_sqrt_hi"] and h["a_consistent_sqrt"]
    assert h["a_rate_norm"] == "fro" and abs(h["a_gap"] - np.mean(
        [1 - r["ratio_fro"] for r in noisy if r["step"] == 1000])) < 1e-12


def _headline() -> dict:
    h: dict = {}
    for run, norm in CLAIMS.items():
        for k in NORMS:
            h[f"{run}_ratio_{k}"] = 0.95 if k == norm else 0.6
            h[f"{run}_nearest_{k}"] = 1.0 if k == norm else 0.0
    return h


def test_minibatch_verdict_needs_every_claim():
    fig = get_figure("minibatch-geometry")
    cfg = fig.config()
    assert fig.verdict is not None and fig.verdict(cfg, _headline()).passed is True
    for run, norm in CLAIMS.items():
        h = _headline()
        h[f"{run}_nearest_{norm}"] = 0.5
        assert fig.verdict(cfg, h).passed is False
        h = _headline()
        h[f"{run}_ratio_{norm}"] = 0.85
        assert fig.verdict(cfg, h).passed is False
    v = fig.verdict(cfg, _headline())
    assert all(f"{run_label(run)} -> {norm_label(k)}" in v.measured  # in words
               for run, k in CLAIMS.items())
    assert "Adam, per sequence (measured)" in v.measured
