"""QK-norm decoders (Qwen3, OLMo-2, Gemma 3): q and k are RMS-normalized before the rotation.

``q_hat = g_q * q / rms(q)`` with ``q = W_Q z + b_Q`` and ``rms`` over the head's ``d_head``
entries (Qwen3, Gemma 3) or over all heads' entries of the layer (OLMo-2).  Since ``1 / rms``
is one number per token, ``q_hat = (g_q W_Q) (z / rms) + (g_q b_Q) / rms``: the head is exactly
bilinear in the rescaled inputs ``z_hat = [z; 1] / rms_q`` and ``x_hat = x / rms_k`` (the
head's normalized coordinates), with the gains folded into the maps.  The probe analyses the
head there.  The norm's formula is checked against the module itself (gain ``w`` or, Gemma,
``1 + w``) on a random input; a norm that matches neither is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...exceptions import InvalidInputError
from ..capture import to_numpy
from ._decoder import RotaryDecoderAdapter, model_type

__all__ = ["QKNormAdapter"]


def _norm_spec(norm: Any, width: int) -> tuple[np.ndarray, float]:
    """``(gain (width,), eps)`` of an RMS norm module, checked against its forward."""
    import torch

    w = getattr(norm, "weight", None)
    eps = getattr(norm, "variance_epsilon", None)
    if eps is None:
        eps = getattr(norm, "eps", None)
    if w is None or eps is None or w.numel() != width or getattr(norm, "bias", None) is not None:
        raise InvalidInputError(
            f"The q/k norm {type(norm).__name__} is not an RMS norm of width {width} the probe "
            "knows; refused."
        )
    x = torch.randn(3, width, generator=torch.Generator().manual_seed(0), dtype=w.dtype)
    with torch.no_grad():
        y = to_numpy(norm(x))
    xn = to_numpy(x)
    r = xn / np.sqrt(np.mean(xn**2, axis=-1, keepdims=True) + float(eps))
    wn = to_numpy(w)
    for gain in (wn, 1.0 + wn):
        if np.abs(r * gain - y).max() <= 1e-5 * max(1.0, float(np.abs(y).max())):
            return gain, float(eps)
    raise InvalidInputError(
        f"The q/k norm {type(norm).__name__} does not compute g * x / rms(x); refused."
    )


def _inv_rms(v: np.ndarray, eps: float) -> np.ndarray:
    return 1.0 / np.sqrt(np.mean(v**2, axis=-1) + eps)


class QKNormAdapter(RotaryDecoderAdapter):
    """``model_type`` qwen3, olmo2, gemma3_text (and gemma3 text towers)."""

    family = "qk_norm"
    model_types = ("qwen3", "olmo2", "gemma3_text")

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self._specs: dict[int, tuple[np.ndarray, float, np.ndarray, float, bool]] = {}
        super().__init__(model, tokenizer)
        self.family = model_type(model)

    def _check(self, layer: int) -> None:
        super()._check(layer)
        sa = self.attn(layer)
        qn, kn = getattr(sa, "q_norm", None), getattr(sa, "k_norm", None)
        if qn is None or kn is None:
            raise InvalidInputError(
                f"layer {layer}: expected q_norm and k_norm on the attention module; refused."
            )
        dh, H, Hkv = self._dh, self._H, self._Hkv
        per_head = qn.weight.numel() == dh
        gq, eq = _norm_spec(qn, dh if per_head else H * dh)
        gk, ek = _norm_spec(kn, dh if per_head else Hkv * dh)
        self._specs[layer] = (gq, eq, gk, ek, per_head)

    def gains(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        gq, _, gk, _, per_head = self._specs[layer]
        if per_head:
            return np.tile(gq, self._H), np.tile(gk, self._Hkv)
        return gq, gk

    def norm_factors(self, layer: int, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, eq, _, ek, per_head = self._specs[layer]
        Wq, bq, Wk, bk = self.projections(layer)
        q, k = X @ Wq.T + bq, X @ Wk.T + bk  # (T, H dh), (T, H_kv dh)
        T, H, Hkv, dh = X.shape[0], self._H, self._Hkv, self._dh
        if per_head:
            qs = _inv_rms(q.reshape(T, H, dh), eq).T  # (H, T)
            ks = _inv_rms(k.reshape(T, Hkv, dh), ek).T  # (H_kv, T)
        else:
            qs = np.broadcast_to(_inv_rms(q, eq), (H, T)).copy()
            ks = np.broadcast_to(_inv_rms(k, ek), (Hkv, T)).copy()
        return qs, np.repeat(ks, H // Hkv, axis=0)
