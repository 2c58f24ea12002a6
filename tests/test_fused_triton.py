"""The fused Triton trainer equals the torch trainer (CPU: Triton's interpreter).

Without CUDA the kernel runs in Triton's interpreter, which must be switched on before
:mod:`triton` is first imported.  When another module imported triton earlier in this process,
the tests rerun this file in a fresh interpreter process instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from attnsvm.exceptions import InvalidParameterError
from attnsvm.instance import random_instance
from attnsvm.train import TrainConfig, train

CUDA = torch.cuda.is_available()
if not CUDA and "triton" not in sys.modules:
    # Triton reads the switch at import and again in lazy imports: it stays set.
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")
from attnsvm.train._fused_triton import interpreter_active  # noqa: E402

IN_PROCESS = CUDA or interpreter_active()
DEVICE = "cuda" if CUDA else "cpu"
needs_kernel = pytest.mark.skipif(
    not IN_PROCESS, reason="triton was imported without the interpreter; see test_in_fresh_process")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _both(insts, **kw):
    fused = train(insts, backend="triton", device=DEVICE, **kw)
    ref = train(insts, backend="torch", **kw)
    assert fused.backend == "triton" and ref.backend == "torch"
    return fused, ref


@needs_kernel
@pytest.mark.parametrize("param", ["W", "KQ"])
@pytest.mark.parametrize("opt", ["gd", "ngd", "polyak", "md"])
def test_same_iterates_as_torch(param, opt):
    insts = [random_instance(3, 4, 5, seed=s) for s in range(2)]
    # Polyak steps of length up to 1e3 amplify rounding by ~10x a step: compare early.
    steps = 3 if opt == "polyak" else 12
    fused, ref = _both(insts, param=param, optimizer=opt, steps=steps, lr=0.1, seed=3,
                       m=3 if param == "KQ" else None, init_scale=0.3)
    assert _rel(fused.W, ref.W) < 1e-12
    if param == "KQ":
        assert _rel(fused.K, ref.K) < 1e-12 and _rel(fused.Q, ref.Q) < 1e-12
    np.testing.assert_array_equal(fused.selected, ref.selected)
    np.testing.assert_allclose(fused.loss, ref.loss, rtol=1e-13)
    np.testing.assert_allclose(fused.max_prob, ref.max_prob, rtol=1e-13)


@needs_kernel
@pytest.mark.parametrize("param", ["W", "KQ"])
@pytest.mark.parametrize("opt,extra", [
    ("sign", {}), ("signum", {}), ("adam", {"adam_eps": 0.0}), ("adam", {"adam_eps": 1e-8}),
    ("spectral", {}), ("muon", {}), ("muon", {"ns_steps": 5})])
def test_geometric_optimizers_same_iterates_as_torch(param, opt, extra):
    """sign, Signum and Adam in the kernel, spectral and Muon with the kernel's gradients; in
    three segments (recorded steps), so the moments, log-scales and step count carry over."""
    insts = [random_instance(3, 4, 5, seed=s) for s in range(2)]
    fused, ref = _both(insts, param=param, optimizer=opt, steps=6, lr=0.05, seed=3,
                       m=3 if param == "KQ" else None, init_scale=0.3, record_steps=[2, 4],
                       betas=(0.8, 0.9), **extra)
    assert fused.backend == "triton"
    assert _rel(fused.W, ref.W) < 1e-10
    np.testing.assert_array_equal(fused.selected, ref.selected)
    np.testing.assert_allclose(fused.loss_history, ref.loss_history, rtol=1e-10)


@needs_kernel
def test_saturated_adam_and_signum_stay_exact_in_the_kernel():
    # at ||W|| ~ 1e3 every gradient underflows in float64: the log-scaled moments still move W
    inst = random_instance(3, 4, 5, seed=1)
    for opt in ("adam", "signum"):
        cfg = TrainConfig(steps=5, init_scale=300.0, seed=2, optimizer=opt, adam_eps=0.0,
                          lr=0.01)
        fused = train(inst, cfg, backend="triton", device=DEVICE)
        ref = train(inst, cfg, backend="torch")
        start = train(inst, cfg, steps=0, backend="torch")
        assert np.min(ref.max_prob) == 1.0 and np.abs(ref.W - start.W).max() > 0.009
        assert _rel(fused.W, ref.W) < 1e-12


@needs_kernel
def test_papers_shape_history_and_batching():
    insts = [random_instance(6, 8, 10, seed=s) for s in range(3)]
    kw = {"steps": 20, "record_every": 5, "lr": 0.1, "seed": 0}
    fused, ref = _both(insts, **kw)
    assert _rel(fused.W, ref.W) < 1e-12
    np.testing.assert_allclose(fused.loss_history, ref.loss_history, rtol=1e-13)
    np.testing.assert_array_equal(fused.history["step"], ref.history["step"])
    # each program owns one instance: the batch gives bit for bit the one-by-one results
    for b, inst in enumerate(insts):
        one = train(inst, backend="triton", device=DEVICE, steps=20, seed=b)
        np.testing.assert_array_equal(one.W, fused.W[b])


@needs_kernel
@pytest.mark.parametrize("loss", ["exponential", "correlation"])
def test_other_losses_and_kq_eps(loss):
    insts = [random_instance(3, 4, 5, seed=7)]
    fused, ref = _both(insts, loss=loss, steps=10, init_scale=0.5)
    assert _rel(fused.W, ref.W) < 1e-12
    fused, ref = _both(insts, param="KQ", loss=loss, steps=10, kq_eps=1e-3, init_scale=0.5)
    assert _rel(fused.W, ref.W) < 1e-12


@needs_kernel
def test_saturated_softmax_direction_stays_exact():
    # ||W|| ~ 1e3: every non-selected probability underflows to 0 in float64, yet the exact
    # direction (and hence normalized GD) still moves W; fused and torch agree.
    inst = random_instance(3, 4, 5, seed=1)
    cfg = TrainConfig(steps=8, init_scale=300.0, seed=2)
    fused = train(inst, cfg, backend="triton", device=DEVICE)
    ref = train(inst, cfg, backend="torch")
    start = train(inst, cfg, steps=0, backend="torch")
    assert np.min(ref.max_prob) == 1.0 and np.linalg.norm(ref.W - start.W) > 0.5
    assert _rel(fused.W, ref.W) < 1e-12


@needs_kernel
def test_float32_tracks_float64():
    insts = [random_instance(6, 8, 10, seed=s) for s in range(2)]
    f32 = train(insts, backend="triton", device=DEVICE, dtype=torch.float32, steps=30)
    f64 = train(insts, backend="triton", device=DEVICE, steps=30)
    assert f32.W.dtype == np.float32
    assert _rel(f32.W.astype(np.float64), f64.W) < 1e-4


@needs_kernel
def test_unsupported_settings_are_refused():
    inst = random_instance(3, 4, 5, seed=0)
    for kw in ({"param": "p"}, {"param": "vW"}, {"batch_size": 1}):
        with pytest.raises(InvalidParameterError, match="backend 'triton'"):
            train(inst, backend="triton", device=DEVICE, steps=1, **kw)


def test_without_cuda_or_interpreter_a_clear_error(tmp_path):
    if CUDA:
        pytest.skip("CUDA present: the kernel runs")
    code = ("from attnsvm.instance import random_instance\nfrom attnsvm.train import train\n"
            "from attnsvm.exceptions import InvalidParameterError\n"
            "try:\n    train(random_instance(3, 4, 5, seed=0), backend='triton', steps=1)\n"
            "except InvalidParameterError as e:\n    print('ERR', e)\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.stdout.startswith("ERR") and "CUDA" in out.stdout and "\n" == out.stdout[-1]


@pytest.mark.skipif(IN_PROCESS, reason="the kernel tests ran in this process")
def test_in_fresh_process():  # pragma: no cover - only when triton was imported too early
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          __file__], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]


def test_kernel_compiles_for_an_h100_without_spills():
    """The interpreter does not lower the kernel: compile it for sm_90 (no GPU needed).  Without
    a register cap, 4 warps hold everything in registers; the default launch (2 warps, at most
    128 registers, faster on an H100) is allowed to spill."""
    code = ("import json\nfrom attnsvm.train._fused_triton import compile_for_gpu\n"
            "print(json.dumps([compile_for_gpu('W', 'ngd', arch=90, num_warps=4, maxnreg=0),"
            " compile_for_gpu('W', 'ngd', arch=90), compile_for_gpu('KQ', 'adam', arch=90)]))\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRITON_INTERPRET", "ATTNSVM_TRITON_WARPS", "ATTNSVM_TRITON_MAXNREG")}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    uncapped, default, adam = json.loads(out.stdout.strip().splitlines()[-1])
    assert adam["fma_f64"] > 500 and adam.get("registers", 128) <= 128  # Adam's kernel lowers
    assert uncapped["fma_f64"] > 500  # float64 arithmetic, not float32
    assert uncapped["local_memory"] == 0 and uncapped.get("stack", 0) == 0
    assert default.get("registers", 128) <= 128
