"""BERT-style post-norm encoders (BERT, RoBERTa, MiniLM, ELECTRA, ...) and DistilBERT.

Post-norm: every sublayer ends with a LayerNorm, so the hidden state that enters a layer's
self-attention is already normalized (by the embedding LayerNorm for layer 0, by the previous
layer's output LayerNorm after that).  That hidden state is both the key-side token x_t and the
query z.  Attention is bidirectional, without position-dependent terms in the score (absolute
position embeddings are added to the input), so the head's bilinear form is exact.  Relative
position embeddings (``position_embedding_type`` other than ``absolute``) add score terms the
form does not hold: refused.
"""

from __future__ import annotations

from typing import Any

from ...exceptions import InvalidInputError
from ..capture import (
    Adapter,
    Capture,
    HeadForm,
    run_with_input_hooks,
    split_head_forms,
    to_numpy,
)
from ..corpus import Sequence
from ._decoder import model_type

__all__ = ["BertAdapter", "DistilBertAdapter"]


def _hidden_input(cap: Capture, li: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    hs = args[0] if args else kwargs["hidden_states"]
    cap.X[li] = to_numpy(hs[0])


class BertAdapter(Adapter):
    """Reads ``encoder.layer[i].attention.self.{query,key}`` of a BERT-style model."""

    family = "bert"
    causal = False
    rotary = False

    def __init__(self, model: Any, tokenizer: Any) -> None:
        super().__init__(model, tokenizer)
        self.base = getattr(model, "base_model", model)
        self.layers = self.base.encoder.layer
        cfg = model.config
        pet = getattr(cfg, "position_embedding_type", "absolute") or "absolute"
        if pet != "absolute" or getattr(cfg, "is_decoder", False):
            raise InvalidInputError(
                f"This {model_type(model)} model uses position_embedding_type '{pet}'"
                + (" as a decoder" if getattr(cfg, "is_decoder", False) else "")
                + "; the probe analyses encoders with absolute positions only."
            )
        self._H = int(cfg.num_attention_heads)
        self._d = int(cfg.hidden_size)

    @staticmethod
    def matches(model: Any) -> bool:
        """True when the model has the BERT module layout."""
        base = getattr(model, "base_model", model)
        try:
            sa = base.encoder.layer[0].attention.self
        except (AttributeError, IndexError, TypeError):
            return False
        return all(hasattr(sa, a) for a in ("query", "key", "value"))

    def head_forms(self, layer: int) -> list[HeadForm]:
        sa = self.layers[layer].attention.self
        dh = int(sa.attention_head_size)
        scale = float(getattr(sa, "scaling", dh**-0.5))
        return split_head_forms(layer, sa.query, sa.key, dh, self._H, self._H, scale, False)

    def capture(self, sequence: Sequence, layers: list[int]) -> Capture:
        modules = {li: self.layers[li].attention.self for li in layers}
        return run_with_input_hooks(self.base, modules, sequence, _hidden_input)


class DistilBertAdapter(Adapter):
    """Reads ``transformer.layer[i].attention.{q_lin,k_lin}`` of a DistilBERT model."""

    family = "distilbert"
    causal = False
    rotary = False

    def __init__(self, model: Any, tokenizer: Any) -> None:
        super().__init__(model, tokenizer)
        self.base = getattr(model, "base_model", model)
        self.layers = self.base.transformer.layer
        cfg = model.config
        self._H = int(cfg.n_heads)
        self._d = int(cfg.dim)

    @staticmethod
    def matches(model: Any) -> bool:
        """``model_type`` distilbert."""
        return model_type(model) == "distilbert"

    def head_forms(self, layer: int) -> list[HeadForm]:
        sa = self.layers[layer].attention
        dh = self._d // self._H
        scale = float(getattr(sa, "scaling", dh**-0.5))
        return split_head_forms(layer, sa.q_lin, sa.k_lin, dh, self._H, self._H, scale, False)

    def capture(self, sequence: Sequence, layers: list[int]) -> Capture:
        modules = {li: self.layers[li].attention for li in layers}
        return run_with_input_hooks(self.base, modules, sequence, _hidden_input)
