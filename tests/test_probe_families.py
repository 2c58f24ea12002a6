"""Parity of every family's adapter with the transformers implementation (tiny random models
built in code): softmax(attention_scores) equals the model's own eager attention."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from attnsvm.exceptions import InvalidInputError  # noqa: E402
from attnsvm.probe import attention_scores  # noqa: E402
from attnsvm.probe.adapters import find_adapter  # noqa: E402
from probe_families import build_model, family_configs  # noqa: E402

CONFIGS = family_configs()
IDS = np.random.default_rng(0).integers(5, 3000, size=13)


def _softmax(S: np.ndarray) -> np.ndarray:
    S = S - S.max(axis=-1, keepdims=True)
    E = np.exp(S)
    return E / E.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_scores_give_the_models_own_attention(name: str) -> None:
    model = build_model(name, CONFIGS[name])
    with torch.no_grad():
        ids = torch.as_tensor(IDS)[None]
        att = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                    output_attentions=True).attentions
    for layer in range(2):
        S = attention_scores(model, IDS, layer)
        P = att[layer][0].double().numpy()
        assert S.shape == P.shape
        assert np.abs(_softmax(S) - P).max() < 1e-5
        # masked entries are -inf and only those: the model gives them probability 0
        assert np.array_equal(np.isneginf(S), P == 0) or not np.isneginf(S).any()
    ad = find_adapter(model, None)
    forms = ad.head_forms(0)
    if name in ("gemma2",):
        assert forms[0].softcap == 3.0
        # the SVM is of the pre-cap score: the capped logits are bounded by the cap
        assert np.nanmax(np.abs(S[np.isfinite(S)])) <= 3.0
    if name in ("gpt_neox", "phi"):
        assert 0 < forms[0].rot_dims < forms[0].Wq.shape[0]  # partial rotary
    if name == "mistral":
        assert forms[0].window == 5 and np.isneginf(S[0, 10, 2])  # outside the window
    if name in ("qwen3", "olmo2", "gemma3"):
        assert forms[0].qk_norm


def test_sdpa_model_in_memory_gives_the_same_scores() -> None:
    eager = build_model("qwen3", CONFIGS["qwen3"])
    sdpa = build_model("qwen3", CONFIGS["qwen3"], attn="sdpa")
    assert sdpa.config._attn_implementation == "sdpa"
    S1, S2 = attention_scores(eager, IDS, 1), attention_scores(sdpa, IDS, 1)
    assert np.allclose(S1, S2, atol=1e-6, equal_nan=True)
    assert sdpa.config._attn_implementation == "sdpa"  # restored


def test_rope_from_the_model_not_a_formula() -> None:
    # linear rope scaling (factor 2): the frequencies are the model's inv_freq, halved
    model = build_model("llama", CONFIGS["llama"])
    ad = find_adapter(model, None)
    f = ad.head_forms(0)[0]
    base = 1.0 / (CONFIGS["llama"].rope_parameters["rope_theta"]
                  ** (np.arange(0, f.rot_dims, 2) / f.rot_dims))
    assert np.allclose(f.omega, base / 2.0)


def test_unsupported_features_refused() -> None:
    import transformers as tr

    cfg = tr.PhiConfig(vocab_size=100, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=1, num_attention_heads=4, qk_layernorm=True)
    with pytest.raises(InvalidInputError, match="qk_layernorm"):
        find_adapter(tr.AutoModel.from_config(cfg), None)
    cfg2 = tr.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=4, intermediate_size=64,
                         position_embedding_type="relative_key")
    with pytest.raises(InvalidInputError, match="relative_key"):
        find_adapter(tr.AutoModel.from_config(cfg2), None)
    cfg3 = tr.GPTJConfig(vocab_size=100, n_embd=32, n_layer=1, n_head=4, rotary_dim=4)
    with pytest.raises(InvalidInputError, match="No probe adapter"):
        find_adapter(tr.AutoModel.from_config(cfg3), None)


def test_lifted_factors_match_the_full_lifted_head() -> None:
    from attnsvm.probe.rope import LiftedFactors, lifted_head
    from attnsvm.svm.rotary import lifted_norm

    model = build_model("gpt_neox", CONFIGS["gpt_neox"])  # partial rotary: M_f and W_0
    f = find_adapter(model, None).head_forms(0)[1]
    M, W0 = lifted_head(f)
    fac = LiftedFactors(f)
    rng = np.random.default_rng(0)
    B = np.linalg.qr(rng.standard_normal((M.shape[1], 5)))[0]
    C = np.linalg.qr(rng.standard_normal((M.shape[2], 4)))[0]
    Mr, W0r = fac.reduced(B, C, 5)
    assert np.allclose(Mr[:, :, :4], np.einsum("ia,fij,jb->fab", B, M, C))
    assert W0 is not None and W0r is not None and np.allclose(W0r[:, :4], B.T @ W0 @ C)
    assert np.isclose(fac.norm(), lifted_norm(M, W0))
    # inner products with a parameter in the reduced coordinates, one head and all at once
    from attnsvm.probe.rope import lifted_inner

    Mt = rng.standard_normal(Mr.shape) + 1j * rng.standard_normal(Mr.shape)
    W0t = rng.standard_normal(W0r.shape)
    assert np.isclose(fac.inner(B, C, Mt, W0t), lifted_inner(Mr, W0r, Mt, W0t), rtol=1e-12)
    facs = [LiftedFactors(g) for g in find_adapter(model, None).head_forms(0)]
    want = [lifted_inner(*g.reduced(B, C, 5), Mt, W0t) for g in facs]
    assert np.allclose(LiftedFactors.inners(facs, B, C, Mt, W0t), want, rtol=1e-12, atol=0)
    assert np.allclose(LiftedFactors.inners(facs, B, C, Mt, None),
                       [lifted_inner(g.reduced(B, C, 5)[0], None, Mt, None) for g in facs],
                       rtol=1e-12, atol=0)
