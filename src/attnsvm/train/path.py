"""The regularization path ``W_R = argmin_{||W|| <= R} L(W)`` (projected normalized GD)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validation import check_choice, check_positive
from ..exceptions import InvalidInputError
from ..instance import Instance
from ._data import Problem, as_instances, resolve_device
from ._direction import score_direction
from .config import DEFAULT_INIT_SCALE, init_blocks, instance_seeds
from .heads import get_head
from .losses import Loss, get_loss
from .models import build_model

__all__ = ["PathResult", "regularization_path"]


@dataclass
class PathResult:
    """Outcome of :func:`regularization_path`.

    Attributes
    ----------
    radii : ndarray (R,)
    W : ndarray (R, B, d, d)
        ``W_R`` (``K_R Q_R^T`` for ``KQ``), batch axis dropped for a single instance.
    loss : ndarray (R, B)
    selected : ndarray (R, B, n)
    """

    radii: np.ndarray
    W: np.ndarray
    loss: np.ndarray
    selected: np.ndarray


def regularization_path(data: Instance | Sequence[Instance], radii: Sequence[float],
                        param: str = "W", steps_per_radius: int = 500, lr: float = 0.1,
                        seed: int | Sequence[int] = 0, *, loss: str | Loss = "logistic",
                        init_scale: float = DEFAULT_INIT_SCALE, m: int | None = None,
                        device: Any = "cpu", dtype: torch.dtype = torch.float64) -> PathResult:
    """``W_R = argmin_{||W||_F <= R} L(W)`` for growing ``R`` (warm-started projected NGD).

    For ``KQ`` the constraint is ``||K||_F^2 + ||Q||_F^2 <= 2R`` and the recorded matrix
    ``K Q^T``.  At radius ``R`` step k moves ``lr * R / sqrt(k+1)`` along the exact normalized
    negative gradient (per factor for ``KQ``), then projects back onto the ball.  Theory:
    ``W_R / R -> W^mm / ||W^mm||`` (nuclear-norm solution for ``KQ``).

    Parameters
    ----------
    data : Instance or sequence of Instance
    radii : sequence of float, increasing
    param : {"W", "KQ"}
    steps_per_radius, lr, seed, loss, init_scale, m, device, dtype : as in :func:`train`.

    Returns
    -------
    PathResult
    """
    instances, single = as_instances(data)
    check_choice("param", param, ("W", "KQ"))
    check_positive("steps_per_radius", steps_per_radius, integer=True)
    check_positive("lr", lr)
    R = np.asarray(radii, dtype=np.float64)
    if R.ndim != 1 or R.size == 0 or not np.all(np.isfinite(R)) or np.any(R <= 0):
        raise InvalidInputError("The 'radii' must be a non-empty list of finite numbers > 0.")
    ls = get_loss(loss)
    dev = resolve_device(device)
    B = len(instances)
    n, T, d = instances[0].X.shape
    mm = d if m is None else int(check_positive("m", m, integer=True))
    prob = Problem.from_instances(instances, dev, dtype)
    blocks = {k: torch.as_tensor(a, dtype=dtype, device=dev).clone()
              for k, a in init_blocks(param, "normal", init_scale, instance_seeds(seed, B),
                                      d, mm).items()}
    model = build_model(param, blocks, prob)
    hd = get_head(None)
    Ws, losses, sels = [], [], []
    with torch.inference_mode():
        for r in R:
            cap = r * r if param == "W" else 2.0 * r  # bound on the squared norm
            for k in range(steps_per_radius):
                dirn = score_direction(model.scores(prob), prob, ls, hd)
                step = lr * r / np.sqrt(k + 1.0)
                for P, (G, _) in zip(model.blocks, model.neg_grads(prob, dirn), strict=True):
                    nrm = G.reshape(B, -1).norm(dim=1).reshape((-1,) + (1,) * (G.ndim - 1))
                    P.add_(step * G / torch.where(nrm > 0, nrm, 1.0))
                sq = sum(P.reshape(B, -1).pow(2).sum(1) for P in model.blocks)
                scale = torch.sqrt(torch.clamp(cap / sq, max=1.0))  # type: ignore[operator]
                for P in model.blocks:
                    P.mul_(scale.reshape((-1,) + (1,) * (P.ndim - 1)))
            dirn = score_direction(model.scores(prob), prob, ls, hd)
            KQm = model.key_query()
            assert KQm is not None
            Ws.append(KQm.cpu().numpy().copy())
            losses.append(dirn.loss.cpu().numpy())
            sels.append(dirn.selected.cpu().numpy())
    W = np.stack(Ws)
    L = np.stack(losses)
    S = np.stack(sels)
    if single:
        W, L, S = W[:, 0], L[:, 0], S[:, 0]
    return PathResult(radii=R, W=W, loss=L, selected=S)
