"""Tests of ``attnsvm train`` (attnsvm.cli.train_cmd)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from attnsvm.cli.train_cmd import add_train_arguments, run_train
from attnsvm.exceptions import InvalidInputError, InvalidParameterError
from attnsvm.instance import Instance, random_instance


def _args(path, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    ns = parser.parse_args([str(path)])
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


@pytest.fixture()
def inst_path(tmp_path):
    p = tmp_path / "inst.npz"
    random_instance(4, 5, 6, seed=0).save(p)
    return p


def test_defaults(inst_path):
    ns = _args(inst_path)
    assert (ns.param, ns.optimizer, ns.lr, ns.steps, ns.seed, ns.out, ns.json) == (
        "W", "ngd", 0.1, 2000, 0, None, False)


@pytest.mark.parametrize("param", ["W", "KQ"])
def test_json_and_out(inst_path, tmp_path, capsys, param):
    out = tmp_path / "run.npz"
    rc = run_train(_args(inst_path, param=param, steps=1500, out=str(out), json=True))
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    for key in ("selected", "corr_fro", "corr_nuc", "max_prob", "seconds", "param", "optimizer",
                "lr", "steps", "seed"):
        assert key in res
    with np.load(out) as data:
        W, sel = data["W"], data["selected"]
        assert W.shape == (6, 6) and sel.shape == (4,)
        assert sel.tolist() == res["selected"]
        if param == "KQ":
            np.testing.assert_allclose(W, data["K"] @ data["Q"].T)
        assert data["loss_history"].ndim == 1
    if param == "W":
        assert res["corr_fro"] > 0.98
    else:  # no promised number for (K, Q): only a valid correlation
        assert -1.0 <= res["corr_nuc"] <= 1.0 + 1e-12
    assert res["max_prob"] > 0.99


@pytest.mark.parametrize("opt", ["gd", "polyak", "md"])
def test_other_optimizers(inst_path, capsys, opt):
    assert run_train(_args(inst_path, optimizer=opt, steps=200, json=True)) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["optimizer"] == opt and len(res["selected"]) == 4


def test_missing_head_is_bad_input(tmp_path):
    p = tmp_path / "nohead.npz"
    inst = random_instance(3, 4, 5, seed=0)
    Instance(X=inst.X, Z=inst.Z).save(p)
    with pytest.raises(InvalidInputError):
        run_train(_args(p, steps=5))


def test_bad_parameters(inst_path):
    with pytest.raises(InvalidParameterError):
        run_train(_args(inst_path, lr=0.0))
    with pytest.raises(InvalidParameterError):
        run_train(_args(inst_path, steps=-3))
    with pytest.raises(InvalidParameterError):
        run_train(_args(inst_path, optimizer="adamw"))
    with pytest.raises(InvalidInputError):
        run_train(_args(inst_path.parent / "missing.npz"))


def test_module_import_does_not_import_torch():
    code = ("import sys, attnsvm.cli.train_cmd; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_default_output_is_a_human_summary(inst_path, capsys):
    assert run_train(_args(inst_path, steps=300)) == 0
    text = capsys.readouterr().out
    assert "selected tokens:" in text and "Frobenius Att-SVM" in text and "nuclear" in text
    assert "final loss:" in text and "largest probability" in text
    # the numbers printed are those of --json
    assert run_train(_args(inst_path, steps=300, json=True)) == 0
    res = json.loads(capsys.readouterr().out)
    assert " ".join(str(t) for t in res["selected"]) in text
    assert f"{res['corr_fro']:.6f}" in text and f"{res['loss']:.6g}" in text


def test_absurd_steps_refused_before_loading(tmp_path):
    missing = tmp_path / "missing.npz"  # never read: the size is refused first
    with pytest.raises(InvalidParameterError, match="steps"):
        run_train(_args(missing, steps=10**12))
    out = subprocess.run([sys.executable, "-m", "attnsvm.cli.main", "train", str(missing),
                          "--steps", "1000000000000"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error:") and out.stderr.count("\n") == 1


def test_bad_out_path_refused_before_training(inst_path, tmp_path, capsys):
    with pytest.raises(InvalidInputError, match="--out"):
        run_train(_args(inst_path, out=str(tmp_path), json=True))
    assert capsys.readouterr().out == ""


def test_progress_on_stderr_line_by_line_when_piped(inst_path, capsys, monkeypatch):
    from attnsvm.cli import train_cmd

    monkeypatch.setattr(train_cmd, "_QUIET_SECONDS", 0.0)  # report even a short run
    assert run_train(_args(inst_path, steps=3000, json=True)) == 0
    cap = capsys.readouterr()
    json.loads(cap.out)  # stdout: exactly one JSON object
    lines = [ln for ln in cap.err.splitlines() if ln.startswith("train:")]
    assert lines and lines[-1].startswith("train: 3000/3000")
    assert "\r" not in cap.err  # not a terminal: whole lines


def test_cli_choices_come_from_the_library():
    from attnsvm.cli.train_cmd import CLI_BACKENDS, CLI_OPTIMIZERS, CLI_PARAMS
    from attnsvm.train import BACKENDS, OPTIMIZERS, PARAMETRIZATIONS

    # the command offers the key-query parametrizations without a trained head
    assert CLI_PARAMS == tuple(k for k, s in PARAMETRIZATIONS.items()
                               if s.has_key_query and not s.joint)
    assert set(CLI_OPTIMIZERS) <= set(OPTIMIZERS) and CLI_BACKENDS == BACKENDS
