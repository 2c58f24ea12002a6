"""attnsvm track: the probe over a checkpoint series, resumable, with each head's course."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from attnsvm.cli.main import main  # noqa: E402
from attnsvm.exceptions import InvalidInputError  # noqa: E402
from attnsvm.lm import (  # noqa: E402
    PretrainConfig,
    TrackOptions,
    find_checkpoints,
    induction_targets,
    jaccard,
    pretrain,
    support_set,
    track,
)

TINY = dict(task="induction", layers=2, heads=2, d_model=16, steps=12, checkpoints=3, batch=8,
            vocab=12, segment=4, noise=4)
STEPS = [0, 1, 3, 12]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("series") / "run"
    pretrain(PretrainConfig(**TINY), out)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def tracked(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("track") / "t"
    res = track([run_dir], TrackOptions(nuclear=False), out)
    return out, res.summary


def test_series_in_step_order_with_probe_records(tracked: tuple[Path, dict]) -> None:
    out, s = tracked
    assert [c["step"] for c in s["checkpoints"]] == STEPS
    for c in s["checkpoints"]:
        assert Path(c["path"]).name == f"step-{c['step']:06d}"
        assert [(r["layer"], r["head"]) for r in c["heads"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
        for r in c["heads"]:
            assert r["n"] == 52 and r["corr_nuc"] is None  # 4 eval sequences of 13 tokens
            if "exact" in r:  # a probe that analyses rotary heads exactly (SPEC)
                assert r["exact"] is True
    assert (out / "index.html").is_file() and (out / "summary.json").is_file()
    assert json.loads((out / "summary.json").read_text())["series"] == s["series"]
    assert sorted(p.name for p in (out / "curves").iterdir()) == [
        "L00_H00.png", "L00_H01.png", "L01_H00.png", "L01_H01.png"]
    page = (out / "index.html").read_text()
    assert page.count("<img") == 4 and "layer 1" in page
    ser = s["series"][2]
    assert (ser["layer"], ser["head"], ser["step"]) == (1, 0, STEPS)
    assert len(ser["task_accuracy"]) == 4


def test_task_accuracy_matches_the_models_own_attention(run_dir: Path,
                                                        tracked: tuple[Path, dict]) -> None:
    """Independent check: argmax of the eager attention on the eval text vs the correct key."""
    from transformers import AutoModel, AutoTokenizer

    _, s = tracked
    last = run_dir / "step-000012"
    tok = AutoTokenizer.from_pretrained(str(last))
    words = (last / "attnsvm_eval.txt").read_text().split()
    seqs = [tok(" ".join(words[k:k + 12]))["input_ids"] for k in range(0, len(words), 12)]
    model = AutoModel.from_pretrained(str(last), attn_implementation="eager").eval()
    hits = np.zeros((2, 2))
    total = 0
    for ids in seqs:
        ids = np.asarray(ids)
        tgt = induction_targets(ids, ids == 0)
        with torch.no_grad():
            att = model(input_ids=torch.as_tensor(ids)[None], output_attentions=True).attentions
        ok = tgt >= 0
        total += int(ok.sum())
        for li in range(2):
            sel = att[li][0].argmax(-1).numpy()  # (H, T)
            hits[li] += (sel[:, ok] == tgt[ok]).sum(axis=1)
    recs = s["checkpoints"][-1]["heads"]
    for r in recs:
        assert r["task_accuracy"] == pytest.approx(hits[r["layer"], r["head"]] / total)
    # the model's own recall accuracy: argmax of its logits on the recalled tokens
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(str(last)).eval()
    right = count = 0
    for ids in seqs:
        ids = np.asarray(ids)
        tgt = induction_targets(ids, ids == 0)
        second = np.flatnonzero(tgt >= 0)  # the second copy; its tokens after the first
        with torch.no_grad():  # are recalled: predicted at the position before each
            pred = lm(input_ids=torch.as_tensor(ids)[None]).logits[0].argmax(-1).numpy()
        right += int((pred[second[1:] - 1] == ids[second[1:]]).sum())
        count += second.size - 1
    assert s["recall_accuracy"][-1] == pytest.approx(right / count)
    assert s["checkpoints"][-1]["recall_accuracy"] == s["recall_accuracy"][-1]


def test_support_stability_fields(tracked: tuple[Path, dict]) -> None:
    _, s = tracked
    for c in s["checkpoints"][1:]:
        for r in c["heads"]:
            j = r["support_jaccard"]
            assert j is None or 0.0 <= j <= 1.0
            assert 0.0 <= r["selection_stability"] <= 1.0
    for r in s["checkpoints"][0]["heads"]:
        assert r["support_jaccard"] is None and r["selection_stability"] is None


def test_support_set_and_jaccard() -> None:
    idx = np.array([[0, 1], [0, 2], [1, 0], [1, 2]])
    assert support_set(np.array([1.0, 0.0, 1e-12, 0.5]), idx) == {(0, 1), (1, 2)}
    assert support_set(np.zeros(4), idx) == set()
    assert jaccard({(0, 1)}, {(0, 1), (1, 2)}) == 0.5 and jaccard(set(), set()) is None


def test_interrupted_track_resumes(run_dir: Path, tracked: tuple[Path, dict],
                                   tmp_path: Path) -> None:
    out = tmp_path / "t"

    def stop_after_two(msg: str) -> None:
        if msg.startswith("checkpoint 2/4") and "heads" in msg:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        track([run_dir], TrackOptions(nuclear=False), out, progress=stop_after_two)
    assert not (out / "summary.json").exists()
    res = track([run_dir], TrackOptions(nuclear=False), out)
    assert res.cached == [True, True, False, False]
    _, full = tracked
    for a, b in zip(res.summary["series"], full["series"], strict=True):
        for key in ("corr_fro", "task_accuracy", "support_jaccard", "selection_stability"):
            assert a.get(key) == b.get(key)
    # other options: nothing is reused
    two = [run_dir / "step-000000", run_dir / "step-000001"]
    again = track(two, TrackOptions(nuclear=False, layers="1"), out)
    assert again.cached == [False] * 2
    assert {r["layer"] for r in again.summary["checkpoints"][0]["heads"]} == {1}


def test_explicit_folders_sorted_by_step(run_dir: Path) -> None:
    names = [run_dir / f"step-{s:06d}" for s in reversed(STEPS)]
    assert [c.step for c in find_checkpoints(names)] == STEPS
    with pytest.raises(InvalidInputError, match="twice"):
        find_checkpoints([names[0], names[0]])


def _err(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_cli_bad_input(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gpt = tmp_path / "gpt"
    pretrain(PretrainConfig(**{**TINY, "positions": "learned", "steps": 1,  # type: ignore[arg-type]
                               "checkpoints": 1}), gpt)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    out = tmp_path / "out"
    cases = [
        ([], "No checkpoint"),
        ([str(run_dir / "step-000000"), str(gpt / "step-000001")], "mix architectures"),
        ([str(tmp_path / "notes")], "neither a model folder"),
        ([str(tmp_path / "empty")], "step-* model folders"),
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(run_dir), "--layers", "7"], "'layers'"),
        ([str(run_dir), "--text", str(tmp_path / "none.txt")], "text file"),
    ]
    for argv, msg in cases:
        rc = main(["track", *argv, "--no-nuclear", "--out", str(out)])
        err = _err(capsys)
        assert rc == 2 and len(err) == 1 and err[0].startswith("error:") and msg in err[0], err
    assert not out.exists()


def test_cli_json(run_dir: Path, tracked: tuple[Path, dict], tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    tracked_out, _ = tracked
    out = tmp_path / "t"
    shutil.copytree(tracked_out, out)  # the cache: nothing to probe again
    assert main(["track", str(run_dir), "--no-nuclear", "--out", str(out), "--json"]) == 0
    cap = capsys.readouterr()
    s = json.loads(cap.out)
    assert [c["step"] for c in s["checkpoints"]] == STEPS and s["cached"] == [True] * 4
    assert "track: checkpoint 4/4 step-000012: cached" in cap.err


@pytest.mark.slow
def test_must_hold_track(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    D = tmp_path / "D"
    assert main(["pretrain", "--task", "induction", "--layers", "2", "--heads", "2",
                 "--d-model", "32", "--positions", "rope", "--steps", "200", "--checkpoints",
                 "4", "--out", str(D)]) == 0
    capsys.readouterr()
    out = tmp_path / "T"
    assert main(["track", str(D), "--no-nuclear", "--json", "--out", str(out)]) == 0
    s = json.loads(capsys.readouterr().out)
    assert [c["step"] for c in s["checkpoints"]] == [0, 1, 6, 34, 200]
    assert (out / "index.html").is_file()
    recs = [r for c in s["checkpoints"] for r in c["heads"]]
    if any("exact" in r for r in recs):  # a probe that analyses rotary heads exactly (SPEC)
        assert all(r["exact"] is True for r in recs)
