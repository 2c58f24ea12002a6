"""Adapter for LLaMA-style pre-norm decoders with grouped key/value heads (LLaMA, SmolLM2,
Mistral, Qwen2, ...).

Pre-norm: each layer normalizes its residual stream with ``input_layernorm`` (RMSNorm with its
gain) right before the attention; that normalized vector is the key-side token x_t and the query
z.  Query head h reads key/value group ``h // (H / H_kv)``.  Rotary position embeddings rotate q
and k by position-dependent angles, so the score is ``x_t^T W_K^T R(t)^T R(s) W_Q z`` and depends
on the positions: the probe uses the position-free form ``W_K^T W_Q / sqrt(d_head)`` and reports
how many argmaxes it reproduces.  :meth:`LlamaAdapter.exact_scores` applies the model's own rotary
tables and reproduces the model's scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .capture import Adapter, Capture, HeadForm, run_with_input_hooks, to_numpy
from .corpus import Sequence

__all__ = ["LlamaAdapter"]


_np = to_numpy


def _rotate_half(x: np.ndarray) -> np.ndarray:
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


class LlamaAdapter(Adapter):
    """Reads ``model.layers[i].self_attn.{q_proj,k_proj}`` and ``input_layernorm``."""

    family = "llama"
    causal = True
    rotary = True

    def __init__(self, model: Any, tokenizer: Any) -> None:
        super().__init__(model, tokenizer)
        base = getattr(model, "model", None)
        self.base = base if base is not None and hasattr(base, "layers") else model
        self.layers = self.base.layers
        cfg = model.config
        self._H = int(cfg.num_attention_heads)
        self._Hkv = int(getattr(cfg, "num_key_value_heads", None) or self._H)
        self._d = int(cfg.hidden_size)
        self._dh = int(getattr(cfg, "head_dim", None) or self._d // self._H)

    @staticmethod
    def matches(model: Any) -> bool:
        """True when the model has the LLaMA module layout."""
        base = getattr(model, "model", model)
        try:
            layer = base.layers[0]
        except (AttributeError, IndexError, TypeError):
            return False
        sa = getattr(layer, "self_attn", None)
        return (
            sa is not None
            and hasattr(sa, "q_proj")
            and hasattr(sa, "k_proj")
            and hasattr(layer, "input_layernorm")
        )

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_heads(self) -> int:
        return self._H

    @property
    def hidden_size(self) -> int:
        return self._d

    def head_forms(self, layer: int) -> list[HeadForm]:
        sa = self.layers[layer].self_attn
        dh = self._dh
        Wq, Wk = _np(sa.q_proj.weight), _np(sa.k_proj.weight)
        bq = _np(sa.q_proj.bias) if sa.q_proj.bias is not None else np.zeros(Wq.shape[0])
        bk = _np(sa.k_proj.bias) if sa.k_proj.bias is not None else np.zeros(Wk.shape[0])
        scale = float(getattr(sa, "scaling", dh**-0.5))
        group = self._H // self._Hkv
        forms = []
        for h in range(self._H):
            sq = slice(h * dh, (h + 1) * dh)
            g = h // group
            sk = slice(g * dh, (g + 1) * dh)
            forms.append(HeadForm(layer, h, Wq[sq], bq[sq], Wk[sk], bk[sk], scale, True))
        return forms

    def capture(self, sequence: Sequence, layers: list[int]) -> Capture:
        def on_input(cap: Capture, li: int, args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> None:
            hs = args[0] if args else kwargs["hidden_states"]
            cap.X[li] = _np(hs[0])
            pe = kwargs.get("position_embeddings")
            if pe is None and len(args) > 1:
                pe = args[1]
            if pe is not None and cap.rope is None:
                cap.rope = (_np(pe[0][0]), _np(pe[1][0]))

        modules = {li: self.layers[li].self_attn for li in layers}
        return run_with_input_hooks(self.base, modules, sequence, on_input, use_cache=False)

    def exact_scores(self, form: HeadForm, capture: Capture) -> np.ndarray:
        """The model's scores with the rotary tables applied, shape (T, T)."""
        X = capture.X[form.layer]
        q = X @ form.Wq.T + form.bq
        k = X @ form.Wk.T + form.bk
        if capture.rope is not None:
            cos, sin = capture.rope
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
        return form.scale * (q @ k.T)
