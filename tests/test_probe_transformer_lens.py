"""TransformerLens ``HookedTransformer`` objects (extra ``lens``): tiny configs built in code.

The adapter's logits must give TransformerLens's own ``hook_pattern`` (and equal the finite
entries of ``hook_attn_scores``) to float32 rounding, and ``probe`` must find every head exact.
Skipped when transformer_lens is not installed.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    tl = pytest.importorskip("transformer_lens")
    if not hasattr(tl, "HookedTransformer"):  # pragma: no cover - TransformerLens >= 4
        pytest.skip("this TransformerLens has no HookedTransformer", allow_module_level=True)

from attnsvm.exceptions import InvalidInputError  # noqa: E402
from attnsvm.probe import attention_scores, probe  # noqa: E402
from attnsvm.probe.adapters import find_adapter  # noqa: E402
from attnsvm.probe.adapters.transformer_lens import rope_from_buffers  # noqa: E402

VOCAB = 30522
IDS = np.random.default_rng(0).integers(5, 3000, size=14)

CONFIGS: dict[str, dict[str, Any]] = {
    "standard": dict(positional_embedding_type="standard"),
    "shortformer": dict(positional_embedding_type="shortformer"),
    "rotary": dict(positional_embedding_type="rotary", rotary_dim=8, normalization_type="RMS"),
    # partial rotary, grouped key/value heads (_W_K), GPT-J pairing, own base
    "rotary_gqa_gptj": dict(positional_embedding_type="rotary", rotary_dim=6,
                            n_key_value_heads=2, rotary_adjacent_pairs=True, rotary_base=500,
                            normalization_type="RMS"),
    # a local layer (window 5, its own rope base) and soft-capped scores
    "rotary_local_softcap": dict(positional_embedding_type="rotary", rotary_dim=8,
                                 use_local_attn=True, attn_types=["local", "global"],
                                 window_size=5, rotary_base_local=100, attn_scores_soft_cap=3.0),
    "bidirectional_inverse_layer": dict(scale_attn_by_inverse_layer_idx=True,
                                        attention_dir="bidirectional"),
    "split_qkv_no_norm": dict(normalization_type=None, use_split_qkv_input=True),
    # QK-norm per head (Gemma 3 / Qwen3 style), grouped key heads, rotary
    "qk_norm_rotary_gqa": dict(positional_embedding_type="rotary", rotary_dim=8,
                               use_qk_norm=True, n_key_value_heads=2, normalization_type="RMS"),
    # OLMo-2: post-norm blocks, q/k normalized over all heads of the layer
    "olmo2_qk_norm": dict(positional_embedding_type="rotary", rotary_dim=8,
                          original_architecture="Olmo2ForCausalLM", normalization_type="RMS"),
}


def build(**kw: Any) -> Any:
    """A 2-layer HookedTransformer with random weights and random q/k biases."""
    base = dict(n_layers=2, d_model=32, n_ctx=64, d_head=8, n_heads=4, d_vocab=VOCAB,
                act_fn="gelu", seed=0)
    base.update(kw)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tl.HookedTransformer(tl.HookedTransformerConfig(**base)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".b_Q", ".b_K", "._b_K")):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith((".W_Q", ".W_K", "._W_K")):
                p.mul_(4.0)  # peaked scores: distinct argmaxes
            elif name.endswith(("q_norm.w", "k_norm.w")):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
    return model


def _softmax(S: np.ndarray) -> np.ndarray:
    E = np.exp(S - S.max(axis=-1, keepdims=True))
    return E / E.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_scores_reproduce_hook_pattern(name: str) -> None:
    model = build(**CONFIGS[name])
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.as_tensor(IDS)[None])
    for layer in range(2):
        S = attention_scores(model, IDS, layer)
        P = cache[f"blocks.{layer}.attn.hook_pattern"][0].double().numpy()
        A = cache[f"blocks.{layer}.attn.hook_attn_scores"][0].double().numpy()
        assert S.shape == P.shape == (4, IDS.size, IDS.size)
        assert np.abs(_softmax(S) - P).max() < 1e-5
        fin = np.isfinite(A)
        assert np.array_equal(np.isfinite(S), fin)  # the same mask (causal, window)
        assert np.abs(S[fin] - A[fin]).max() < 1e-5 * max(1.0, np.abs(A[fin]).max())
    ad = find_adapter(model, None)
    f0 = ad.head_forms(0)[0]
    if name == "standard":  # the captured input is ln1's output
        cap = ad.capture(ad_seq(IDS), [0])
        X = cache["blocks.0.ln1.hook_normalized"][0].double().numpy()
        assert np.abs(cap.X[0] - X).max() < 1e-6
    if name == "rotary_gqa_gptj":
        assert f0.rot_dims == 6 and ad.num_heads == 4
        W = model.blocks[0].attn._W_K.detach().double().numpy()  # (2, d, dh)
        perm = [0, 2, 4, 1, 3, 5, 6, 7]  # GPT-J pairs 2j, 2j+1 -> j, j + 3
        assert np.array_equal(ad.head_forms(0)[3].Wk, W[1].T[perm])
    if name == "rotary_local_softcap":
        assert f0.window == 5 and f0.softcap == 3.0 and ad.head_forms(1)[0].window is None
        # each layer's frequencies are its own buffers': base 100 (local) and 10000 (global)
        assert np.allclose(f0.omega, 100.0 ** (-np.arange(4) / 4), atol=1e-6)
        assert np.allclose(ad.head_forms(1)[0].omega, 1e4 ** (-np.arange(4) / 4), atol=1e-6)
    if name in ("qk_norm_rotary_gqa", "olmo2_qk_norm"):
        assert f0.qk_norm and f0.rot_dims == 8
    if name == "bidirectional_inverse_layer":
        assert not ad.causal
        assert ad.head_forms(1)[0].scale == pytest.approx(1 / (2 * np.sqrt(8)))


def ad_seq(ids: np.ndarray) -> Any:
    from attnsvm.probe.scores import ids_sequence

    return ids_sequence(ids)


def test_rope_is_read_from_the_buffers() -> None:
    """Tables that no formula of ours gives (frequencies changed by hand) are used as they are;
    tables that are no rotation are refused."""
    model = build(**CONFIGS["rotary"])
    a = model.blocks[0].attn
    omega = np.array([1.3, 0.41, 0.07, 0.0123])
    ang = np.arange(a.rotary_cos.shape[0])[:, None] * np.concatenate([omega, omega])[None]
    with torch.no_grad():
        a.rotary_cos.copy_(torch.as_tensor(np.cos(ang)))
        a.rotary_sin.copy_(torch.as_tensor(np.sin(ang)))
        _, cache = model.run_with_cache(torch.as_tensor(IDS)[None])
    S = attention_scores(model, IDS, 0)
    assert np.abs(_softmax(S) - cache["blocks.0.attn.hook_pattern"][0].numpy()).max() < 1e-5
    assert np.allclose(find_adapter(model, None).head_forms(0)[0].omega, omega, atol=1e-6)
    w, gain = rope_from_buffers(np.cos(ang), np.sin(ang))
    assert np.allclose(w, omega, atol=1e-12) and gain == pytest.approx(1.0)
    with torch.no_grad():
        a.rotary_sin.mul_(0.5)  # no longer g cos, g sin of one angle
    with pytest.raises(InvalidInputError, match="rotary tables"):
        attention_scores(model, IDS, 0)


@pytest.mark.parametrize("kw, what", [
    (dict(positional_embedding_type="alibi"), "alibi"),
    (dict(clip_qkv=2.0), "clip_qkv"),
    (dict(use_attention_sinks=True), "use_attention_sinks"),
])
def test_what_it_cannot_analyse_is_refused(kw: dict[str, Any], what: str) -> None:
    model = build(**kw)
    with pytest.raises(InvalidInputError, match=what) as err:
        attention_scores(model, IDS, 0)
    assert "\n" not in str(err.value)


def test_a_qk_norm_that_is_no_rms_norm_is_refused() -> None:
    from transformer_lens.components import LayerNorm

    model = build(**CONFIGS["qk_norm_rotary_gqa"])
    model.blocks[1].attn.q_norm = LayerNorm(model.cfg, length=8)
    with pytest.raises(InvalidInputError, match="no RMSNorm"):
        attention_scores(model, IDS, 0)


def test_half_precision_is_refused() -> None:
    model = build(**CONFIGS["standard"]).to(torch.bfloat16)
    with pytest.raises(InvalidInputError, match="bfloat16"):
        attention_scores(model, IDS, 0)


@pytest.mark.parametrize("name", ["standard", "rotary_gqa_gptj", "qk_norm_rotary_gqa"])
def test_probe_finds_every_head_exact(name: str) -> None:
    from attnsvm.probe.models import load_tokenizer, resolve_model

    tok = load_tokenizer(resolve_model("minilm"))
    res = probe(build(**CONFIGS[name]), tokenizer=tok, layers=[1], nuclear=False, out=None,
                seq_len=12, max_queries=24)
    assert res.summary["family"] == "transformer_lens" and len(res.heads) == 4
    for h in res.heads:
        assert h["exact"] is True and h["selections_reproduced"] == 1.0
        assert h["rotary"] is (name != "standard")
        if h["rotary"]:
            assert isinstance(h["corr_rope"], float) and np.isfinite(h["corr_rope"])
            assert h["approximate"] is True  # the position-free fields are labelled
        else:
            assert h["status"] in ("optimal", "infeasible")
