"""GPT-NeoX / Pythia decoders: a fused ``query_key_value`` map laid out per head as
``[q_h; k_h; v_h]`` (rows ``3 h dh ..``), partial rotary (``rotary_ndims`` from
``rotary_pct`` / ``partial_rotary_factor``), biases on q and k."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..capture import to_numpy
from ._decoder import RotaryDecoderAdapter

__all__ = ["GPTNeoXAdapter"]


class GPTNeoXAdapter(RotaryDecoderAdapter):
    """``model_type`` gpt_neox."""

    family = "gpt_neox"
    model_types = ("gpt_neox",)

    def attn(self, layer: int) -> Any:
        return self.layers[layer].attention

    def rot_dims(self, layer: int) -> int:
        return int(self.attn(layer).rotary_ndims)

    def projections(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        lin = self.attn(layer).query_key_value
        W = to_numpy(lin.weight)  # (3 H dh, d)
        b = to_numpy(lin.bias) if lin.bias is not None else np.zeros(W.shape[0])
        H, dh = self._H, self._dh
        W3, b3 = W.reshape(H, 3, dh, -1), b.reshape(H, 3, dh)
        return (W3[:, 0].reshape(H * dh, -1), b3[:, 0].reshape(-1),
                W3[:, 1].reshape(H * dh, -1), b3[:, 1].reshape(-1))
