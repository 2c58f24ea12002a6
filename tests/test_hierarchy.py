"""The hierarchy test of attnsvm track: layer l's SVM on its input vs on the embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from attnsvm.lm import PretrainConfig, TrackOptions, pretrain, track  # noqa: E402
from attnsvm.lm.hierarchy import embedding_inputs, hierarchy_fields, input_norm  # noqa: E402
from attnsvm.probe.corpus import make_sequences, read_corpus  # noqa: E402
from attnsvm.probe.models import load_model, load_tokenizer, resolve_model  # noqa: E402

TINY = dict(task="induction", layers=2, heads=2, d_model=16, steps=12, checkpoints=1, batch=8,
            vocab=12, segment=4, noise=4)


@pytest.fixture(scope="module", params=["rope", "learned"])
def last_ckpt(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Path:
    out = tmp_path_factory.mktemp(f"hier-{request.param}") / "run"
    pretrain(PretrainConfig(positions=request.param, **TINY), out)  # type: ignore[arg-type]
    return out / "step-000012"


def _adapter_and_seqs(path: Path) -> tuple[object, list]:
    src = resolve_model(str(path))
    tok = load_tokenizer(src)
    seqs = make_sequences(tok, read_corpus(str(path / "attnsvm_eval.txt")), seq_len=13,
                          max_queries=52)
    return load_model(src, tok)[1], seqs


def test_tokens_are_the_hidden_states_feeding_each_layer(last_ckpt: Path) -> None:
    """X_l = norm_l(h_l) and E_l = norm_l(h_0), with h_l = output_hidden_states[l] of the model
    run independently; for layer 0 both coincide bit for bit."""
    ad, seqs = _adapter_and_seqs(last_ckpt)
    model = ad.model  # type: ignore[attr-defined]
    for seq in seqs:
        cap, emb = embedding_inputs(ad, seq, [0, 1])
        ids = torch.as_tensor(seq.ids)[None]
        with torch.no_grad():
            hs = model(input_ids=ids, output_hidden_states=True).hidden_states  # L + 1
            for li in (0, 1):
                norm = input_norm(ad.layers[li])  # type: ignore[attr-defined]
                want_x = norm(hs[li])[0].double().numpy()
                want_e = norm(hs[0])[0].double().numpy()
                np.testing.assert_allclose(cap.X[li], want_x, rtol=0, atol=1e-6)
                np.testing.assert_allclose(emb[li], want_e, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(emb[0], cap.X[0])  # exactly the same tokens
        assert not np.allclose(emb[1], cap.X[1])  # layer 0 changed what layer 1 reads
        if model.config.model_type == "gpt2":  # h_0 = token + learned position embeddings
            base = model.base_model
            with torch.no_grad():
                h0 = base.wte(ids) + base.wpe(torch.arange(ids.shape[1])[None])
                e1 = base.h[1].ln_1(h0)[0].double().numpy()
            np.testing.assert_allclose(emb[1], e1, rtol=0, atol=1e-6)


def test_track_hierarchy_fields(last_ckpt: Path, tmp_path: Path) -> None:
    """Layer 0: the embedding analysis is the probe's (delta 0); every layer: the embedding
    instance keeps the head's selections (same number of constraints)."""
    res = track([last_ckpt], TrackOptions(nuclear=False, hierarchy=True), tmp_path / "t")
    recs = res.summary["checkpoints"][0]["heads"]
    assert len(recs) == 4
    for r in recs:
        rope = r["rotary"]
        assert r["hier_target"] == ("rope" if rope else "fro")
        if r["layer"] == 0:
            for f in ("corr_fro", "corr_control", "margin_ratio", "feasible", "corr_rope",
                      "corr_rope_control", "rope_margin_ratio"):
                assert r[f"{f}_emb"] == r[f], f
            assert r["hier_gain_emb"] == r["hier_gain_input"]
            assert r["hier_delta"] in (0.0, None)
        if r["hier_gain_input"] is not None and r["hier_gain_emb"] is not None:
            assert r["hier_delta"] == pytest.approx(r["hier_gain_input"] - r["hier_gain_emb"])
        key = ("corr_rope", "corr_rope_control") if rope else ("corr_fro", "corr_control")
        if r[key[0]] is not None:
            assert r["hier_gain_input"] == pytest.approx(r[key[0]] - r[key[1]])
    series = res.summary["series"]
    assert all("hier_gain_input" in s for s in series if s["layer"] == 0)
    page = (tmp_path / "t" / "index.html").read_text()
    assert "Hierarchy" in page


def test_hierarchy_fields_without_a_solution() -> None:
    rec = {"rotary": False, "corr_fro": 0.5, "corr_control": 0.1}
    out = hierarchy_fields(rec, {"feasible": False, "status": "infeasible"})
    assert out["hier_gain_input"] == pytest.approx(0.4)
    assert out["hier_gain_emb"] is None and out["hier_delta"] is None
    assert out["feasible_emb"] is False and out["hier_target"] == "fro"
