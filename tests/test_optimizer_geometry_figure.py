"""The optimizer-geometry figure's verdict tests every claim it prints."""

from __future__ import annotations

from attnsvm.experiments._labels import norm_label, run_label
from attnsvm.experiments.figures.optimizer_geometry import CLAIMS, NORMS
from attnsvm.experiments.registry import get_figure


def _headline(good: bool = True) -> dict[str, float]:
    h: dict[str, float] = {}
    for run, norm in CLAIMS.items():
        for k in NORMS:
            h[f"{run}_ratio_{k}"] = 0.95 if k == norm else 0.6
            h[f"{run}_nearest_{k}"] = 1.0 if k == norm else 0.0
    return h


def test_verdict_needs_every_claim():
    fig = get_figure("optimizer-geometry")
    cfg = fig.config()
    assert fig.verdict is not None
    assert fig.verdict(cfg, _headline()).passed is True
    for run, norm in CLAIMS.items():
        h = _headline()
        h[f"{run}_nearest_{norm}"] = 0.5           # nearest in too few seeds
        assert fig.verdict(cfg, h).passed is False
        h = _headline()
        h[f"{run}_ratio_{norm}"] = 0.85            # nearest, but far from the max margin
        assert fig.verdict(cfg, h).passed is False
    v = fig.verdict(cfg, _headline())
    assert all(f"{run_label(run)} -> {norm_label(k)}" in v.measured  # in words
               for run, k in CLAIMS.items())
