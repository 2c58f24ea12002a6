"""One adapter per architecture family, each parity-tested against transformers.

:func:`find_adapter` picks the family of a loaded model (by ``model_type``, BERT-style encoders
by their module layout) or refuses it with one line.  Every adapter gives, per head, the
analysed form (:class:`~attnsvm.probe.capture.HeadForm`) whose scores
(:func:`attnsvm.probe.form.head_scores`) are the model's own.
"""

from __future__ import annotations

from typing import Any

from ...exceptions import InvalidInputError
from ..capture import Adapter
from ._decoder import RotaryDecoderAdapter, model_type
from .bert import BertAdapter, DistilBertAdapter
from .gemma2 import Gemma2Adapter
from .gpt2 import GPT2Adapter
from .gpt_neox import GPTNeoXAdapter
from .llama import LlamaAdapter
from .mistral import MistralAdapter
from .phi import PhiAdapter
from .qk_norm import QKNormAdapter
from .qwen2 import Qwen2Adapter
from .transformer_lens import TransformerLensAdapter

__all__ = ["ADAPTERS", "find_adapter", "SUPPORTED", "BertAdapter", "DistilBertAdapter",
           "GPT2Adapter", "GPTNeoXAdapter", "PhiAdapter", "LlamaAdapter", "Qwen2Adapter",
           "MistralAdapter", "Gemma2Adapter", "QKNormAdapter", "RotaryDecoderAdapter",
           "TransformerLensAdapter"]

#: TransformerLens by class, model_type-matched families next; the BERT layout match last.
ADAPTERS: tuple[type[Adapter], ...] = (
    TransformerLensAdapter, LlamaAdapter, Qwen2Adapter, MistralAdapter, Gemma2Adapter,
    QKNormAdapter, PhiAdapter, GPTNeoXAdapter, GPT2Adapter, DistilBertAdapter, BertAdapter,
)

SUPPORTED = ("BERT-style encoders, DistilBERT, GPT-2, GPT-NeoX/Pythia, Phi, LLaMA/SmolLM2, "
             "Qwen2, Mistral, Gemma 2, Qwen3, OLMo-2, Gemma 3, TransformerLens HookedTransformer")


def find_adapter(model: Any, tokenizer: Any) -> Adapter:
    """Wrap a loaded transformers model in its family's adapter.

    Raises
    ------
    InvalidInputError
        No family matches, or the family refuses a feature it cannot analyse exactly.
    """
    for cls in ADAPTERS:
        if cls.matches(model):
            return cls(model, tokenizer)
    raise InvalidInputError(
        f"No probe adapter for the architecture '{type(model).__name__}' (model_type "
        f"'{model_type(model) or '?'}'); supported: {SUPPORTED}."
    )
