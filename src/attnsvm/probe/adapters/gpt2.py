"""GPT-2 decoders: learned absolute positions (added to the input, so the bilinear form is
exact), pre-norm (``ln_1`` before ``attn``), a fused ``c_attn`` Conv1D whose weight is stored
transposed, (d, 3 d): ``[q | k | v] = x W + b``; the score scale is the module's ``scaling``
(``scale_attn_weights``, ``scale_attn_by_inverse_layer_idx``)."""

from __future__ import annotations

from typing import Any

from ...exceptions import InvalidInputError
from ..capture import Adapter, Capture, HeadForm, run_with_input_hooks, to_numpy
from ..corpus import Sequence
from ._decoder import model_type

__all__ = ["GPT2Adapter"]


class GPT2Adapter(Adapter):
    """``model_type`` gpt2: ``h[i].attn.c_attn``."""

    family = "gpt2"
    causal = True
    rotary = False

    def __init__(self, model: Any, tokenizer: Any) -> None:
        super().__init__(model, tokenizer)
        self.base = getattr(model, "base_model", model)
        self.layers = self.base.h
        cfg = model.config
        if getattr(cfg, "add_cross_attention", False):
            raise InvalidInputError("GPT-2 with cross-attention is not supported; refused.")
        self._H = int(cfg.n_head)
        self._d = int(cfg.n_embd)

    @staticmethod
    def matches(model: Any) -> bool:
        """``model_type`` gpt2."""
        return model_type(model) == "gpt2"

    def head_forms(self, layer: int) -> list[HeadForm]:
        sa = self.layers[layer].attn
        W = to_numpy(sa.c_attn.weight)  # (d, 3 d)
        b = to_numpy(sa.c_attn.bias)
        d, H = self._d, self._H
        dh = d // H
        scale = float(sa.scaling)
        forms = []
        for h in range(H):
            q = slice(h * dh, (h + 1) * dh)
            k = slice(d + h * dh, d + (h + 1) * dh)
            forms.append(HeadForm(layer, h, W[:, q].T.copy(), b[q].copy(), W[:, k].T.copy(),
                                  b[k].copy(), scale, False, causal=True))
        return forms

    def capture(self, sequence: Sequence, layers: list[int]) -> Capture:
        def on_input(cap: Capture, li: int, args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> None:
            hs = args[0] if args else kwargs["hidden_states"]
            cap.X[li] = to_numpy(hs[0])

        modules = {li: self.layers[li].attn for li in layers}
        return run_with_input_hooks(self.base, modules, sequence, on_input, use_cache=False)
