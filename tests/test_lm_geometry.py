"""track --geometry: the max-norm and spectral Att-SVMs of a probed head, from the probe's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from attnsvm.lm import PretrainConfig, TrackOptions, pretrain, track  # noqa: E402
from attnsvm.lm.geometry import GEOMETRY_FIELDS, geometry_fields, head_constraints  # noqa: E402
from attnsvm.svm import solve  # noqa: E402

TINY = dict(task="induction", layers=1, heads=2, d_model=8, steps=6, checkpoints=1, batch=8,
            vocab=8, segment=3, noise=2)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("geo")
    pretrain(PretrainConfig(positions="learned", **TINY), base / "run")  # type: ignore[arg-type]
    res = track([base / "run" / "step-000006"], TrackOptions(nuclear=False, geometry=True),
                base / "t")
    cache = next((base / "t" / "checkpoints").iterdir())
    return cache, res.summary


def test_rebuilt_constraints_are_the_probes(tracked: tuple[Path, dict]) -> None:
    """The Frobenius Att-SVM of the rebuilt constraints has the probe's optimum, and the head's
    margin ratio is the probe's: the rebuild is the probe's instance."""
    cache, s = tracked
    for rec in s["checkpoints"][0]["heads"]:
        cs, W_h, arr = head_constraints(cache, rec["layer"], rec["head"])  # type: ignore[misc]
        assert cs.m == rec["m"]
        np.testing.assert_allclose(cs.values(W_h).min() > 0, rec["margin_ratio"] > 0)
        if rec["feasible"]:
            sol = solve(cs, "fro")
            assert sol.objective == pytest.approx(rec["objective"], rel=1e-7)
            ratio = sol.objective * cs.values(W_h).min() / np.linalg.norm(W_h)
            assert ratio == pytest.approx(rec["margin_ratio"], rel=1e-6)


def test_linf_and_spec_fields_are_certified_optima(tracked: tuple[Path, dict]) -> None:
    """Each used answer is feasible, its margin ratio is at most 1 for the head and exactly 1
    for the optimum itself; the max-norm optimum agrees with an LP solved by SciPy's HiGHS."""
    from scipy.optimize import linprog

    cache, s = tracked
    for rec in s["checkpoints"][0]["heads"]:
        assert set(GEOMETRY_FIELDS) <= set(rec)
        if not rec["feasible"]:
            continue
        cs, W_h, _ = head_constraints(cache, rec["layer"], rec["head"])  # type: ignore[misc]
        for nm in ("linf", "spec"):
            if rec[f"corr_{nm}"] is None:
                assert rec[f"gap_{nm}"] is None or rec[f"gap_{nm}"] > 1e-3
                continue
            assert rec[f"gap_{nm}"] <= 1e-3
            assert -1.0 <= rec[f"corr_{nm}"] <= 1.0
            assert rec[f"margin_ratio_{nm}"] <= 1.0 + 1e-9
        # max-norm LP: min t s.t. -t <= W_ij <= t, <W, a_k z_k^T> >= 1
        d1, d2 = cs.A.shape[1], cs.Zc.shape[1]
        G = np.einsum("mi,mj->mij", cs.A, cs.Zc).reshape(cs.m, -1)
        n = d1 * d2
        c = np.zeros(n + 1)
        c[-1] = 1.0
        ub = np.vstack([np.hstack([-G, np.zeros((cs.m, 1))]),
                        np.hstack([np.eye(n), -np.ones((n, 1))]),
                        np.hstack([-np.eye(n), -np.ones((n, 1))])])
        rhs = np.concatenate([-np.ones(cs.m), np.zeros(2 * n)])
        lp = linprog(c, A_ub=ub, b_ub=rhs, bounds=[(None, None)] * (n + 1), method="highs")
        sol = solve(cs, "linf", method="highs")
        assert sol.objective == pytest.approx(lp.fun, rel=1e-6)
        assert cs.values(sol.W).min() >= 1 - 1e-7
        if rec["margin_ratio_linf"] is not None:
            want = lp.fun * cs.values(W_h).min() / np.abs(W_h).max()
            assert rec["margin_ratio_linf"] == pytest.approx(want, rel=1e-5)


def test_rotary_heads_are_not_analysed(tmp_path: Path) -> None:
    pretrain(PretrainConfig(positions="rope", **TINY), tmp_path / "run")  # type: ignore[arg-type]
    track([tmp_path / "run" / "step-000006"], TrackOptions(nuclear=False), tmp_path / "t")
    cache = next((tmp_path / "t" / "checkpoints").iterdir())
    assert head_constraints(cache, 0, 0) is None
    assert all(v is None for v in geometry_fields(cache, 0, [0, 1], 0).values())


def test_spec_clarabel_agrees_with_the_interior_point(tracked: tuple[Path, dict]) -> None:
    """The fallback (cvxpy + Clarabel, certified by its multipliers) and the project's
    spectral interior point give the same optimum where the latter certifies."""
    from attnsvm.lm.geometry import spec_clarabel

    cache, s = tracked
    rec = next(r for r in s["checkpoints"][0]["heads"] if r["feasible"])
    cs, _, _ = head_constraints(cache, rec["layer"], rec["head"])  # type: ignore[misc]
    ipm = solve(cs, "spec")
    assert ipm.info["certified_gap"] <= 1e-6
    W, obj, gap = spec_clarabel(cs)
    assert W is not None and gap <= 1e-4
    assert cs.values(W).min() >= 1 - 1e-9  # feasible (scaled)
    assert obj == pytest.approx(ipm.objective, rel=1e-4)
    assert np.linalg.norm(W, 2) == pytest.approx(obj)
