"""Steepest descent in other geometries, exact after the softmax saturates.

The trainers hand each block its negative gradient as ``exp(logscale) * G`` (``G`` of order
one).  The rules below use only ``G`` and ``logscale``, never ``exp(logscale)`` alone:

* ``sign`` (normalized steepest descent in the entrywise max norm): ``P += lr sign(G)``;
* ``spectral`` (in the spectral norm): ``P += lr U V^T`` for the thin SVD ``G = U S V^T``
  (singular values below ``POLAR_RTOL`` times the largest are zero: the gradient of ``W``
  has rank at most n);
* ``signum``: ``sign`` of the momentum ``m = b1 m + (1 - b1) g``;
* ``muon``: the polar factor of ``m = b1 m + g`` (exact, from the SVD; or ``ns_steps`` of
  Muon's quintic Newton-Schulz iteration, which is only approximately orthogonal);
* ``adam``: ``P -= lr m_hat / (sqrt(v_hat) + eps)``, ``eps >= 0``.

Momenta are stored as ``exp(L) * M`` per instance (``L`` a log-scale): ``m = a m + c g``
becomes ``L' = max(L + log a, logscale + log c)``, ``M' = e^(L + log a - L') M +
e^(logscale + log c - L') G``, so gradients far below the smallest float64 still add up in
their true proportions.  Adam's ratio is computed as
``e^(Lm - Lv / 2) M / (sqrt(V) + eps e^(-Lv / 2))``, which is exact for ``eps = 0`` at any
saturation and underflows to the true, vanishing step for ``eps > 0``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["GEOMETRIC", "POLAR_RTOL", "NS_COEFFS", "polar", "newton_schulz", "LogMoment",
           "geometric_step"]

GEOMETRIC = ("sign", "spectral", "signum", "muon", "adam")

#: relative size under which a singular value of the gradient counts as zero
POLAR_RTOL = 1e-10
#: Muon's quintic Newton-Schulz coefficients (Jordan et al., 2024)
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def _bc(x: Tensor, like: Tensor) -> Tensor:
    return x.reshape((-1,) + (1,) * (like.ndim - 1))


def polar(G: Tensor) -> Tensor:
    """``U V^T`` of the thin SVD of each ``G[b]`` (B, d1, d2), zero singular values dropped."""
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    keep = (S > POLAR_RTOL * S[:, :1]).to(G.dtype)
    return (U * keep[:, None, :]) @ Vh


def newton_schulz(G: Tensor, steps: int) -> Tensor:
    """Muon's approximate polar factor: ``steps`` quintic iterations from ``G / ||G||_F``."""
    a, b, c = NS_COEFFS
    nrm = G.flatten(1).norm(dim=1)
    X = G / _bc(torch.where(nrm > 0, nrm, 1.0), G)
    tall = X.shape[-2] > X.shape[-1]
    if tall:
        X = X.transpose(-1, -2)
    for _ in range(steps):
        A = X @ X.transpose(-1, -2)
        X = a * X + (b * A + c * A @ A) @ X
    return X.transpose(-1, -2) if tall else X


class LogMoment:
    """A per-instance momentum ``exp(L) * M`` of tensors (B, ...) with log-scales (B,)."""

    def __init__(self, like: Tensor):
        self.M = torch.zeros_like(like)
        self.L = torch.full((like.shape[0],), -math.inf, dtype=like.dtype, device=like.device)

    def update(self, a: float, c: float, G: Tensor, logscale: Tensor) -> None:
        """``m <- a m + c exp(logscale) G``."""
        la = self.L + math.log(a) if a > 0 else torch.full_like(self.L, -math.inf)
        lc = logscale + math.log(c)
        L = torch.maximum(la, lc)
        w_old = torch.where(torch.isfinite(la), torch.exp(la - L), 0.0)
        self.M = _bc(w_old, G) * self.M + _bc(torch.exp(lc - L), G) * G
        self.L = L


def geometric_step(name: str, P: Tensor, G: Tensor, logscale: Tensor, state: dict, t: int, *,
                   lr: float, betas: tuple[float, float], eps: float, ns_steps: int = 0
                   ) -> None:
    """One step of ``name`` on block ``P`` (B, ...) in place; ``state`` holds its moments."""
    b1, b2 = betas
    if name == "sign":
        P.add_(lr * torch.sign(G))
    elif name == "spectral":
        P.add_(lr * polar(G))
    elif name == "signum":
        m = state.setdefault("m", LogMoment(G))
        m.update(b1, 1.0 - b1, G, logscale)
        P.add_(lr * torch.sign(m.M))
    elif name == "muon":
        m = state.setdefault("m", LogMoment(G))
        m.update(b1, 1.0, G, logscale)
        P.add_(lr * (newton_schulz(m.M, ns_steps) if ns_steps else polar(m.M)))
    elif name == "adam":
        m = state.setdefault("m", LogMoment(G))
        v = state.setdefault("v", LogMoment(G))
        m.update(b1, 1.0 - b1, G, logscale)
        v.update(b2, 1.0 - b2, G * G, 2.0 * logscale)
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        half = 0.5 * v.L
        den = torch.sqrt(v.M / c2)
        if eps > 0:
            den = den + _bc(eps * torch.exp(-half), G)
        coef = torch.exp(m.L - half) / c1
        ratio = _bc(coef, G) * m.M / torch.where(den > 0, den, 1.0)
        P.add_(lr * torch.where(torch.isfinite(ratio), ratio, 0.0))
    else:  # pragma: no cover - validated by the Optimizer
        raise ValueError(name)
