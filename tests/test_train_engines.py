"""The NumPy engine equals the torch engine; settings, threads, progress and size limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnsvm.exceptions import InvalidParameterError
from attnsvm.instance import random_instance
from attnsvm.train import PARAMETRIZATIONS, PARAMS, TrainConfig, train
from attnsvm.train.config import MAX_STEPS


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("param", ["W", "KQ"])
@pytest.mark.parametrize("opt", ["gd", "ngd", "polyak", "md"])
def test_numpy_engine_same_iterates_as_torch(param, opt):
    insts = [random_instance(4, 5, 6, seed=s) for s in range(3)]
    steps = 3 if opt == "polyak" else 150  # Polyak's long steps amplify rounding
    kw = {"param": param, "optimizer": opt, "steps": steps, "seed": 5, "record_every": 50,
          "m": 4 if param == "KQ" else None}
    fast = train(insts, backend="numpy", **kw)
    ref = train(insts, backend="torch", **kw)
    assert fast.backend == "numpy" and ref.backend == "torch"
    assert _rel(fast.W, ref.W) < 1e-11
    np.testing.assert_array_equal(fast.selected, ref.selected)
    np.testing.assert_allclose(fast.loss_history, ref.loss_history, rtol=1e-12)
    np.testing.assert_allclose(fast.history["norm"], ref.history["norm"], rtol=1e-11)


@pytest.mark.parametrize("loss", ["exponential", "correlation"])
def test_numpy_engine_losses_and_kq_eps(loss):
    inst = random_instance(3, 4, 5, seed=2)
    for kw in ({"param": "W"}, {"param": "KQ", "kq_eps": 1e-3}):
        fast = train(inst, backend="numpy", loss=loss, steps=30, init_scale=0.5, **kw)
        ref = train(inst, backend="torch", loss=loss, steps=30, init_scale=0.5, **kw)
        assert _rel(fast.W, ref.W) < 1e-12


def test_auto_backend_choice_on_cpu():
    inst = random_instance(3, 4, 5, seed=0)
    assert train(inst, steps=1).backend == "numpy"
    assert train([inst], steps=1).backend == "torch"  # batches keep the torch engine's numbers
    assert train(inst, steps=1, param="p").backend == "torch"
    assert train(inst, steps=1, optimizer="adam").backend == "numpy"  # and every geometry
    assert train(inst, steps=1, dtype=torch.float32).backend == "torch"
    with pytest.raises(InvalidParameterError, match="backend 'numpy'"):
        train(inst, steps=1, param="vW", backend="numpy")


def test_threads_default_one_and_restored(monkeypatch):
    seen = []
    before = torch.get_num_threads()
    inst = random_instance(3, 4, 5, seed=0)
    train(inst, steps=3, backend="torch", progress=lambda k, n: seen.append(
        torch.get_num_threads()))
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before
    seen.clear()
    monkeypatch.setenv("ATTNSVM_THREADS", "2")
    train(inst, steps=3, backend="torch", progress=lambda k, n: seen.append(
        torch.get_num_threads()))
    assert set(seen) == {2}
    seen.clear()
    train(inst, steps=3, backend="torch", threads=1, progress=lambda k, n: seen.append(
        torch.get_num_threads()))
    assert set(seen) == {1}
    monkeypatch.setenv("ATTNSVM_THREADS", "many")
    with pytest.raises(InvalidParameterError, match="ATTNSVM_THREADS"):
        train(inst, steps=1)


def test_progress_reports_monotone_and_final():
    calls: list[tuple[int, int]] = []
    res = train(random_instance(3, 4, 5, seed=0), steps=500, progress=lambda k, n: calls.append(
        (k, n)))
    assert calls[-1] == (500, 500) and all(n == 500 for _, n in calls)
    assert [k for k, _ in calls] == sorted(k for k, _ in calls)
    plain = train(random_instance(3, 4, 5, seed=0), steps=500)
    np.testing.assert_array_equal(res.W, plain.W)  # reporting does not change the iterates


def test_config_object_equals_keywords():
    inst = random_instance(3, 4, 5, seed=1)
    cfg = TrainConfig(param="KQ", optimizer="md", steps=40, seed=3)
    a = train(inst, cfg)
    b = train(inst, param="KQ", optimizer="md", steps=40, seed=3)
    c = train(inst, cfg, steps=20)
    np.testing.assert_array_equal(a.W, b.W)
    assert c.steps == 20 and cfg.steps == 40  # overrides copy the config
    with pytest.raises(InvalidParameterError, match="Unknown training setting"):
        train(inst, stepz=3)


def test_absurd_sizes_refused_up_front():
    inst = random_instance(3, 4, 5, seed=0)
    with pytest.raises(InvalidParameterError, match="steps"):
        train(inst, steps=MAX_STEPS + 1)
    with pytest.raises(InvalidParameterError, match="GiB"):
        train([inst] * 1000, steps=10**8, record_every=1)


def test_parametrizations_declared_once():
    assert PARAMS == tuple(PARAMETRIZATIONS) == ("W", "KQ", "p", "vW", "vp")
    shapes = {k: s.block_shapes(5, 3) for k, s in PARAMETRIZATIONS.items()}
    assert shapes["KQ"] == {"K": (5, 3), "Q": (5, 3)} and shapes["vp"] == {"p": (5,)}
    for name, spec in PARAMETRIZATIONS.items():
        res = train(random_instance(3, 4, 5, seed=0), param=name, steps=2, m=3)
        assert (res.v is not None) == spec.joint
        assert (res.W is not None) == spec.has_key_query


@pytest.mark.parametrize("param", ["W", "KQ"])
def test_numpy_engine_exact_when_the_softmax_saturates(param):
    # ||W|| ~ 1e3: the non-selected probabilities underflow to 0, yet the exact direction
    # still moves W, identically in both engines
    inst = random_instance(3, 4, 5, seed=1)
    kw = {"param": param, "steps": 8, "init_scale": 300.0 if param == "W" else 20.0, "seed": 2}
    fast = train(inst, backend="numpy", **kw)
    ref = train(inst, backend="torch", **kw)
    start = train(inst, backend="torch", **(kw | {"steps": 0}))
    assert np.min(ref.max_prob) == 1.0 and _rel(ref.W, start.W) > 1e-4
    assert _rel(fast.W, ref.W) < 1e-12
