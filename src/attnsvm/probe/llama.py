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

from .capture import (
    Adapter,
    Capture,
    HeadForm,
    run_with_input_hooks,
    split_head_forms,
    to_numpy,
)
from .corpus import Sequence

__all__ = ["LlamaAdapter"]




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

    def head_forms(self, layer: int) -> list[HeadForm]:
        sa = self.layers[layer].self_attn
        scale = float(getattr(sa, "scaling", self._dh**-0.5))
        return split_head_forms(layer, sa.q_proj, sa.k_proj, self._dh, self._H, self._Hkv,
                                scale, True)

    def capture(self, sequence: Sequence, layers: list[int]) -> Capture:
        def on_input(cap: Capture, li: int, args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> None:
            hs = args[0] if args else kwargs["hidden_states"]
            cap.X[li] = to_numpy(hs[0])
            pe = kwargs.get("position_embeddings")
            if pe is None and len(args) > 1:
                pe = args[1]
            if pe is not None and cap.rope is None:
                cap.rope = (to_numpy(pe[0][0]), to_numpy(pe[1][0]))

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
