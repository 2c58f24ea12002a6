"""The NTP trainer: exact directions (autograd, mpmath at saturation), batching, and the
convergence W ~ R W^svm + W^fin on the official cyclic setting."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attnsvm.ntp import (  # noqa: E402
    NTPDataset,
    local_graph_svm,
    ntp_metrics,
    random_ntp_dataset,
    solve_graph_svm,
    solve_w_fin,
    train_ntp,
)
from attnsvm.ntp.analysis import cosine  # noqa: E402
from attnsvm.ntp.train import log_direction  # noqa: E402


def autograd_loss(ds, W, loss):
    """The three losses from their definitions, by autograd."""
    X = torch.tensor(ds.X)
    a = torch.einsum("ntd,de,ne->nt", X, W, X[:, -1])
    s = torch.softmax(a, -1)
    if loss == "log":
        lab = torch.tensor(ds.label_mask)
        return -torch.log((s * lab).sum(-1)).mean()
    logits = torch.tensor(ds.E) @ torch.einsum("ntd,nt->nd", X, s).T  # (K, n)
    p = torch.softmax(logits.T, -1)[torch.arange(ds.n), torch.tensor(ds.labels)]
    return (-torch.log(p) if loss == "ce" else (1 - p) ** 2).mean()


@pytest.mark.parametrize("repeated", [False, True])
@pytest.mark.parametrize("loss", ["log", "ce", "sq"])
@pytest.mark.parametrize("param", ["W", "KQ"])
def test_one_gd_step_matches_autograd(loss, param, repeated):
    ds = random_ntp_dataset(5, 4, 6, 3, cyclic=True, seed=2)
    if repeated:  # repeated tokens: the label's mass is summed over its copies
        tok = ds.tokens.copy()
        tok[:, 1] = tok[:, 0]
        ds = NTPDataset(ds.E, tok, tok[:, 0])
    lr, scale = 0.3, 0.5
    run = train_ntp(ds, param=param, loss=loss, optimizer="gd", lr=lr, steps=1, seed=7,
                    init_scale=scale, record_steps=[0, 1])
    rng = np.random.default_rng(7)
    if param == "W":
        W0 = torch.tensor(scale * rng.standard_normal((3, 3)), requires_grad=True)
        L = autograd_loss(ds, W0, loss)
        L.backward()
        W1 = W0.detach() - lr * W0.grad
    else:
        KQ = scale * rng.standard_normal((2, 3, 3))
        K = torch.tensor(KQ[0], requires_grad=True)
        Q = torch.tensor(KQ[1], requires_grad=True)
        L = autograd_loss(ds, K @ Q.T, loss)
        L.backward()
        W1 = (K - lr * K.grad) @ (Q - lr * Q.grad).T
    assert run.loss_history[0, 0] == pytest.approx(L.item(), rel=1e-12)
    np.testing.assert_allclose(run.W[0], W1.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_log_direction_exact_after_saturation():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 1200  # 1 - S_y is about exp(-900): resolve it
    ds = random_ntp_dataset(4, 4, 6, 8, cyclic=False, seed=5)
    g = solve_graph_svm(ds)
    W = 900.0 * g.W / np.linalg.norm(g.W)  # 1 - S_y far below 1e-300 for some rows
    a = np.einsum("ntd,de,ne->nt", ds.X, W, ds.X[:, -1])
    dirn = log_direction(torch.tensor(a)[None], torch.tensor(ds.label_mask)[None])
    C = dirn.C[0].numpy()
    # high-precision -dL/da, up to the common factor exp(logscale)
    ref = np.zeros_like(a)
    for i in range(ds.n):
        e = [mp.exp(mp.mpf(float(x))) for x in a[i]]
        Z = sum(e)
        Sy = sum(e[t] for t in range(ds.T) if ds.label_mask[i, t])
        for t in range(ds.T):
            s = e[t] / Z
            q = e[t] / Sy if ds.label_mask[i, t] else 0
            ref[i, t] = float((q - s) / ds.n / mp.exp(mp.mpf(float(dirn.logscale[0]))))
    assert np.abs(C).max() > 0.5  # the direction is of order one, not underflowed
    np.testing.assert_allclose(C, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    # plain autograd loses the label terms (q - s with q, s both rounded to 1): wrong direction
    Wt = torch.tensor(W, requires_grad=True)
    autograd_loss(ds, Wt, "log").backward()
    G = np.einsum("nt,ntd,ne->de", C, ds.X, ds.X[:, -1])  # exact -grad_W up to a factor
    G_ref = np.einsum("nt,ntd,ne->de", ref, ds.X, ds.X[:, -1])
    assert cosine(G, G_ref) > 1 - 1e-12
    assert cosine(-Wt.grad.numpy(), G_ref) < 0.9


def test_batched_equals_one_by_one():
    dss = [random_ntp_dataset(6, 4, 6, 8, cyclic=True, seed=s) for s in range(3)]
    both = train_ntp(dss, steps=50, lr=0.05, seed=[4, 5, 6], record_steps=[0, 25, 50])
    for b, ds in enumerate(dss):
        one = train_ntp(ds, steps=50, lr=0.05, seed=4 + b, record_steps=[0, 25, 50])
        np.testing.assert_allclose(both.W_history[:, b], one.W_history[:, 0], rtol=1e-12,
                                   atol=1e-14)


def check_official_cyclic(seeds, steps=4000):
    dss = [random_ntp_dataset(6, 4, 6, 8, cyclic=True, seed=s) for s in seeds]
    run = train_ntp(dss, steps=steps, lr=0.01, seed=list(seeds), record_steps=[steps])
    for b, ds in enumerate(dss):
        g = solve_graph_svm(ds)
        fin = solve_w_fin(ds, g.graphs)
        W = run.W[b]
        m = ntp_metrics(ds, W, g, fin)
        R = np.vdot(W - fin.W_fin, g.W) / np.vdot(g.W, g.W)
        assert float(m["corr_svm"]) == pytest.approx(cosine(W, g.W), abs=1e-12)
        assert float(m["corr_svm_fin"]) == pytest.approx(cosine(W, R * g.W + fin.W_fin),
                                                         abs=1e-12)
        assert float(m["corr_svm_fin"]) >= float(m["corr_svm"]) - 1e-12
        assert float(m["corr_svm_fin"]) > 0.97
        assert float(m["top_scc_attention"]) > 0.99


def test_official_cyclic_setting_ten_trials():
    torch.set_num_threads(1)
    check_official_cyclic(range(10), steps=4000)  # batched: about as fast as one


def test_local_graph_svm_explains_sq_loss_runs():
    torch.set_num_threads(1)
    dss = [random_ntp_dataset(6, 4, 6, 8, cyclic=True, seed=s) for s in range(6)]
    run = train_ntp(dss, loss="sq", lr=0.1, steps=2000, seed=0)
    for b, ds in enumerate(dss):
        loc = local_graph_svm(ds, run.probs[b])
        assert loc.svm.solution.is_optimal(1e-8)
        glob = solve_graph_svm(ds)
        assert cosine(run.W[b], loc.svm.W) >= cosine(run.W[b], glob.W) - 1e-9
        assert cosine(run.W[b], loc.svm.W) > 0.95


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    dss = [random_ntp_dataset(6, 4, 6, 8, cyclic=True, seed=s) for s in range(4)]
    for loss, param in (("log", "W"), ("sq", "KQ")):
        cpu = train_ntp(dss, loss=loss, param=param, lr=0.05, steps=300, seed=0)
        gpu = train_ntp(dss, loss=loss, param=param, lr=0.05, steps=300, seed=0, device="cuda")
        np.testing.assert_allclose(gpu.W, cpu.W, rtol=1e-9, atol=1e-12)
