"""sign / spectral / signum / Muon / Adam trainers: autograd before saturation, mpmath after."""

from __future__ import annotations

import json
import warnings

import mpmath
import numpy as np
import pytest
import torch

from attnsvm import random_instance
from attnsvm.cli.main import main
from attnsvm.svm import solve
from attnsvm.train import train

INST = random_instance(6, 8, 10, seed=0)


def _polar(G: np.ndarray) -> np.ndarray:
    U, S, Vt = np.linalg.svd(G, full_matrices=False)
    k = S > 1e-10 * S[0]
    return U[:, k] @ Vt[k]


def _loss(W: torch.Tensor) -> torch.Tensor:
    X, Z = torch.as_tensor(INST.X), torch.as_tensor(INST.queries)
    Y, v = torch.as_tensor(INST.Y), torch.as_tensor(INST.v)
    s = torch.softmax(torch.einsum("ntd,nd->nt", X, Z @ W.T), dim=1)
    f = torch.einsum("nt,ntd->nd", s, X) @ v
    return torch.nn.functional.softplus(-Y * f).mean()


def reference(name: str, param: str, init: dict, lr: float, steps: int, eps: float,
              betas=(0.9, 0.999)) -> np.ndarray:
    """The rules written out on autograd gradients (torch.optim.Adam for Adam)."""
    ps = [torch.tensor(init[k], requires_grad=True) for k in (["W"] if param == "W" else
                                                               ["K", "Q"])]
    adam = torch.optim.Adam(ps, lr=lr, betas=betas, eps=eps) if name == "adam" else None
    mom = [np.zeros(p.shape) for p in ps]
    for _ in range(steps):
        W = ps[0] if param == "W" else ps[0] @ ps[1].T
        for p in ps:
            p.grad = None
        _loss(W).backward()
        if adam is not None:
            adam.step()
            continue
        with torch.no_grad():
            for j, p in enumerate(ps):
                g = p.grad.numpy()
                if name == "sign":
                    step = np.sign(g)
                elif name == "spectral":
                    step = _polar(g)
                elif name == "signum":
                    mom[j] = betas[0] * mom[j] + (1 - betas[0]) * g
                    step = np.sign(mom[j])
                else:  # muon
                    mom[j] = betas[0] * mom[j] + g
                    step = _polar(mom[j])
                p -= lr * torch.as_tensor(step)
    out = ps[0] if param == "W" else ps[0] @ ps[1].T
    return out.detach().numpy()


@pytest.mark.parametrize("param", ["W", "KQ"])
@pytest.mark.parametrize("name,eps", [("sign", 0.0), ("spectral", 0.0), ("signum", 0.0),
                                      ("muon", 0.0), ("adam", 1e-8), ("adam", 0.0)])
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_matches_autograd_before_saturation(param, name, eps, backend):
    rng = np.random.default_rng(1)
    init = ({"W": 0.1 * rng.standard_normal((10, 10))} if param == "W" else
            {"K": 0.3 * rng.standard_normal((10, 10)), "Q": 0.3 * rng.standard_normal((10, 10))})
    res = train(INST, param=param, optimizer=name, lr=0.01, steps=15, adam_eps=eps,
                init=init if param == "KQ" else init["W"], backend=backend)
    ref = reference(name, param, init, 0.01, 15, eps)
    np.testing.assert_allclose(res.W, ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def _mp_neg_grad(W: np.ndarray) -> np.ndarray:
    """-dL/dW at 600 digits (h_ia - f_i ~ e^-1000 must survive the cancellation), scaled to
    max |entry| = 1."""
    mpmath.mp.dps = 600
    X, Z, Y, v = INST.X, INST.queries, INST.Y, INST.v
    n, T, d = X.shape
    Wm = mpmath.matrix(W.tolist())
    G = mpmath.matrix(d, d)
    for i in range(n):
        z = mpmath.matrix(Z[i].tolist())
        Wz = Wm * z
        a = [sum(mpmath.mpf(X[i, t, r]) * Wz[r] for r in range(d)) for t in range(T)]
        amax = max(a)
        e = [mpmath.exp(x - amax) for x in a]
        tot = sum(e)
        s = [x / tot for x in e]
        h = [sum(mpmath.mpf(X[i, t, r]) * mpmath.mpf(v[r]) for r in range(d)) for t in range(T)]
        f = sum(s[t] * h[t] for t in range(T))
        w = 1 / (1 + mpmath.exp(Y[i] * f))   # -l'(u) for the logistic loss
        for t in range(T):
            c = w * Y[i] * s[t] * (h[t] - f) / n   # -dL/da_it
            for r in range(d):
                for q in range(d):
                    G[r, q] += c * mpmath.mpf(X[i, t, r]) * mpmath.mpf(Z[i, q])
    scale = max(abs(G[r, q]) for r in range(d) for q in range(d))
    return np.array([[float(G[r, q] / scale) for q in range(d)] for r in range(d)])


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_saturated_steps_match_mpmath(backend):
    """Deep in saturation (probabilities e^-1000: float64 autograd gives exactly zero), the
    sign, polar and eps-free Adam steps equal those of the 600-digit gradient."""
    W0 = 1000.0 * solve(INST, "fro").W
    Wt = torch.tensor(W0, requires_grad=True)
    _loss(Wt).backward()
    assert float(Wt.grad.abs().max()) == 0.0   # float64 autograd has nothing left
    G = _mp_neg_grad(W0)
    lr = 1e-3
    for name, want in [("sign", np.sign(G)), ("spectral", _polar(G)), ("adam", np.sign(G))]:
        res = train(INST, param="W", optimizer=name, lr=lr, steps=1, init=W0, adam_eps=0.0,
                    backend=backend)
        step = (res.W - W0) / lr
        np.testing.assert_allclose(step, want, atol=1e-6)


def _outside_ratios(W: np.ndarray, alpha: np.ndarray) -> dict[str, float]:
    """Margin ratios from independent solvers (cvxpy + Clarabel; HiGHS for the LP)."""
    import cvxpy as cp
    from scipy.optimize import linprog

    c = INST.constraints(alpha)
    d = W.shape[0]
    M = cp.Variable((d, d))
    vals = cp.sum(cp.multiply(c.A @ M, c.Zc), axis=1)
    opt = {}
    for nm, obj in [("fro", cp.norm(M, "fro")), ("nuc", cp.normNuc(M)),
                    ("spec", cp.sigma_max(M))]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt[nm] = cp.Problem(cp.Minimize(obj), [vals >= 1]).solve(
                solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    C = np.einsum("ki,kj->kij", c.A, c.Zc).reshape(c.m, -1)
    N = d * d
    one = np.ones((N, 1))
    A_ub = np.vstack([np.hstack([-C, np.zeros((c.m, 1))]), np.hstack([np.eye(N), -one]),
                      np.hstack([-np.eye(N), -one])])
    cost = np.zeros(N + 1)
    cost[-1] = 1
    opt["linf"] = linprog(cost, A_ub=A_ub, b_ub=np.r_[-np.ones(c.m), np.zeros(2 * N)],
                          bounds=(None, None), method="highs").fun
    norms = {"fro": np.linalg.norm(W), "nuc": np.linalg.svd(W, compute_uv=False).sum(),
             "spec": np.linalg.norm(W, 2), "linf": np.abs(W).max()}
    vmin = c.values(W).min()
    return {k: opt[k] * vmin / norms[k] for k in opt}


@pytest.mark.parametrize("optimizer,extra", [("sign", []), ("adam", ["--adam-eps", "0"]),
                                             ("muon", ["--betas", "0.9,0.99"])])
def test_cli_margin_ratios_recomputed_outside(tmp_path, capsys, optimizer, extra):
    p = tmp_path / "i.npz"
    INST.save(p)
    out = tmp_path / "run.npz"
    code = main(["train", str(p), "--optimizer", optimizer, "--lr", "0.01", "--steps", "300",
                 "--json", "--out", str(out), *extra])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    res = json.loads(cap.out)
    with np.load(out) as f:
        W, sel = f["W"], f["selected"]
    assert res["selected"] == sel.tolist()
    want = _outside_ratios(W, sel)
    assert set(res["margin_ratios"]) == {"fro", "nuc", "linf", "spec"}
    for k, v in want.items():
        assert res["margin_ratios"][k] == pytest.approx(v, abs=1e-6)


@pytest.mark.parametrize("args", [["--optimizer", "lion"], ["--adam-eps", "-1e-8"],
                                  ["--betas", "0.9,1.5"], ["--ns-steps", "-2"]])
def test_cli_bad_optimizer_settings(tmp_path, capsys, args):
    p = tmp_path / "i.npz"
    INST.save(p)
    assert main(["train", str(p), "--optimizer", "adam", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_newton_schulz_option_is_close_to_the_polar_factor():
    from attnsvm.train._geometry import newton_schulz, polar

    G = torch.as_tensor(np.random.default_rng(0).standard_normal((2, 6, 4)))
    P, NS = polar(G), newton_schulz(G, 8)
    # Muon's coefficients trade exactness for speed: singular values land in about [0.7, 1.2]
    s = torch.linalg.svdvals(NS)
    assert float(s.min()) > 0.6 and float(s.max()) < 1.25
    assert float((P * NS).sum() / (P.norm() * NS.norm())) > 0.98
