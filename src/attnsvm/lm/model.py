"""The decoder-only transformer ``attnsvm pretrain`` trains: a Hugging Face model, so that the
probe's adapters are its only reader.

- ``positions="rope"``: :class:`transformers.LlamaForCausalLM` (pre-norm RMSNorm, rotary
  embeddings, SwiGLU MLP of width ``4 d``, no biases).
- ``positions="learned"``: :class:`transformers.GPT2LMHeadModel` (learned absolute positions,
  LayerNorm, GELU MLP of width ``4 d``, all dropouts 0).

Both untie the output layer from the embedding and use eager attention, so
``output_attentions`` returns the softmax the model applies.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import require
from .config import PretrainConfig

__all__ = ["build_model", "model_config"]


def model_config(cfg: PretrainConfig, vocab_size: int, bos_id: int) -> Any:
    """The ``transformers`` configuration of the model of ``cfg``.

    Parameters
    ----------
    cfg : PretrainConfig
    vocab_size : int
        Rows of the embedding table (the tokenizer's length).
    bos_id : int
        Id of the beginning-of-sequence token (also used as end and padding id).
    """
    transformers: Any = require("transformers", "probe")
    T = max(cfg.resolved_seq_len(), 64)
    if cfg.positions == "rope":
        return transformers.LlamaConfig(
            vocab_size=vocab_size, hidden_size=cfg.d_model, intermediate_size=4 * cfg.d_model,
            num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
            num_key_value_heads=cfg.heads, max_position_embeddings=T, rms_norm_eps=1e-5,
            rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
            mlp_bias=False, bos_token_id=bos_id, eos_token_id=bos_id, pad_token_id=bos_id,
            use_cache=False, attn_implementation="eager")
    return transformers.GPT2Config(
        vocab_size=vocab_size, n_positions=T, n_embd=cfg.d_model, n_layer=cfg.layers,
        n_head=cfg.heads, n_inner=4 * cfg.d_model, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, tie_word_embeddings=False, bos_token_id=bos_id, eos_token_id=bos_id,
        pad_token_id=bos_id, use_cache=False, attn_implementation="eager")


def build_model(cfg: PretrainConfig, vocab_size: int, bos_id: int) -> Any:
    """A freshly initialized causal LM (float32, eager attention), seeded by the caller.

    Returns
    -------
    transformers.PreTrainedModel
        ``LlamaForCausalLM`` or ``GPT2LMHeadModel``.
    """
    transformers: Any = require("transformers", "probe")
    conf = model_config(cfg, vocab_size, bos_id)
    cls = transformers.LlamaForCausalLM if cfg.positions == "rope" else \
        transformers.GPT2LMHeadModel
    return cls(conf)
