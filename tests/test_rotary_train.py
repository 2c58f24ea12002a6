"""GD on a one-layer rotary attention: exact gradients, and where the runs go."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnsvm.instance import random_instance
from attnsvm.svm.rotary import lifted_correlation, rotary_constraints, solve_lifted
from attnsvm.train import Problem, score_direction
from attnsvm.train.heads import get_head
from attnsvm.train.losses import get_loss
from attnsvm.train.rotary import rotary_phases, score_direction_np, train_rotary


def setup(seed=0, n=4, T=5, d=4):
    b = random_instance(n, T, d, seed=seed)
    pos = np.tile(np.arange(T), (n, 1))
    return b, pos, np.full(n, T), np.array([1.0, 0.1])


def autograd_loss(M, b, pos, qpos, freqs):
    """Loss by torch autograd, written from SPEC's score formula (independent of the trainer)."""
    c = torch.tensor(rotary_phases(pos, qpos, freqs))
    X, Z = torch.tensor(b.X), torch.tensor(b.Z)
    a = torch.einsum("ntf,nti,fij,nj->nt", c, X.to(c.dtype), M, Z.to(c.dtype)).real
    s = torch.softmax(a, dim=-1)
    f = torch.einsum("nt,ntd,d->n", s, X, torch.tensor(b.v))
    return torch.nn.functional.softplus(-torch.tensor(b.Y) * f).mean()


@pytest.mark.parametrize("scale", [1.0, 30.0, 300.0])
def test_numpy_direction_equals_the_torch_one(scale):
    b, *_ = setup()
    a = np.random.default_rng(1).standard_normal((4, 5)) * scale
    C, loss = score_direction_np(a, b.X @ b.v, b.Y)
    prob = Problem.from_tensors(*(torch.tensor(x)[None] for x in (b.X, b.Z, b.Y, b.v)))
    ref = score_direction(torch.tensor(a)[None], prob, get_loss("logistic"), get_head(None))
    np.testing.assert_allclose(C, ref.C[0].numpy(), rtol=1e-12, atol=1e-300)
    assert loss == pytest.approx(float(ref.loss[0]), rel=1e-12)


def test_lifted_step_is_the_normalized_autograd_gradient():
    b, pos, qpos, freqs = setup(seed=2)
    # torch's gradient of a real loss in a complex tensor is the real gradient in (Re, Im)
    Mz = torch.zeros((2, 4, 4), dtype=torch.complex128, requires_grad=True)
    autograd_loss(Mz, b, pos, qpos, freqs).backward()
    assert Mz.grad is not None
    gz = Mz.grad.numpy()
    run = train_rotary(b.X, b.Z, pos, qpos, freqs, b.Y, b.v, steps=1, lr=0.1)
    np.testing.assert_allclose(run.M, -0.1 * gz / np.linalg.norm(gz), atol=1e-14)
    # and the second step, from there
    Mt = torch.tensor(run.M, requires_grad=True)
    autograd_loss(Mt, b, pos, qpos, freqs).backward()
    assert Mt.grad is not None
    g = Mt.grad.numpy()
    two = train_rotary(b.X, b.Z, pos, qpos, freqs, b.Y, b.v, steps=2, lr=0.1)
    np.testing.assert_allclose(two.M, run.M - 0.1 * g / np.linalg.norm(g), atol=1e-13)


def test_runs_go_to_their_lifted_svms():
    b, pos, qpos, freqs = setup(seed=0, n=6, T=6, d=6)
    lifted = train_rotary(b.X, b.Z, pos, qpos, freqs, b.Y, b.v, steps=3000)
    prob = rotary_constraints(b.X, b.Z, pos, qpos, freqs, lifted.selected)
    fro, nuc = solve_lifted(prob, "fro"), solve_lifted(prob, "nuc")
    assert lifted.max_prob.min() > 0.999
    assert lifted_correlation(lifted.M, None, fro.M, None) > 0.999
    fac = train_rotary(b.X, b.Z, pos, qpos, freqs, b.Y, b.v, param="factors", steps=3000)
    assert np.array_equal(fac.selected, lifted.selected)
    c_nuc = lifted_correlation(fac.M, None, nuc.M, None)
    assert c_nuc > 0.93 and c_nuc > lifted_correlation(fac.M, None, fro.M, None) + 0.1
    assert fac.P is not None and fac.Q is not None
    np.testing.assert_allclose(fac.P @ np.conj(fac.Q).transpose(0, 2, 1), fac.M)
