"""LLaMA-style decoders (LLaMA, SmolLM2): full rotary, grouped key/value heads, optional biases.

The attention module's input is the RMS-normalized residual stream (``input_layernorm``); the
head's score is ``scale * (R(p) q)^T (R(r) k)`` with the model's own frequencies, analysed
exactly by the lifted rotary form (:mod:`attnsvm.probe.rope`).
"""

from __future__ import annotations

from ._decoder import RotaryDecoderAdapter

__all__ = ["LlamaAdapter"]


class LlamaAdapter(RotaryDecoderAdapter):
    """``model_type`` llama (SmolLM2 is one)."""

    family = "llama"
    model_types = ("llama",)
