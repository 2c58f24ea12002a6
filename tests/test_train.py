"""Tests of attnsvm.train: exact gradients, saturated directions, convergence, batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnsvm.exceptions import InvalidInputError, InvalidParameterError
from attnsvm.instance import Instance, random_instance
from attnsvm.train import (
    LambdaHead,
    Loss,
    Problem,
    ReLUHead,
    autograd_loss,
    reference_train,
    regularization_path,
    score_direction,
    train,
)
from attnsvm.train.config import init_blocks as _init_blocks
from attnsvm.train.heads import get_head
from attnsvm.train.models import build_model

torch.set_num_threads(1)


def w_mm(inst: Instance, alpha: np.ndarray) -> np.ndarray | None:
    """Frobenius Att-SVM solution, or None when the problem is (certifiably) infeasible."""
    from attnsvm.svm import solve_fro

    sol = solve_fro(inst, np.asarray(alpha))
    if sol.status == "infeasible":
        assert sol.is_certified_infeasible()
        return None
    assert sol.status == "optimal"
    return np.asarray(sol.W)


def corr(A: np.ndarray, B: np.ndarray) -> float:
    return float((A * B).sum() / np.linalg.norm(A) / np.linalg.norm(B))


# ----------------------------------------------------------------- gradients vs autograd
def _autograd_check(param: str, head=None, loss="logistic", cross=True, scale=1.0, seed=0):
    insts = [random_instance(3, 4, 5, seed=seed + b, cross=cross) for b in range(2)]
    prob = Problem.from_instances(insts, torch.device("cpu"), torch.float64)
    blocks = {k: torch.as_tensor(a).clone() for k, a in
              _init_blocks(param, "normal", scale, [seed, seed + 1], 5, 4).items()}
    model = build_model(param, blocks, prob)
    hd = get_head(head)
    lo = Loss(loss)
    dirn = score_direction(model.scores(prob), prob, lo, hd, need_xbar=model.need_xbar)
    ours = [torch.exp(ls)[(...,) + (None,) * (G.ndim - 1)] * G
            for G, ls in model.neg_grads(prob, dirn)]
    leaves = [b.clone().requires_grad_(True) for b in model.blocks]
    for name, leaf in zip(model.names, leaves, strict=True):
        if name == "v":
            prob.v = leaf
        elif hasattr(model, "base"):
            setattr(model.base, name, leaf)  # type: ignore[attr-defined]
        else:
            setattr(model, name, leaf)
    L = autograd_loss(model, prob, lo, hd)
    grads = torch.autograd.grad(L.sum(), leaves)
    torch.testing.assert_close(dirn.loss, L.detach(), rtol=1e-12, atol=0)
    for g_ours, g_ref in zip(ours, grads, strict=True):
        torch.testing.assert_close(g_ours, -g_ref, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("param", ["W", "KQ", "p", "vW", "vp"])
@pytest.mark.parametrize("loss", ["logistic", "exponential", "correlation"])
def test_gradients_match_autograd(param, loss):
    _autograd_check(param, loss=loss)


@pytest.mark.parametrize("cross", [True, False])
def test_gradients_self_attention(cross):
    _autograd_check("W", cross=cross, scale=2.0)


def test_gradients_nonlinear_heads():
    rng = np.random.default_rng(0)
    _autograd_check("W", head=ReLUHead(rng.standard_normal((5, 3))))
    _autograd_check("KQ", head=LambdaHead(0.3), loss="exponential")
    _autograd_check("W", head=LambdaHead(0.5), scale=3.0)


# ------------------------------------------------- saturated direction vs high precision
def _mp_direction(inst: Instance, W: np.ndarray, dps: int = 80, loss: str = "logistic"
                  ) -> np.ndarray:
    import mpmath as mp

    mp.mp.dps = dps
    n, T, d = inst.X.shape
    G = mp.matrix(d, d)
    X = [[[mp.mpf(float(inst.X[i, t, k])) for k in range(d)] for t in range(T)]
         for i in range(n)]
    Zq = [[mp.mpf(float(inst.queries[i, k])) for k in range(d)] for i in range(n)]
    Wm = [[mp.mpf(float(W[r, c])) for c in range(d)] for r in range(d)]
    v = [mp.mpf(float(x)) for x in inst.v]
    for i in range(n):
        Wz = [mp.fsum(Wm[r][c] * Zq[i][c] for c in range(d)) for r in range(d)]
        a = [mp.fsum(X[i][t][r] * Wz[r] for r in range(d)) for t in range(T)]
        mx = max(a)
        ex = [mp.exp(x - mx) for x in a]
        S = mp.fsum(ex)
        s = [x / S for x in ex]
        h = [mp.fsum(v[k] * X[i][t][k] for k in range(d)) for t in range(T)]
        f = mp.fsum(s[t] * h[t] for t in range(T))
        u = float(inst.Y[i]) * f
        w = 1 / (1 + mp.exp(u)) if loss == "logistic" else mp.exp(-u)  # -l'(u)
        for t in range(T):
            c = w * float(inst.Y[i]) * s[t] * (h[t] - f)
            for r in range(d):
                for q in range(d):
                    G[r, q] += c * X[i][t][r] * Zq[i][q]
    out = np.array([[float(G[r, q] / mp.norm(G)) for q in range(d)] for r in range(d)])
    return out


@pytest.mark.parametrize("R", [30.0, 300.0, 3000.0])
def test_direction_matches_mpmath_when_saturated(R):
    inst = random_instance(2, 3, 3, seed=4)
    W = R * w_mm(inst, inst.optimal_tokens())
    W = W + np.random.default_rng(1).standard_normal(W.shape)  # off the SVM direction
    prob = Problem.from_instances([inst], torch.device("cpu"), torch.float64)
    model = build_model("W", {"W": torch.as_tensor(W[None]).clone()}, prob)
    dirn = score_direction(model.scores(prob), prob, Loss("logistic"), get_head(None))
    G = model.neg_grads(prob, dirn)[0][0][0].numpy()
    assert np.all(np.isfinite(G)) and np.linalg.norm(G) > 0
    ref = _mp_direction(inst, W, dps=max(50, int(R * 1.5)))
    np.testing.assert_allclose(G / np.linalg.norm(G), ref, atol=1e-12)


def test_direction_defined_when_loss_underflows():
    base = random_instance(2, 3, 3, seed=4)
    inst = Instance(X=base.X, Z=base.Z, Y=base.Y, v=2000.0 * base.v)  # |u| ~ 1000
    W = 200.0 * w_mm(inst, inst.optimal_tokens())
    W = W + np.random.default_rng(2).standard_normal(W.shape)
    prob = Problem.from_instances([inst], torch.device("cpu"), torch.float64)
    model = build_model("W", {"W": torch.as_tensor(W[None]).clone()}, prob)
    dirn = score_direction(model.scores(prob), prob, Loss("exponential"), get_head(None))
    G = model.neg_grads(prob, dirn)[0][0][0].numpy()
    assert np.linalg.norm(G) > 0 and np.all(np.isfinite(G))
    ref = _mp_direction(inst, W, dps=1200, loss="exponential")
    np.testing.assert_allclose(G / np.linalg.norm(G), ref, atol=1e-12)


def test_naive_autograd_loses_direction_where_exact_does_not():
    inst = random_instance(2, 3, 3, seed=4)
    W = 3000.0 * w_mm(inst, inst.optimal_tokens())
    out = reference_train(inst, "W", lr=0.1, steps=1, init=W)
    assert np.all(out["W"] == W) or not np.all(np.isfinite(out["W"]))  # zero or NaN gradient
    res = train(inst, init=W, steps=5, lr=0.1)
    assert np.all(np.isfinite(res.W)) and not np.allclose(res.W, W, rtol=0, atol=1e-3)


# --------------------------------------------------------------------- convergence
def test_ngd_converges_to_wmm_paper_setting():
    insts = [random_instance(6, 8, 10, seed=s) for s in range(4)]
    res = train(insts, steps=2000, lr=0.1, seed=0)
    for b, inst in enumerate(insts):
        gap = 1 - corr(res.W[b], w_mm(inst, res.selected[b]))
        assert gap < 1e-2, gap
    assert res.max_prob.min() > 0.99


@pytest.mark.slow
def test_ngd_converges_20k_steps():
    insts = [random_instance(6, 8, 10, seed=s) for s in range(10)]
    res = train(insts, steps=20000, lr=0.1)
    gaps = [1 - corr(res.W[b], w_mm(inst, res.selected[b])) for b, inst in enumerate(insts)]
    assert max(gaps) < 1e-4, gaps


def _global_instance(seed: int = 0) -> Instance:
    """Every non-optimal token of a sequence shares one score (TF-SVM global condition)."""
    rng = np.random.default_rng(seed)
    n, T, d = 3, 4, 6
    v = np.zeros(d)
    v[0] = 1.0
    X = rng.standard_normal((n, T, d))
    X[:, :, 0] = -0.5
    Y = np.array([1.0, -1.0, 1.0])
    opt = np.array([0, 2, 3])
    for i in range(n):
        X[i, opt[i], 0] = 1.0 if Y[i] > 0 else -2.0
    Z = rng.standard_normal((n, d))
    return Instance(X=X, Z=Z, Y=Y, v=v)


def test_global_convergence_on_global_instance():
    inst = _global_instance()
    opt = inst.optimal_tokens()
    target = w_mm(inst, opt)
    res = train([inst] * 3, steps=3000, seed=[0, 1, 2], init_scale=1.0, record_every=1000,
                targets={"mm": target})
    assert np.all(res.selected == opt[None])
    assert (1 - res.history.groupby("instance")["corr_mm"].last()).max() < 1e-2


def _find_local(seed_range=range(40)):
    for s in seed_range:
        inst = random_instance(4, 4, 6, seed=s)
        opt = inst.optimal_tokens()
        g = inst.token_scores()
        for i in range(inst.n):
            for t in range(inst.T):
                if t == opt[i]:
                    continue
                alpha = opt.copy()
                alpha[i] = t
                W = w_mm(inst, alpha)
                if W is None:
                    continue
                marg = inst.margins(W, alpha)
                active = marg < 1 + 1e-6
                # clear-cut case: non-support tokens well separated, support tokens worse
                if np.all((marg > 1.3) | active) and np.all(
                        g[np.arange(inst.n), alpha][:, None] > g + 0.05, where=active):
                    return inst, alpha, W
    raise RuntimeError("no locally optimal non-global alpha found")


def test_local_convergence_from_cone():
    inst, alpha, Wmm = _find_local()
    start = 5.0 * Wmm / np.linalg.norm(Wmm)
    res = train(inst, init=start, steps=3000, lr=0.1)
    np.testing.assert_array_equal(res.selected, alpha)
    assert 1 - corr(res.W, Wmm) < 1e-2


# ------------------------------------------------------------- batching, invariances
@pytest.mark.parametrize("param,opt", [("W", "ngd"), ("KQ", "ngd"), ("W", "md"), ("KQ", "polyak"),
                                       ("p", "gd"), ("vW", "ngd"), ("W", "adam")])
def test_batched_equals_sequential(param, opt):
    insts = [random_instance(3, 5, 4, seed=s) for s in range(4)]
    batch = train(insts, param=param, optimizer=opt, steps=150, seed=[7, 8, 9, 10])
    for b, inst in enumerate(insts):
        # a batch of one runs the same (torch) engine: batching must not change a digit that
        # matters (a lone Instance may take the NumPy engine, compared in test_train_engines)
        one = train([inst], param=param, optimizer=opt, steps=150, seed=[7 + b])
        np.testing.assert_array_equal(batch.selected[b], one.selected[0])
        for k in ("W", "K", "Q", "p", "v"):
            x, y = getattr(batch, k), getattr(one, k)
            if y is not None:
                np.testing.assert_allclose(x[b], y[0], rtol=1e-9, atol=1e-12)


def test_token_permutation_invariance():
    inst = random_instance(4, 6, 5, seed=3)
    rng = np.random.default_rng(0)
    perm = np.stack([rng.permutation(inst.T) for _ in range(inst.n)])
    Xp = np.take_along_axis(inst.X, perm[:, :, None], axis=1)
    instp = Instance(X=Xp, Z=inst.Z, Y=inst.Y, v=inst.v)
    r1 = train(inst, steps=500)
    r2 = train(instp, steps=500)
    np.testing.assert_allclose(r1.W, r2.W, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(perm[np.arange(inst.n), r2.selected], r1.selected)


def test_no_nan_far_past_saturation():
    inst = random_instance(2, 3, 4, seed=1)
    res = train(inst, steps=10000, lr=1.0, record_every=2500)  # ||W|| ~ 1e4
    assert np.all(np.isfinite(res.W)) and np.linalg.norm(res.W) > 5e3
    assert 1 - corr(res.W, w_mm(inst, res.selected)) < 1e-5
    assert res.history["loss"].notna().all()


@pytest.mark.slow
def test_no_nan_after_1e5_steps():
    inst = random_instance(3, 4, 5, seed=2)
    res = train(inst, steps=100_000, lr=0.1)
    assert np.all(np.isfinite(res.W))
    assert 1 - corr(res.W, w_mm(inst, res.selected)) < 1e-6


# ------------------------------------------------------------------ optimizers etc.
@pytest.mark.parametrize("opt", ["gd", "ngd", "polyak", "md", "adam"])
@pytest.mark.parametrize("param", ["W", "KQ"])
def test_optimizers_finite(opt, param):
    inst = random_instance(3, 4, 5, seed=0)
    res = train(inst, param=param, optimizer=opt, steps=300, lr=0.1, init_scale=0.1)
    assert np.all(np.isfinite(res.W)) and np.isfinite(res.loss)


def test_kq_eps_and_prompt():
    inst = random_instance(3, 4, 5, seed=0)
    r = train(inst, param="KQ", steps=200, kq_eps=2.2e-16)
    np.testing.assert_allclose(r.W, r.K @ r.Q.T)
    rp = train(inst, param="p", steps=200, prompt_W=np.eye(5))
    assert rp.W is None and rp.p.shape == (5,)
    rv = train(inst, param="vp", steps=50)
    assert rv.v.shape == (5,)


def test_regularization_path_aligns():
    inst = random_instance(3, 4, 6, seed=0)
    path = regularization_path(inst, [1.0, 4.0, 16.0], steps_per_radius=300)
    assert path.W.shape == (3, 6, 6)
    np.testing.assert_allclose(np.linalg.norm(path.W[-1]), 16.0, rtol=1e-6)
    target = w_mm(inst, path.selected[-1])
    gaps = [1 - corr(W, target) for W in path.W]
    assert gaps[-1] < gaps[0] and gaps[-1] < 0.05


def test_recorder_frames():
    insts = [random_instance(3, 4, 5, seed=s) for s in range(3)]
    res = train(insts, steps=20, record_every=5, targets={"zero": None, "eye": np.eye(5)})
    h = res.history
    assert len(h) == 3 * 5 and {"corr_eye", "corr_zero", "loss", "norm"} <= set(h.columns)
    assert h["corr_zero"].isna().all()
    assert len(res.sequences) == 3 * 5 * 3
    assert res.loss_history.shape == (3, 5)


def test_device_auto_and_graph_flag_on_cpu():
    inst = random_instance(3, 4, 5, seed=0)
    a = train(inst, steps=50)
    b = train(inst, steps=50, device="cpu", cuda_graph=True)  # no-op without CUDA
    np.testing.assert_array_equal(a.W, b.W)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError):
            train(inst, steps=1, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_graph():
    insts = [random_instance(6, 8, 10, seed=s) for s in range(8)]
    cpu = train(insts, steps=300)
    for graph in (False, True):
        gpu = train(insts, steps=300, device="cuda", cuda_graph=graph, record_every=100)
        np.testing.assert_allclose(gpu.W, cpu.W, rtol=1e-8, atol=1e-10)


def test_bad_inputs():
    inst = random_instance(3, 4, 5, seed=0)
    with pytest.raises(InvalidParameterError):
        train(inst, param="X")
    with pytest.raises(InvalidParameterError):
        train(inst, optimizer="sgd")
    with pytest.raises(InvalidParameterError):
        train(inst, lr=-1.0)
    with pytest.raises(InvalidInputError):
        train(Instance(X=inst.X, Z=inst.Z), steps=1)
    with pytest.raises(InvalidInputError):
        train([inst, random_instance(3, 5, 5, seed=0)])
    with pytest.raises(InvalidParameterError):
        train([inst, inst], seed=[1])
    with pytest.raises(InvalidInputError):
        train(inst, init=np.zeros((4, 4)))
    assert math.isfinite(train(inst, steps=0).loss)
