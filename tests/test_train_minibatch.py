"""Mini-batch training (one sequence per step and more): autograd on the batch's loss."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch

from attnsvm import random_instance
from attnsvm.exceptions import InvalidParameterError
from attnsvm.svm import solve
from attnsvm.train import train

INST = random_instance(6, 8, 10, seed=0)


def _batch_loss(W: torch.Tensor, rows: list[int]) -> torch.Tensor:
    X, Z = torch.as_tensor(INST.X[rows]), torch.as_tensor(INST.queries[rows])
    Y, v = torch.as_tensor(INST.Y[rows]), torch.as_tensor(INST.v)
    s = torch.softmax(torch.einsum("ntd,nd->nt", X, Z @ W.T), dim=1)
    f = torch.einsum("nt,ntd->nd", s, X) @ v
    return torch.nn.functional.softplus(-Y * f).mean()


def _stream(order: str, seed: int, n: int, length: int) -> list[int]:
    """The documented stream of sequence indices, written out."""
    out: list[int] = []
    e = 0
    while len(out) < length:
        out += (list(range(n)) if order == "cyclic" else
                list(np.random.default_rng([0xBA7C4, seed, e]).permutation(n)))
        e += 1
    return out


def reference(name, init, lr, steps, size, order, seed, eps=0.0, betas=(0.9, 0.999)):
    W = torch.tensor(init, requires_grad=True)
    adam = torch.optim.Adam([W], lr=lr, betas=betas, eps=eps) if name == "adam" else None
    mom = np.zeros(W.shape)
    stream = _stream(order, seed, INST.X.shape[0], steps * size)
    for s in range(steps):
        W.grad = None
        _batch_loss(W, stream[s * size:(s + 1) * size]).backward()
        if adam is not None:
            adam.step()
            continue
        g = W.grad.numpy()
        with torch.no_grad():
            if name == "sign":
                step = np.sign(g)
            elif name == "ngd":
                step = g / np.linalg.norm(g)
            else:  # signum
                mom = betas[0] * mom + (1 - betas[0]) * g
                step = np.sign(mom)
            W -= lr * torch.as_tensor(step)
    return W.detach().numpy()


@pytest.mark.parametrize("name,eps", [("adam", 0.0), ("adam", 1e-8), ("signum", 0.0),
                                      ("sign", 0.0), ("ngd", 0.0)])
@pytest.mark.parametrize("size,order", [(1, "cyclic"), (1, "random"), (4, "random")])
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_matches_autograd_on_the_batch_loss(name, eps, size, order, backend):
    init = 0.1 * np.random.default_rng(1).standard_normal((10, 10))
    res = train(INST, optimizer=name, lr=0.01, steps=14, adam_eps=eps, init=init, seed=5,
                batch_size=size, batch_order=order, backend=backend)
    ref = reference(name, init, 0.01, 14, size, order, seed=5, eps=eps)
    np.testing.assert_allclose(res.W, ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    assert res.backend == backend


def test_full_batch_size_is_the_full_batch_and_segments_are_one_run():
    full = train(INST, optimizer="sign", lr=0.01, steps=20, backend="torch")
    same = train(INST, optimizer="sign", lr=0.01, steps=20, batch_size=6, backend="torch")
    np.testing.assert_array_equal(full.W, same.W)
    kw = {"optimizer": "sign", "lr": 0.01, "batch_size": 1, "batch_order": "random",
          "backend": "torch"}
    whole = train(INST, steps=20, **kw)
    part = train(INST, steps=9, **kw)
    rest = train(INST, steps=11, init=part.W, batch_start=9, **kw)
    np.testing.assert_allclose(rest.W, whole.W, rtol=0, atol=1e-14)


def test_batch_of_instances_equals_one_by_one_and_engines_agree():
    insts = [random_instance(5, 6, 7, seed=s) for s in range(3)]
    kw = {"optimizer": "adam", "adam_eps": 0.0, "lr": 0.02, "steps": 30, "batch_size": 2,
          "batch_order": "random", "seed": [4, 8, 9]}
    batch = train(insts, backend="torch", **kw)
    npy = train(insts, backend="numpy", **kw)
    np.testing.assert_allclose(npy.W, batch.W, rtol=0, atol=1e-12)
    for b, inst in enumerate(insts):
        one = train(inst, backend="torch", **{**kw, "seed": kw["seed"][b]})
        np.testing.assert_allclose(one.W, batch.W[b], rtol=0, atol=1e-13)


def _mp_seq_grad(W: np.ndarray, i: int):
    """-d l(u_i)/dW of sequence i alone at 600 digits (an mpmath matrix, unscaled)."""
    mpmath.mp.dps = 600
    X, Z, Y, v = INST.X, INST.queries, INST.Y, INST.v
    T, d = X.shape[1:]
    Wz = mpmath.matrix(W.tolist()) * mpmath.matrix(Z[i].tolist())
    a = [sum(mpmath.mpf(X[i, t, r]) * Wz[r] for r in range(d)) for t in range(T)]
    e = [mpmath.exp(x - max(a)) for x in a]
    s = [x / sum(e) for x in e]
    h = [sum(mpmath.mpf(X[i, t, r]) * mpmath.mpf(v[r]) for r in range(d)) for t in range(T)]
    f = sum(s[t] * h[t] for t in range(T))
    w = 1 / (1 + mpmath.exp(Y[i] * f))
    xc = [sum(w * Y[i] * s[t] * (h[t] - f) * mpmath.mpf(X[i, t, r]) for t in range(T))
          for r in range(d)]
    return mpmath.matrix([[xc[r] * mpmath.mpf(Z[i, q]) for q in range(d)] for r in range(d)])


def test_saturated_single_sequence_steps_match_mpmath():
    """At 1000 W^mm (probabilities e^-1000; float64 autograd returns 0), three per-sequence
    steps of Signum and of eps-free Adam equal the 600-digit rules: momenta of gradients whose
    sizes differ by hundreds of orders of magnitude add up in their true proportions."""
    W0 = 1000.0 * solve(INST, "fro").W
    lr, (b1, b2) = 1e-3, (0.9, 0.999)
    for name in ("signum", "adam"):
        W = W0.copy()
        d = W.shape[0]
        m = mpmath.matrix(d, d)
        v = mpmath.matrix(d, d)
        for t in range(1, 4):
            g = _mp_seq_grad(W, t - 1)  # -grad; cyclic order 0, 1, 2
            m = b1 * m + (1 - b1) * g
            if name == "signum":
                step = np.array([[float(mpmath.sign(m[r, q])) for q in range(d)]
                                 for r in range(d)])
            else:
                v = b2 * v + (1 - b2) * mpmath.matrix([[g[r, q] ** 2 for q in range(d)]
                                                       for r in range(d)])
                step = np.array([[float((m[r, q] / (1 - b1 ** t)) /
                                        mpmath.sqrt(v[r, q] / (1 - b2 ** t)))
                                  for q in range(d)] for r in range(d)])
            W = W + lr * step
        res = train(INST, optimizer=name, adam_eps=0.0, lr=lr, steps=3, init=W0,
                    batch_size=1, backend="torch")
        assert np.min(res.max_prob) == 1.0
        np.testing.assert_allclose((res.W - W0) / lr, (W - W0) / lr, atol=1e-6)


@pytest.mark.parametrize("kw,match", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 7}, "at most"),
    ({"batch_size": 1.5}, "batch_size"), ({"batch_order": "shuffled"}, "batch_order"),
    ({"batch_start": -1}, "batch_start"),
    ({"batch_size": 1, "optimizer": "polyak"}, "polyak"),
    ({"batch_size": 1, "param": "vW"}, "param"),
])
def test_bad_batch_settings(kw, match):
    with pytest.raises(InvalidParameterError, match=match):
        train(INST, steps=2, **kw)


@pytest.mark.parametrize("param", ["W", "KQ"])
def test_numpy_engine_equals_torch_for_every_optimizer(param):
    """The single-instance NumPy engine runs every optimizer, with the torch engine's iterates
    (full batch and one sequence per step)."""
    from attnsvm.train import OPTIMIZERS

    for name in OPTIMIZERS:
        for size in ((None, 1) if name != "polyak" else (None,)):
            kw = {"param": param, "optimizer": name, "lr": 0.02, "steps": 12, "init_scale": 0.3,
                  "batch_size": size, "adam_eps": 0.0 if name == "adam" else 1e-8}
            npy = train(INST, backend="numpy", **kw)
            ref = train(INST, backend="torch", **kw)
            assert npy.backend == "numpy"
            np.testing.assert_allclose(npy.W, ref.W, rtol=0, atol=1e-12 * np.abs(ref.W).max(),
                                       err_msg=f"{name} {size}")
