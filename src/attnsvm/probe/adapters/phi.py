"""Phi decoders (Phi-1/1.5/2): partial rotary (the module's ``rotary_ndims``, from
``partial_rotary_factor``); the other dimensions give the position-free block ``W_0``.
``qk_layernorm`` (LayerNorm of q and k) is refused."""

from __future__ import annotations

from ...exceptions import InvalidInputError
from ._decoder import RotaryDecoderAdapter

__all__ = ["PhiAdapter"]


class PhiAdapter(RotaryDecoderAdapter):
    """``model_type`` phi."""

    family = "phi"
    model_types = ("phi",)

    def _check(self, layer: int) -> None:
        super()._check(layer)
        if getattr(self.attn(layer), "qk_layernorm", False):
            raise InvalidInputError(
                "This Phi model normalizes q and k with qk_layernorm (LayerNorm with a bias), "
                "which the probe does not analyse exactly; refused."
            )

    def rot_dims(self, layer: int) -> int:
        return int(self.attn(layer).rotary_ndims)
