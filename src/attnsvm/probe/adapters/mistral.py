"""Mistral decoders: LLaMA layout with a sliding window (query p sees keys r with
``p - window < r <= p``), read from each attention module's ``sliding_window``."""

from __future__ import annotations

from ._decoder import RotaryDecoderAdapter

__all__ = ["MistralAdapter"]


class MistralAdapter(RotaryDecoderAdapter):
    """``model_type`` mistral."""

    family = "mistral"
    model_types = ("mistral",)

    def window(self, layer: int) -> int | None:
        """Every layer: the config's ``sliding_window`` (None: full causal attention)."""
        w = getattr(self.model.config, "sliding_window", None)
        return int(w) if w else None
