"""attnsvm pretrain: checkpoints that load, reproduce their attention, and repeat bit for bit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

import attnsvm.probe as probe_api  # noqa: E402
from attnsvm.cli.main import main  # noqa: E402
from attnsvm.exceptions import InvalidParameterError  # noqa: E402
from attnsvm.lm import (  # noqa: E402
    PretrainConfig,
    induction_targets,
    make_task,
    pretrain,
    schedule,
)
from attnsvm.lm.optim import Muon, polar  # noqa: E402

TINY = dict(task="induction", layers=2, heads=2, d_model=16, steps=12, checkpoints=3, batch=8,
            vocab=12, segment=4, noise=4)  # sequences of 1 + 2 * 4 + 4 = 13 tokens


@pytest.fixture(scope="module")
def rope_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rope") / "run"
    pretrain(PretrainConfig(**TINY), out)  # type: ignore[arg-type]
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "run.json"}


def test_schedule_log_spaced_with_step_zero() -> None:
    assert schedule(200, 4) == [0, 1, 6, 34, 200]
    for steps, k in [(1, 1), (5, 5), (7, 3), (1000, 10), (50, 49)]:
        s = schedule(steps, k)
        assert len(s) == k + 1 and s[0] == 0 and s[-1] == steps
        assert all(a < b for a, b in zip(s, s[1:], strict=False))


def test_checkpoint_folders_load_and_record_the_run(rope_run: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    run = json.loads((rope_run / "run.json").read_text())
    names = [f"step-{s:06d}" for s in schedule(12, 3)]
    assert run["checkpoints"] == names
    assert sorted(p.name for p in rope_run.iterdir() if p.is_dir()) == names
    assert run["config"]["lr"] == 3e-3 and run["config"]["seq_len"] == 13 and run["seed"] == 0
    for name in names:
        folder = rope_run / name
        model = AutoModel.from_pretrained(str(folder))
        assert type(model).__name__ == "LlamaModel"
        tok = AutoTokenizer.from_pretrained(str(folder))
        assert tok("t3 t0")["input_ids"] == [0, 6, 3]
        meta = json.loads((folder / "attnsvm_task.json").read_text())
        assert meta["task"] == "induction" and meta["seq_len"] == 13
        words = (folder / "attnsvm_eval.txt").read_text().split()
        assert len(words) == 12 * meta["eval_sequences"]
    # step 0 is the initialization: different weights from the last step
    assert _files(rope_run / names[0])["model.safetensors"] != \
        _files(rope_run / names[-1])["model.safetensors"]


def test_same_seed_same_bits_other_seed_differs(rope_run: Path, tmp_path: Path) -> None:
    pretrain(PretrainConfig(**TINY), tmp_path / "again")  # type: ignore[arg-type]
    assert _files(rope_run) == _files(tmp_path / "again")
    pretrain(PretrainConfig(**{**TINY, "seed": 1}), tmp_path / "other")  # type: ignore[arg-type]
    a, b = _files(rope_run), _files(tmp_path / "other")
    assert a["step-000012/model.safetensors"] != b["step-000012/model.safetensors"]


def _eager_probs(model: torch.nn.Module, ids: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor(ids)[None], output_attentions=True)
    return [a[0].double().numpy() for a in out.attentions]  # each (H, T, T)


def _masked_softmax(S: np.ndarray) -> np.ndarray:
    T = S.shape[-1]
    S = np.where(np.tril(np.ones((T, T), dtype=bool)), S, -np.inf)
    S = S - S.max(axis=-1, keepdims=True)
    E = np.exp(S)
    return E / E.sum(axis=-1, keepdims=True)


def _llama_scores(folder: Path, ids: np.ndarray, layer: int) -> np.ndarray:
    """The head logits (H, T, T) from the probe: its public attention_scores when it has it,
    else its LLaMA adapter's exact scores (rotary tables applied)."""
    if hasattr(probe_api, "attention_scores"):
        return np.asarray(probe_api.attention_scores(str(folder), ids, layer))
    src, ad = probe_api.load_model(str(folder))
    seq = probe_api.make_sequences(ad.tokenizer, " ".join(
        ad.tokenizer.convert_ids_to_tokens(ids[1:].tolist())), seq_len=ids.size,
        max_queries=ids.size)[0]
    assert np.array_equal(seq.ids, ids)
    cap = ad.capture(seq, [layer])
    return np.stack([ad.exact_scores(f, cap) for f in ad.head_forms(layer)])


def test_probe_scores_reproduce_the_attention(rope_run: Path) -> None:
    from transformers import AutoModel

    task = make_task(PretrainConfig(**TINY))  # type: ignore[arg-type]
    ids = task.batch(np.random.default_rng(5), 1)[0]
    for folder in sorted(p for p in rope_run.iterdir() if p.is_dir()):
        model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
        P = _eager_probs(model, ids)
        for layer in range(2):
            S = _llama_scores(folder, ids, layer)
            assert S.shape == (2, 13, 13)
            assert np.abs(_masked_softmax(S) - P[layer]).max() < 1e-5


def test_gpt2_learned_positions_checkpoint(tmp_path: Path) -> None:
    """GPT-2 checkpoints: logits recomputed from c_attn reproduce the eager attention."""
    from transformers import AutoModel

    out = tmp_path / "g"
    pretrain(PretrainConfig(**{**TINY, "positions": "learned", "optimizer": "muon",
                               "steps": 4, "checkpoints": 1}), out)  # type: ignore[arg-type]
    model = AutoModel.from_pretrained(str(out / "step-000004"), attn_implementation="eager")
    assert type(model).__name__ == "GPT2Model"
    ids = make_task(PretrainConfig(**TINY)).batch(np.random.default_rng(0), 1)[0]  # type: ignore[arg-type]
    P = _eager_probs(model.eval(), ids)
    hidden: dict[int, torch.Tensor] = {}
    hooks = [blk.attn.register_forward_pre_hook(
        lambda m, a, k, li=li: hidden.__setitem__(li, a[0] if a else k["hidden_states"]),
        with_kwargs=True) for li, blk in enumerate(model.h)]
    with torch.no_grad():
        model(input_ids=torch.as_tensor(ids)[None])
    for hk in hooks:
        hk.remove()
    for li, blk in enumerate(model.h):
        with torch.no_grad():
            w, b = blk.attn.c_attn.weight.double(), blk.attn.c_attn.bias.double()
            qkv = hidden[li][0].double() @ w + b  # Conv1D: (T, d) @ (d, 3d)
        q, k, _ = qkv.split(16, dim=-1)
        q, k = q.view(13, 2, 8).transpose(0, 1), k.view(13, 2, 8).transpose(0, 1)
        S = (q @ k.transpose(1, 2) / math.sqrt(8)).numpy()
        assert np.abs(_masked_softmax(S) - P[li]).max() < 1e-5


def test_induction_sequences_and_targets() -> None:
    """[BOS] a r b r c: the second copy's rows point one past the first copy, nothing else."""
    task = make_task(PretrainConfig(**TINY))  # type: ignore[arg-type]
    batch = task.batch(np.random.default_rng(0), 40)
    L, gaps = 4, set()
    for row in batch:
        assert row[0] == task.bos_id and row.shape == (13,)
        vals, counts = np.unique(row[1:], return_counts=True)
        rep = vals[counts == 2]
        assert rep.size == L and np.all(counts <= 2)  # the segment twice, the noise once
        first = np.flatnonzero(np.isin(row, rep))[:L]
        second = np.flatnonzero(np.isin(row, rep))[L:]
        assert np.array_equal(row[first], row[second]) and np.all(np.diff(first) == 1)
        gaps.add(int(second[0] - first[-1]))
        tgt = induction_targets(row, row == task.bos_id)
        assert np.array_equal(np.flatnonzero(tgt >= 0), second)
        assert np.array_equal(tgt[second], first + 1)
        lab = task.labels(row[None])[0]  # loss on the tokens the recall determines
        assert np.array_equal(np.flatnonzero(lab >= 0), second[1:])
        assert np.array_equal(row[tgt[second[:-1]]], row[second[1:]])
    assert len(gaps) > 1  # the distance between the copies varies


def test_muon_step_is_the_scaled_polar_factor() -> None:
    import scipy.linalg

    rng = np.random.default_rng(0)
    G = rng.standard_normal((6, 3))
    U, _ = scipy.linalg.polar(G)  # G = U H, U with orthonormal columns
    assert np.allclose(polar(torch.as_tensor(G)).numpy(), U, atol=1e-12)
    p = torch.nn.Parameter(torch.zeros(6, 3, dtype=torch.float64))
    opt = Muon([p], lr=0.1, momentum=0.9)
    p.grad = torch.as_tensor(G)
    opt.step()  # D = G + 0.9 G: same polar factor; scale sqrt(6 / 3)
    assert np.allclose(p.detach().numpy(), -0.1 * math.sqrt(2) * U, atol=1e-12)


def test_config_checks() -> None:
    with pytest.raises(InvalidParameterError, match="'positions'"):
        PretrainConfig(positions="alibi")
    with pytest.raises(InvalidParameterError, match="'checkpoints'"):
        PretrainConfig(steps=3, checkpoints=4)
    with pytest.raises(InvalidParameterError, match="'vocab'"):
        PretrainConfig(vocab=10, segment=5, noise=6)


@pytest.mark.parametrize("argv, field", [
    (["--d-model", "33"], "d-model"),
    (["--steps", "0"], "steps"),
    (["--optimizer", "lion"], "optimizer"),
])
def test_cli_bad_input_exit_2_one_line(argv: list[str], field: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    rc = main(["pretrain", *argv, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error:") and field in err[0]
    assert not out.exists()


def test_cli_refuses_a_foreign_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("x")
    assert main(["pretrain", "--steps", "2", "--checkpoints", "1", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_cli_json_and_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["pretrain", "--steps", "3", "--checkpoints", "2", "--d-model", "16",
               "--segment", "3", "--noise", "2", "--vocab", "8", "--batch", "4",
               "--out", str(tmp_path / "r"), "--json"])
    cap = capsys.readouterr()
    run = json.loads(cap.out)
    assert rc == 0 and run["schedule"] == [0, 1, 3] and "pretrain:" in cap.err
    assert run["config"]["d_model"] == 16 and run["config"]["optimizer"] == "adamw"


@pytest.mark.slow
def test_must_hold_200_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SPEC's run: 5 step folders that load and whose attention the probe reproduces."""
    from transformers import AutoModel

    out = tmp_path / "D"
    assert main(["pretrain", "--task", "induction", "--layers", "2", "--heads", "2",
                 "--d-model", "32", "--positions", "rope", "--steps", "200", "--checkpoints",
                 "4", "--out", str(out)]) == 0
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert [p.name for p in folders] == [f"step-{s:06d}" for s in (0, 1, 6, 34, 200)]
    ids = make_task(PretrainConfig()).batch(np.random.default_rng(3), 1)[0]
    for folder in folders:
        model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
        P = _eager_probs(model, ids)
        for layer in range(2):
            assert np.abs(_masked_softmax(_llama_scores(folder, ids, layer)) - P[layer]).max() \
                < 1e-5
    run = json.loads((out / "run.json").read_text())
    assert run["loss"]["200"] < run["loss"]["1"]


@pytest.mark.parametrize("name", ["attnsvm.lm.config", "attnsvm.lm.tasks",
                                  "attnsvm.lm.checkpoints", "attnsvm.lm.optim",
                                  "attnsvm.lm.track"])
def test_doctests_of_the_lm_package(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
