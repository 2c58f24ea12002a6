"""Gemma 2 decoders: score scale ``query_pre_attn_scalar ** -0.5`` (the module's ``scaling``),
logit soft-capping ``c tanh(s / c)`` (monotone: selections and the Att-SVM are of the pre-cap
score ``s``; :func:`attnsvm.probe.attention_scores` returns the capped logits), and sliding
windows on alternate layers."""

from __future__ import annotations

from ._decoder import RotaryDecoderAdapter

__all__ = ["Gemma2Adapter"]


class Gemma2Adapter(RotaryDecoderAdapter):
    """``model_type`` gemma2."""

    family = "gemma2"
    model_types = ("gemma2",)
