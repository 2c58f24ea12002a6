"""Qwen2 decoders: LLaMA layout with query/key biases (the key bias does not cancel under the
rotation, so the key side is augmented ``[x; 1]``) and optional sliding-window layers."""

from __future__ import annotations

from ._decoder import RotaryDecoderAdapter

__all__ = ["Qwen2Adapter"]


class Qwen2Adapter(RotaryDecoderAdapter):
    """``model_type`` qwen2."""

    family = "qwen2"
    model_types = ("qwen2",)
